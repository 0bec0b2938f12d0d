"""Turn the leader's message (Slack mrkdwn) into exactly what each destination will receive.

The preview shows these renderings, and the outbox posts them as shown: what the leader approves is what
goes out, part for part. Each network's rules come from its adapter's `Limits`; nothing here names a
network.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import regex

from relay.destination import Counting, Limits, Markup

# Slack truncates chat.postMessage text past 40,000 characters (api.slack.com/methods/chat.postMessage);
# no destination can carry more, so no broadcast may be longer.
MAX_MESSAGE_CHARACTERS = 40_000

# twitter-text v3 configuration (github.com/twitter/twitter-text, config/v3.json): code points in these
# ranges weigh 100, all others 200, an emoji sequence 200, and the limit is 280 × 100.
_X_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))

_SLACK_LINK = regex.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
_TYPED_BROADCAST = regex.compile(r"(?<![\w@])@(channel|here|everyone)\b", regex.IGNORECASE)
_URL = regex.compile(r"https?://[^\s<>\"]+[^\s<>\".,;:!?)\]'’”]", regex.IGNORECASE)
_BARE_DOMAIN = regex.compile(
    r"(?<![\w@./-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}(?:/[^\s]*[^\s.,;:!?)])?", regex.IGNORECASE
)
_EMOJI = regex.compile(r"\p{Extended_Pictographic}|\p{Regional_Indicator}|\u20e3")
_MARKERS = regex.compile(r"(?<![\w*_~`])([*_~])(?=\S)(.+?)(?<=\S)\1(?![\w*_~`])")
_MARKDOWN = {"*": "**", "_": "_", "~": "~~"}  # mrkdwn marker → its Markdown (Teams)
_CODE = regex.compile(r"```\n?|`")
_INVISIBLE = regex.compile(r"\p{Cf}")
_CONTROL = regex.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SENTENCE_END = regex.compile(r"(?<=[.!?…。！？])\s+|\n+")


class InputError(ValueError):
    """The message cannot be broadcast as written; the text says why, for the leader."""


@dataclass(frozen=True)
class Rendering:
    """What one destination will receive."""

    destination: str
    parts: tuple[str, ...]
    lengths: tuple[int, ...]
    limit: int
    counting: Counting
    warnings: tuple[str, ...]
    error: str | None  # set when this destination cannot take the message; approval is refused
    replies: str | None = None  # who may answer there, in words (public networks)


def clean(text: str) -> str:
    """Normalise what the leader typed, or refuse it with a message they can act on."""
    text = _CONTROL.sub("", unicodedata.normalize("NFC", text or "")).strip()
    if not _INVISIBLE.sub("", text).strip():  # zero-width and other format characters show nothing
        raise InputError("The message is empty: write it after the command, like `/broadcast Our Q3 results are out`.")
    if len(text) > MAX_MESSAGE_CHARACTERS:
        raise InputError(
            f"The message is {len(text):,} characters; a broadcast can carry at most "
            f"{MAX_MESSAGE_CHARACTERS:,}. Shorten it, or link to a longer document."
        )
    return text


def render(destination: str, text: str, limits: Limits, allow_broadcast_mentions: bool) -> Rendering:
    """Render `text` (already `clean`ed) for one destination."""
    warnings: list[str] = []
    if limits.markup is Markup.MRKDWN:
        body = _for_slack(destination, text, allow_broadcast_mentions, warnings)
    else:
        body = _convert(destination, text, warnings, markdown=limits.markup is Markup.MARKDOWN)
    counter = counter_for(limits)
    error = None
    if not body:
        parts: tuple[str, ...] = ()
        error = f"Nothing is left to post to {destination} once mentions and markup are removed."
    elif counter(body) <= limits.max_length:
        parts = (body,)
    elif limits.max_thread_parts > 1:
        parts = split_thread(body, limits.max_length, counter)
        if len(parts) > limits.max_thread_parts:
            error = (
                f"Too long for {destination}: it would take {len(parts)} posts, and at most "
                f"{limits.max_thread_parts} are allowed in a thread. Shorten the message."
            )
    else:
        parts = (body,)
        error = (
            f"Too long for {destination}: {counter(body):,} of {limits.max_length:,} "
            f"{_unit(limits.counting)}. Shorten the message."
        )
    return Rendering(
        destination=destination,
        parts=parts,
        lengths=tuple(counter(p) for p in parts),
        limit=limits.max_length,
        counting=limits.counting,
        warnings=tuple(warnings),
        error=error,
    )


def _unit(counting: Counting) -> str:
    return {
        Counting.CHARACTERS: "characters",
        Counting.GRAPHEMES: "characters",
        Counting.X_WEIGHTED: "weighted characters",
    }[counting]


def _for_slack(destination: str, text: str, allow: bool, warnings: list[str]) -> str:
    """Slack gets the mrkdwn as written; only broadcast mentions are held back unless allowed."""

    def special(match: regex.Match[str]) -> str:
        target = match.group(1)
        name = target[1:].split("^")[0].lower()
        if target.startswith("!") and name in ("channel", "here", "everyone"):
            return _broadcast_mention(destination, name, allow, warnings)
        if target.startswith("!subteam^") and not allow:  # a user group notifies as widely as @channel
            return _broadcast_mention(destination, (match.group(2) or "@group").lstrip("@"), allow, warnings)
        return str(match.group(0))

    text = _SLACK_LINK.sub(special, text)
    return str(
        _TYPED_BROADCAST.sub(lambda m: _broadcast_mention(destination, m.group(1).lower(), allow, warnings), text)
    )


def _broadcast_mention(destination: str, name: str, allow: bool, warnings: list[str]) -> str:
    if allow:
        return f"<!{name}>"
    note = (
        f"@{name} will not notify anyone in {destination}: it is sent as plain text "
        f"(set allow_broadcast_mentions = true on [destinations.{destination}] to allow it)."
    )
    if note not in warnings:
        warnings.append(note)
    return f"@\u2060{name}"  # a word joiner keeps it readable while Slack no longer sees a mention


def _convert(destination: str, text: str, warnings: list[str], markdown: bool) -> str:
    """Slack mrkdwn into readable plain text, or into Markdown: links spelled out or as [label](url),
    mentions as names, broadcast mentions (which only mean something in Slack) left out."""

    def link(match: regex.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):
            return str(label).lstrip("@") if label else "a colleague"
        if target.startswith("#"):
            return f"#{label}" if label else "a channel"
        if target.startswith("!"):
            name = target[1:].split("^")[0].lower()
            if name in ("channel", "here", "everyone"):
                return _dropped(destination, name, warnings)
            return str(label or "").lstrip("@")
        shown = str(label or target.removeprefix("mailto:"))
        if markdown:
            return f"[{shown}]({target})"
        if target.startswith("mailto:") or not label or target.rstrip("/").endswith("//" + label):
            return shown if target.startswith("mailto:") else str(target)
        return f"{label} ({target})"

    text = _SLACK_LINK.sub(link, text)
    text = _TYPED_BROADCAST.sub(lambda m: _dropped(destination, m.group(1).lower(), warnings), text)
    if not markdown:
        pieces = regex.split(f"({_URL.pattern})", text, flags=regex.IGNORECASE)  # links keep their _ and *
        text = "".join(piece if index % 2 else _unmark(piece) for index, piece in enumerate(pieces))
        text = regex.sub(r"^&?gt;\s?|^>\s?", "", html.unescape(text), flags=regex.MULTILINE)
    else:
        text = html.unescape(
            _MARKERS.sub(lambda m: f"{_MARKDOWN[m.group(1)]}{m.group(2)}{_MARKDOWN[m.group(1)]}", text)
        )
    text = regex.sub(r"[ \t]{2,}", " ", text)
    text = regex.sub(r" +([.,;:!?])", r"\1", text)
    return str(regex.sub(r"\n{3,}", "\n\n", "\n".join(line.strip() for line in text.split("\n")))).strip()


def _unmark(text: str) -> str:
    """Remove mrkdwn's code ticks and *bold*, _italic_, ~strike~ markers, nested ones too."""
    text = str(_CODE.sub("", text))
    previous = None
    while previous != text:
        previous, text = text, str(_MARKERS.sub(r"\2", text))
    return text


