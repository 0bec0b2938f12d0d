"""Our counts, links and facets against the networks' own reference code, run here from npm.

twitter-text 3.1.0's parseTweet (what X counts with), @atproto/api's RichText (what Bluesky detects and
measures with), twitter-text's conformance suite, and Mastodon's counting rules as a table. Every rendered
part must also be valid by the reference: that is what decides whether the network takes it.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters import bluesky, mastodon, x
from relay import facets, linked, twitter_text
from relay.render import clean, render
from tests import corpus as generated
from tests.corpus import corpus
from tests.oracle import Oracle

CONFORMANCE = Path(__file__).parent / "conformance"
CORPUS_SIZE = 6000


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    node = Oracle()
    yield node
    node.close()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [unicodedata.normalize("NFC", text) for text in corpus(seed=20261130, count=CORPUS_SIZE)]


def _utf16_to_code_points(text: str, index: int) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")[: index * 2].decode("utf-16-le", "surrogatepass"))


def test_x_counts_and_links_agree_with_twitter_text_on_the_corpus(oracle: Oracle, texts: list[str]) -> None:
    disagreements = []
    for text, reference in zip(texts, oracle.twitter(texts), strict=True):
        parsed = twitter_text.parse_tweet(text)
        ours = [(u.url, u.start, u.end) for u in twitter_text.extract_urls(text)]
        theirs = [
            (u["url"], _utf16_to_code_points(text, u["indices"][0]), _utf16_to_code_points(text, u["indices"][1]))
            for u in reference["urls"]
        ]
        if (parsed.weighted_length, parsed.valid, ours) != (reference["weightedLength"], reference["valid"], theirs):
            disagreements.append((text, parsed, reference))
    assert disagreements == []


def _facet(facet: dict[str, Any]) -> tuple[int, int, str, str]:
    feature = facet["features"][0]
    value = feature.get("uri") or feature.get("tag") or feature.get("did")
    return facet["index"]["byteStart"], facet["index"]["byteEnd"], feature["$type"].split("#")[1], value


def test_bluesky_facets_and_lengths_agree_with_atproto_on_the_corpus(oracle: Oracle, texts: list[str]) -> None:
    disagreements = []
    for text, reference in zip(texts, oracle.richtext(texts), strict=True):
        ours = [(*facets.byte_span(text, f), f.kind, f.value) for f in facets.detect(text)]
        theirs = [_facet(facet) for facet in reference["facets"]]
        if (ours, facets.graphemes(text), facets.utf8_length(text)) != (
            theirs,
            reference["graphemes"],
            reference["bytes"],
        ):
            disagreements.append((text, ours, theirs))
    assert disagreements == []


def test_every_rendered_part_is_valid_by_the_reference(oracle: Oracle) -> None:
    """Long generated messages, threaded for X and Bluesky: each part is one the network takes."""
    messages = [clean(text) for text in corpus(seed=7, count=300, pieces=60)]
    x_parts, bluesky_parts = [], []
    for message in messages:
        for limits, sink in ((x.LIMITS, x_parts), (bluesky.LIMITS, bluesky_parts)):
            rendering = render("dest", message, limits, allow_broadcast_mentions=False)
            assert rendering.error is None or "at most 10" in rendering.error, rendering.error
            sink.extend(rendering.parts)
    assert len(x_parts) > 600 and len(bluesky_parts) > 600
    for part, reference in zip(x_parts, oracle.twitter(x_parts), strict=True):
        assert reference["valid"] and reference["weightedLength"] <= 280, part
        assert twitter_text.weighted_length(part) == reference["weightedLength"]
    for part, reference in zip(bluesky_parts, oracle.richtext(bluesky_parts), strict=True):
        assert reference["graphemes"] <= 300 and reference["bytes"] <= 3000, part


LABELS = ("the Q3 report", "詳細", "here", "📄 notes")


def _long_link(rng: random.Random) -> str:
    """A link longer than a Bluesky post, or long enough that a thread part cannot hold it with its numbering."""
    path = "".join(rng.choices("abcdefghij/-_", k=rng.choice((275, 290, 400, 900))))
    return rng.choice(("https://example.com/reports/", "https://日本.example.jp/")) + path


def test_bluesky_parts_carry_linked_labels_and_the_references_own_facets(oracle: Oracle) -> None:
    """Rendered for Bluesky, a Slack label is shown and linked to its URL, a link too long for a part is
    shown shortened and linked to the whole URL, every part is valid by @atproto/api, and the other facets
    are the ones its detector finds in the part: each part's byte offsets its own."""
    rng = random.Random(11)
    messages = []
    for _ in range(300):
        pieces = [generated.text(rng, 40), f"<{_long_link(rng)}>", generated.text(rng, 40), _long_link(rng)]
        messages.append(clean(" ".join(rng.sample(pieces, k=rng.randint(1, 4)))))
    parts, links = [], []
    for message in messages:
        rendering = render("dest", message, bluesky.LIMITS, allow_broadcast_mentions=False)
        assert rendering.error is None or "at most 10" in rendering.error, rendering.error
        parts.extend(rendering.parts)
        links.extend(rendering.links)
    shortened = labelled = 0
    for part, linked_words, reference in zip(parts, links, oracle.richtext(parts), strict=True):
        assert reference["graphemes"] <= 300 and reference["bytes"] <= 3000, part
        for link in linked_words:
            words = part[link.start : link.end]
            assert words in LABELS or words == linked.short(link.value), (part, link)
            shortened += words not in LABELS
            labelled += words in LABELS
        spans = [facets.byte_span(part, link) for link in linked_words]
        detected = [f for f in map(_facet, reference["facets"]) if not any(f[0] < e and s < f[1] for s, e in spans)]
        ours = [(*span, "link", link.value) for span, link in zip(spans, linked_words, strict=True)]
        made = [(*facets.byte_span(part, f), f.kind, f.value) for f in facets.with_links(part, linked_words)]
        assert made == sorted([*ours, *detected])
    assert shortened > 100 and labelled > 100


