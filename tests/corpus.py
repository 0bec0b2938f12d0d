"""Seeded generator of the texts leaders write, in all the shapes the networks count differently.

Latin prose, CJK without spaces, emoji sequences (skin tones, ZWJ families, flags, keycaps, emoji newer
than X's data), combining marks, links of every shape (bare domains, hosts without a real TLD, IP
addresses, ports, user@, t.co, glued to words, very long, with parentheses), mentions local and remote,
hashtags, cashtags and Slack `<url|label>` links.
"""

from __future__ import annotations

import random

WORDS = [
    "the",
    "plan",
    "for",
    "our",
    "quarter",
    "results",
    "are",
    "out",
    "today",
    "and",
    "we",
    "thank",
    "every",
    "team",
    "member",
    "who",
    "helped",
]
CJK = ["新製品の", "詳細を", "ご覧ください。", "我们的", "季度报告", "已经发布", "한국어", "テキスト"]
EMOJI = [
    "👍",
    "👍🏽",
    "👨‍👩‍👧‍👦",
    "🫱🏼‍🫲🏿",
    "🏳️‍⚧️",
    "🐦‍🔥",
    "🇯🇵",
    "1️⃣",
    "❤️",
    "☕",
    "©",
    "®",
    "™",
    "😀\u0301",
    "🧑🏿‍💻",
    "👩‍❤️‍💋‍👨",
    "🏴‍☠️",
    "🫠",
    "✌🏻",
    "#️⃣",
]
MARKS = ["e\u0301", "n\u0303", "a\u0308\u0323", "क्षि", "ก่", "ñ", "ﷺ", "\u200d", "\u200b", "\u2060", "\ufe0f"]
URLS = [
    "https://example.com",
    "https://example.com/q3",
    "http://example.com/a/b?x=1&y=2#frag",
    "https://en.wikipedia.org/wiki/Mercury_(planet)",
    "https://example.com/path_(a)_b",
    "example.com",
    "www.example.co.uk/page",
    "Node.js",
    "report.pdf",
    "https://intranet.corp/wiki",
    "http://localhost:8080",
    "http://192.168.0.1/admin",
    "https://user@example.com/x",
    "https://user:pw@example.com",
    "https://t.co/abc",
    "https://t.co/abc/more",
    "https://例え.jp/パス",
    "https://xn--r8jz45g.jp",
    "bit.ly/abc",
    "t.co/abcde",
    "https://example.com/" + "p" * 120,
    "https://example.com/ja/new",
    "https://example.com:8443/x",
    "ftp://example.com/file",
    "https://example.museum",
    "https://a.b.c.example.io/x.y",
    "mailto:a@example.com",
    "https://example.com/q?a=(b)",
    "https://example.com/x.",
    "https://example.com/x,",
    "https://example.com/x!",
    "https://example.com/wiki/A_(b)_(c)",
    "https://example.com/%E6%97%A5",
    "https://example.com/\u00e9t\u00e9",
]
HANDLES = ["@alice", "@alice@example.com", "@bob@mastodon.social", "@carol.bsky.social", "@dan.test", "@x_y"]
TAGS = ["#Q3", "#新製品", "#tag_with_underscore", "#" + "a" * 70, "#123", "#️⃣", "＃fullwidth", "$AAPL", "$TSLA."]
SEPARATORS = [" ", " ", " ", "", "\n", "\n\n", ". ", ", ", "(", ")", "、", "。", "!", "'s "]


def _piece(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.25:
        return " ".join(rng.choices(WORDS, k=rng.randint(1, 6)))
    if kind < 0.40:
        return "".join(rng.choices(CJK, k=rng.randint(1, 5)))
    if kind < 0.52:
        return "".join(rng.choices(EMOJI, k=rng.randint(1, 3)))
    if kind < 0.58:
        return rng.choice(WORDS) + rng.choice(MARKS)
    if kind < 0.78:
        return rng.choice(URLS)
    if kind < 0.86:
        return rng.choice(HANDLES)
    if kind < 0.94:
        return rng.choice(TAGS)
    return f"<{rng.choice(URLS[:8] + URLS[-10:])}|{rng.choice(['the Q3 report', '詳細', 'here', '📄 notes'])}>"


def text(rng: random.Random, pieces: int = 12) -> str:
    return "".join(_piece(rng) + rng.choice(SEPARATORS) for _ in range(rng.randint(1, pieces))).strip()


def corpus(seed: int, count: int, pieces: int = 12) -> list[str]:
    rng = random.Random(seed)
    return [text(rng, pieces) for _ in range(count)]