def _dropped(destination: str, name: str, warnings: list[str]) -> str:
    note = f"@{name} is left out for {destination}: it only means something in Slack."
    if note not in warnings:
        warnings.append(note)
    return ""


def counter_for(limits: Limits) -> Callable[[str], int]:
    """The function that measures a text the way this network does."""
    if limits.counting is Counting.X_WEIGHTED:
        return lambda text: x_weighted_length(text, limits.url_length or 23)
    if limits.counting is Counting.GRAPHEMES:
        return lambda text: _with_urls(text, limits.url_length, lambda s: len(regex.findall(r"\X", s)))
    if limits.reserved:
        return lambda text: _with_urls(text, limits.url_length, lambda s: len(s) + sum(c in limits.reserved for c in s))
    return lambda text: _with_urls(text, limits.url_length, len)


def _with_urls(text: str, url_length: int | None, count: Callable[[str], int]) -> int:
    if url_length is None:
        return count(text)
    total, last = 0, 0
    for match in _URL.finditer(text):
        total += count(text[last : match.start()]) + url_length
        last = match.end()
    return total + count(text[last:])


def x_weighted_length(text: str, url_length: int = 23) -> int:
    """X's weighted length: links 23, emoji 2, CJK and most non-Latin scripts 2, the rest 1.

    A bare domain (example.com) is a link on X too; it is counted as at least `url_length`, so a
    rendering never exceeds X's limit even where X would count it shorter.
    """
    text = unicodedata.normalize("NFC", text)
    total, last = 0, 0
    for match in _links(text):
        total += _weigh(text[last : match.start()])
        link = match.group(0)
        total += url_length if _URL.fullmatch(link) else max(url_length, _weigh(link))
        last = match.end()
    return total + _weigh(text[last:])