def test_a_link_too_long_for_a_post_is_shown_shortened_and_links_in_full() -> None:
    url = "https://example.com/reports/2026/q3/" + "x" * 400
    rendering = render("dest", clean(f"Read {url} before Friday."), bluesky.LIMITS, allow_broadcast_mentions=False)
    assert rendering.parts == ("Read example.com/reports/2026... before Friday.",)
    [[link]] = rendering.links
    assert (rendering.parts[0][link.start : link.end], link.value) == ("example.com/reports/2026...", url)
    assert rendering.lengths == (47,)


def test_a_label_too_long_for_a_post_is_refused_in_the_preview_saying_so() -> None:
    """A label is the leader's own words: never cut between posts, and not shortened behind their back."""
    message = clean("Intro. <https://example.com/a|" + "word " * 70 + ">")
    rendering = render("dest", message, bluesky.LIMITS, allow_broadcast_mentions=False)
    assert rendering.error is not None and "355 of 300 characters" in rendering.error
    assert "its label" in rendering.error


def _cases(suite: str, *groups: str) -> list[Any]:
    tests = yaml.safe_load((CONFORMANCE / f"{suite}.yml").read_text(encoding="utf-8"))["tests"]
    return [pytest.param(case, id=f"{group}: {case['description']}") for group in groups for case in tests[group]]


@pytest.mark.parametrize(
    "case", _cases("validate", "WeightedTweetsWithDiscountedEmojiCounterTest", "UnicodeDirectionalMarkerCounterTest")
)
def test_twitter_text_conformance_weighted_length(case: dict[str, Any]) -> None:
    parsed = twitter_text.parse_tweet(case["text"])
    assert (parsed.weighted_length, parsed.valid) == (case["expected"]["weightedLength"], case["expected"]["valid"])


@pytest.mark.parametrize("case", _cases("extract", "urls", "tco_urls_with_params"))
def test_twitter_text_conformance_url_extraction(case: dict[str, Any]) -> None:
    assert [u.url for u in twitter_text.extract_urls(case["text"])] == case["expected"]


@pytest.mark.parametrize("case", _cases("extract", "urls_with_indices", "urls_with_directional_markers"))
def test_twitter_text_conformance_url_indices(case: dict[str, Any]) -> None:
    expected = [(u["url"], *u["indices"]) for u in case["expected"]]
    assert [(u.url, u.start, u.end) for u in twitter_text.extract_urls(case["text"])] == expected


MASTODON_CASES = [
    ("plain words", "hello world", 11),
    ("graphemes, not code points", "👨‍👩‍👧‍👦 é" + "e\u0301", 4),
    ("a flag is one", "🇯🇵🇫🇷", 2),
    ("a link is 23 whatever its length", "see https://example.com/" + "p" * 100, 27),
    ("a short link is 23 too", "https://a.co", 23),
    ("a bare domain is text", "example.com", 11),
    ("a host without a real TLD is text", "https://intranet.corp/x", 23),
    ("a link runs on through Japanese text", "https://example.com/ja/newをご覧ください", 23),
    ("a link stops at a parenthesis", "(https://example.com/ja/new)をご覧", 28),
    ("a remote mention counts its local part", "hi @alice@example.com", 9),
    ("a local mention counts in full", "hi @alice", 9),
    ("a mention glued to a word is text", "me@alice@example.com", 20),
    ("two links", "https://a.example.com/x https://b.example.org/y", 47),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(t, n, id=d) for d, t, n in MASTODON_CASES])
def test_mastodon_counts_as_its_status_length_validator(text: str, expected: int) -> None:
    assert twitter_text.mastodon_length(text) == expected
    assert mastodon.LIMITS.counting.value == "mastodon"
