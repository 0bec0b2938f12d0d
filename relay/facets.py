"""Bluesky's rich text as its reference client detects it: a port of @atproto/api's RichText detection.

A post's links, tags and mentions are facets over UTF-8 byte ranges. Bluesky's apps and the PDS's limits
follow `@atproto/api` (packages/api/src/rich-text/detection.ts and util.ts): a link starts after a space,
`(` or the start of a line and runs to the next space, losing one trailing punctuation mark and a `)` it
does not open; a bare domain is a link only when its TLD is on the `tlds` list; a tag over 64 UTF-16 units
is skipped. The TLD list is exported from the npm package the oracle runs (relay/reference/tlds-*.json),
and tests/test_reference_counts.py holds this module to `detectFacetsWithoutResolution` itself.

A post may hold at most 300 graphemes and 3,000 UTF-8 bytes (app.bsky.feed.post's lexicon: maxGraphemes,
maxLength): `graphemes` and `utf8_length` measure both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import regex

_TLD_FILE = next((Path(__file__).parent / "reference").glob("tlds-*.json"))
_TLD_DATA = json.loads(_TLD_FILE.read_text(encoding="utf-8"))
REFERENCE = str(_TLD_DATA["source"])
_TLDS = tuple(f".{tld}" for tld in _TLD_DATA["tlds"])

MAX_GRAPHEMES = 300
MAX_BYTES = 3000
_MAX_TAG_UNITS = 64

# JavaScript's \s (ECMA-262 WhiteSpace and LineTerminator), which differs from Python's.
_SPACE = "\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
_INVISIBLE = "\\u00ad\\u2060\\u200a\\u200b\\u200c\\u200d\\u20e2"
_MENTION = regex.compile(
    f"(^|[{_SPACE}]|\\()(@)([a-zA-Z0-9.-]+)(?:(?<=[A-Za-z0-9_])(?![A-Za-z0-9_])|(?<![A-Za-z0-9_])(?=[A-Za-z0-9_]))"
)
_URL = regex.compile(
    f"(^|[{_SPACE}]|\\()((https?:\\/\\/[^{_SPACE}]+)|((?P<domain>[a-z][a-z0-9]*(\\.[a-z0-9]+)+)[^{_SPACE}]*))",
    regex.IGNORECASE | regex.MULTILINE | regex.ASCII,
)
_TAG = regex.compile(
    f"(^|[{_SPACE}])[#＃]((?!\\ufe0f)[^{_SPACE}{_INVISIBLE}]*[^\\d{_SPACE}\\p{{P}}{_INVISIBLE}]+[^{_SPACE}{_INVISIBLE}]*)?"
)
_TRAILING_PUNCTUATION = regex.compile(r"\p{P}+$")
_CASHTAG = regex.compile(f"(^|[{_SPACE}]|\\()\\$([A-Za-z][A-Za-z0-9]{{0,4}})(?=[{_SPACE}]|$|[.,;:!?)\"'\\u2019])")


@dataclass(frozen=True)
class Facet:
    """One detected feature over `text[start:end]` (code points); `kind` is link, tag or mention."""

    start: int
    end: int
    kind: str
    value: str  # the link's URI, the tag (cashtags keep their `$`), or the handle to resolve


def graphemes(text: str) -> int:
    return len(regex.findall(r"\X", text))


def utf8_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _valid_domain(domain: str) -> bool:
    return domain.endswith(_TLDS)


def detect(text: str) -> list[Facet]:
    """Mentions, links, tags and cashtags in detectFacets' order, then sorted by start as RichText sorts."""
    found: list[Facet] = []
    for match in _MENTION.finditer(text):
        handle = match.group(3)
        if _valid_domain(handle) or handle.endswith(".test"):
            start = text.index(handle, match.start()) - 1
            found.append(Facet(start, start + len(handle) + 1, "mention", handle))
    for match in _URL.finditer(text):
        uri = match.group(2)
        if not uri.startswith("http"):
            domain = match.group("domain")
            if not domain or not _valid_domain(domain):
                continue
            uri = f"https://{uri}"
        start = text.index(match.group(2), match.start())
        end = start + len(match.group(2))
        if uri[-1] in ".,;:!?":
            uri, end = uri[:-1], end - 1
        if uri.endswith(")") and "(" not in uri:
            uri, end = uri[:-1], end - 1
        found.append(Facet(start, end, "link", uri))
    for match in _TAG.finditer(text):
        tag = match.group(2)
        if not tag:
            continue
        tag = _TRAILING_PUNCTUATION.sub("", tag.strip(_SPACE_CHARS))
        if not tag or _units(tag) > _MAX_TAG_UNITS:
            continue
        start = match.start() + len(match.group(1))
        found.append(Facet(start, start + 1 + len(tag), "tag", tag))
    for match in _CASHTAG.finditer(text):
        start = match.start() + len(match.group(1))
        ticker = match.group(2)
        found.append(Facet(start, start + 1 + len(ticker), "tag", "$" + ticker.upper()))
    return sorted(found, key=lambda facet: utf8_length(text[: facet.start]))


_SPACE_CHARS = "\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff" + "".join(map(chr, range(0x2000, 0x200B)))


def with_links(text: str, links: tuple[Facet, ...] = ()) -> list[Facet]:
    """A post's facets: its linked words (`links`, from relay/linked.py) and what `detect` finds elsewhere.

    A label that reads as a link itself (`example.com`, a shortened URL) is linked once, to its own URL:
    facets must not overlap.
    """
    detected = [f for f in detect(text) if not any(f.start < link.end and link.start < f.end for link in links)]
    return sorted([*links, *detected], key=lambda facet: facet.start)


def byte_span(text: str, facet: Facet) -> tuple[int, int]:
    """The facet's UTF-8 byte range, which is what the lexicon indexes by."""
    return utf8_length(text[: facet.start]), utf8_length(text[: facet.end])