def _links(text: str) -> list[regex.Match[str]]:
    found = list(_URL.finditer(text))
    taken = [(m.start(), m.end()) for m in found]
    for match in _BARE_DOMAIN.finditer(text):
        if not any(s <= match.start() < e for s, e in taken):
            found.append(match)
    return sorted(found, key=lambda m: m.start())


def _weigh(text: str) -> int:
    total = 0
    for grapheme in regex.findall(r"\X", text):
        if _EMOJI.search(grapheme):
            total += 2
        else:
            total += sum(1 if any(lo <= ord(c) <= hi for lo, hi in _X_LIGHT_RANGES) else 2 for c in grapheme)
    return total


def split_thread(text: str, limit: int, measure: Callable[[str], int]) -> tuple[str, ...]:
    """Split into numbered parts, at sentence ends where possible, else between words.

    Each part, numbering included, measures at most `limit`. The numbering's own width depends on the
    number of parts, so the split is redone until the count is stable.
    """
    total = 2
    for _ in range(6):
        budget = limit - measure(f" ({total}/{total})")
        parts = _pack(_atoms(text, budget, measure), budget, measure)
        if len(parts) <= total and len(str(len(parts))) == len(str(total)):
            break
        total = len(parts)
    count = len(parts)
    return tuple(f"{part} ({i}/{count})" for i, part in enumerate(parts, start=1))


def _atoms(text: str, budget: int, measure: Callable[[str], int]) -> list[str]:
    """Sentences (with their trailing space) that fit; words of those that don't; graphemes of huge words."""
    atoms: list[str] = []
    last = 0
    pieces = []
    for match in _SENTENCE_END.finditer(text):
        pieces.append(text[last : match.end()])
        last = match.end()
    pieces.append(text[last:])
    for sentence in filter(None, pieces):
        if measure(sentence.strip()) <= budget:
            atoms.append(sentence)
            continue
        for word in regex.findall(r"\S+\s*", sentence):
            if measure(word.strip()) <= budget:
                atoms.append(word)
            else:
                atoms.extend(regex.findall(r"\X", word))
    return atoms


def _pack(atoms: list[str], budget: int, measure: Callable[[str], int]) -> list[str]:
    parts: list[str] = []
    current = ""
    for atom in atoms:
        candidate = current + atom
        if current and measure(candidate.strip()) > budget:
            parts.append(current.strip())
            current = atom
        else:
            current = candidate
    if current.strip():
        parts.append(current.strip())
    return parts
