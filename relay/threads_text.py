"""How Threads measures a post: characters, except that an emoji counts as its UTF-8 bytes.

Meta publishes the rule in words, not code (developers.facebook.com/docs/threads/posts, "Limitations": "Text
posts are limited to 500 characters. Emojis are counted as the number of UTF-8 bytes"; the `text` parameter
"uses UTF-8 encoding"). So a character is a code point, links count in full (Threads shortens none), and an
emoji is taken as the whole grapheme cluster it draws, skin tones, joiners and variation selectors
included: 😀 is 4, 👍🏽 8, a family of three 18, a flag 8. Unicode's Extended_Pictographic property is what
decides "emoji"; it also covers ©, ® and ™, which then count 2 or 3 rather than 1: an over-count, never an
under-count, so a part the bot sends is never one Threads refuses.

Since December 2025 a post may also carry at most 5 distinct links (docs/threads/create-posts/
text-attachments, THREADS_API__LINK_LIMIT_EXCEEDED): `distinct_links` counts them as the renderer splits.
"""

from __future__ import annotations

import regex

from relay import twitter_text

MAX_CHARACTERS = 500
MAX_LINKS = 5

# An emoji cluster: any pictograph, a flag (a pair of regional indicators), or a keycap (1️⃣, #️⃣).
_EMOJI = regex.compile(r"\p{Extended_Pictographic}|\p{Regional_Indicator}|\u20e3")
_CLUSTER = regex.compile(r"\X")


def length(text: str) -> int:
    """The length Threads holds against its 500-character limit."""
    total = 0
    for cluster in _CLUSTER.findall(text):
        total += len(cluster.encode("utf-8")) if _EMOJI.search(cluster) else len(cluster)
    return total


def distinct_links(text: str) -> int:
    """Links Threads would count in the text: each different URL once."""
    return len({url.url for url in twitter_text.extract_urls(text)})
