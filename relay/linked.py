"""Words linked to a URL, carried inside one string: how a Bluesky part keeps its labelled links.

Bluesky shows a Slack `<url|label>` as the label, linked by a facet over its bytes, and shows a link too long
for a post as Bluesky's own app does, shortened and linked to the whole URL. The renderer splits strings and
the outbox keeps each part as one string, so a linked span is written inside the text as
`\\x02label\\x1furl\\x03`. `render.clean` strips every control character from what the leader typed, and
`html.unescape` turns character references to them into nothing, so these marks only ever come from the
renderer: a text without them reads as itself.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import regex

from relay.facets import Facet

OPEN, TO, CLOSE = "\x02", "\x1f", "\x03"
MARKED = regex.compile(f"{OPEN}([^{OPEN}{TO}{CLOSE}]*){TO}([^{OPEN}{TO}{CLOSE}]*){CLOSE}")

# social-app's toShortUrl (src/lib/strings/url-helpers.ts): the host, then a path of more than 15
# characters cut to 13 and "...".
_PATH_SHOWN, _PATH_CUT = 15, 13


def mark(label: str, uri: str) -> str:
    """`label`, shown linked to `uri`."""
    return f"{OPEN}{label.strip()}{TO}{uri}{CLOSE}"


def short(uri: str) -> str:
    """How Bluesky's app shows a link it shortens: `example.com/reports/2026/…` without the scheme."""
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    path = (parts.path if parts.path != "/" else "") + (f"?{parts.query}" if parts.query else "")
    path += f"#{parts.fragment}" if parts.fragment else ""
    return host + (path[:_PATH_CUT] + "..." if len(path) > _PATH_SHOWN else path)


def read(payload: str) -> tuple[str, tuple[Facet, ...]]:
    """The text as the network shows it, and its linked spans (code points into that text)."""
    shown: list[str] = []
    links: list[Facet] = []
    position = length = 0
    for match in MARKED.finditer(payload):
        before = payload[position : match.start()]
        shown.append(before)
        length += len(before)
        label, uri = match.group(1), match.group(2)
        links.append(Facet(length, length + len(label), "link", uri))
        shown.append(label)
        length += len(label)
        position = match.end()
    shown.append(payload[position:])
    return "".join(shown), tuple(links)


def shown(payload: str) -> str:
    return str(MARKED.sub(r"\1", payload))


def write(text: str, links: tuple[Facet, ...]) -> str:
    """The string the outbox keeps for a part: `read`'s inverse."""
    pieces: list[str] = []
    position = 0
    for link in sorted(links, key=lambda link: link.start):
        pieces.append(text[position : link.start])
        pieces.append(mark(text[link.start : link.end], link.value))
        position = link.end
    pieces.append(text[position:])
    return "".join(pieces)


def spans(payload: str) -> list[tuple[int, int]]:
    """Where the marked links are in `payload` itself: pieces a thread split must keep whole."""
    return [match.span() for match in MARKED.finditer(payload)]
