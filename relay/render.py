"""Turn the leader's message (Slack mrkdwn) into exactly what each destination will receive.

The preview shows these renderings, and the outbox posts them as shown: what the leader approves is what
goes out, part for part. Each network's rules come from its adapter's `Limits`; nothing here names a
network.
"""

from __future__ import annotations

import functools
import html
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import regex

from relay import facets, linked, threads_text, twitter_text
from relay.destination import Counting, Limits, Markup

# Slack truncates chat.postMessage text past 40,000 characters (api.slack.com/methods/chat.postMessage);
# no destination can carry more, so no broadcast may be longer.
MAX_MESSAGE_CHARACTERS = 40_000

_SLACK_LINK = regex.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
_TYPED_BROADCAST = regex.compile(r"(?<![\w@])@(channel|here|everyone)\b", regex.IGNORECASE)
_URL = regex.compile(r"https?://[^\s<>\"\x00-\x1f]+[^\s<>\"\x00-\x1f.,;:!?)\]'’”]", regex.IGNORECASE)
_MARKERS = regex.compile(r"(?<![\w*_~`])([*_~])(?=\S)(.+?)(?<=\S)\1(?![\w*_~`])")
_MARKDOWN = {"*": "**", "_": "_", "~": "~~"}  # mrkdwn marker → its Markdown (Teams)
_CODE = regex.compile(r"```\n?|`")
_INVISIBLE = regex.compile(r"\p{Cf}")
_CONTROL = regex.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SENTENCE_END = regex.compile(r"(?<=[.!?…。！？])\s+|\n+")
_WORD = regex.compile(f"(?:{linked.MARKED.pattern}|\\S)+\\s*")  # a linked label is one word, spaces and all


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
    links: tuple[tuple[facets.Facet, ...], ...] = ()  # per part, its words linked to a URL (`Limits.linked_text`)
    images: tuple[str, ...] = ()  # per attached image, what this destination receives (relay/images.py)
    cards: tuple[str, ...] = ()  # the links whose page will be read for a link card (relay/link_cards.py)

    def payloads(self) -> tuple[str, ...]:
        """What the outbox keeps and posts for each part: its text, with its linked words marked in it."""
        links = self.links or ((),) * len(self.parts)
        return tuple(linked.write(text, spans) for text, spans in zip(self.parts, links, strict=True))


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
        body = _convert(
            destination, text, warnings, markdown=limits.markup is Markup.MARKDOWN, labels=limits.linked_text
        )
    counter = counter_for(limits)
    fits = _fits_for(limits)
    if limits.linked_text and not fits(body):
        body = _shorten_unsplittable(body, limits)
    error = None
    if not body:
        parts: tuple[str, ...] = ()
        error = f"Nothing is left to post to {destination} once mentions and markup are removed."
    elif fits(body):
        parts = (body,)
    elif limits.max_thread_parts > 1:
        parts = split_thread(body, limits)
        if unfit := next((part for part in parts if not fits(part)), None):
            error = (
                f"Too long for {destination}: one part cannot be split further and is {_measured(unfit, limits)}. "
                "Shorten the link, its label or the word in it."
            )
        if len(parts) > limits.max_thread_parts:
            error = (
                f"Too long for {destination}: it would take {len(parts)} posts, and at most "
                f"{limits.max_thread_parts} are allowed in a thread. Shorten the message."
            )
    else:
        parts = (body,)
        error = f"Too long for {destination}: {_measured(body, limits)}. Shorten the message."
    read = [linked.read(part) for part in parts]
    return Rendering(
        destination=destination,
        parts=tuple(text for text, _ in read),
        lengths=tuple(counter(p) for p in parts),
        limit=limits.max_length,
        counting=limits.counting,
        warnings=tuple(warnings),
        error=error,
        links=tuple(links for _, links in read),
    )


def _unit(counting: Counting) -> str:
    return {
        Counting.CHARACTERS: "characters",
        Counting.GRAPHEMES: "characters",
        Counting.MASTODON: "characters",
        Counting.X_WEIGHTED: "weighted characters",
        Counting.THREADS: "characters",
    }[counting]


def _measured(text: str, limits: Limits) -> str:
    """The text's size against the limit it breaks, in the network's own terms."""
    size = counter_for(limits)(text)
    if size <= limits.max_length and limits.max_links is not None:
        return f"{threads_text.distinct_links(text)} links, of at most {limits.max_links} in one post"
    if size <= limits.max_length and limits.max_bytes is not None:
        return f"{facets.utf8_length(linked.shown(text)):,} of {limits.max_bytes:,} bytes"
    return f"{size:,} of {limits.max_length:,} {_unit(limits.counting)}"


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


def _convert(destination: str, text: str, warnings: list[str], markdown: bool, labels: bool) -> str:
    """Slack mrkdwn into readable plain text, or into Markdown: links spelled out, as [label](url), or as
    linked labels (`labels`, relay/linked.py), mentions as names, broadcast mentions (which only mean
    something in Slack) left out."""

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
        # The link must end where the networks' detectors end it: a space after it, unless one follows
        # (Mastodon and Bluesky run a link on to the next space, through `)` and Japanese text alike).
        gap = "" if "://" not in target or regex.match(r"\s|$", match.string[match.end() :]) else " "
        if target.startswith("mailto:") or not label or target.rstrip("/").endswith("//" + label):
            return shown if target.startswith("mailto:") else f"{target}{gap}"
        if labels and label.strip() and "://" in target:
            return linked.mark(label, target)
        return f"{label} ({target}){gap}"

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


def as_markdown(text: str) -> str:
    """A broadcast's text, which the relay keeps in Slack mrkdwn, as Markdown: for showing it back on a
    surface that reads Markdown (Teams cards), where `<url|label>` would be shown as typed."""
    return _convert("", text, [], markdown=True, labels=False)


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
    """The function that measures a text the way this network does (its own reference code, ported):
    what it shows, so a linked label counts as its words and not its URL."""
    measure = _measure(limits)
    if limits.linked_text:
        return lambda text: measure(linked.shown(text))
    return measure


def _measure(limits: Limits) -> Callable[[str], int]:
    if limits.counting is Counting.X_WEIGHTED:
        return twitter_text.weighted_length
    if limits.counting is Counting.MASTODON:
        return lambda text: twitter_text.mastodon_length(text, limits.url_length or twitter_text.URL_LENGTH)
    if limits.counting is Counting.GRAPHEMES:
        return facets.graphemes
    if limits.counting is Counting.THREADS:
        return threads_text.length
    if limits.reserved:
        return lambda text: len(text) + sum(c in limits.reserved for c in text)
    return len


def _fits_for(limits: Limits) -> Callable[[str], bool]:
    """Whether a text can go out as one post: within the length limit, and the byte limit where there is one."""
    measure = counter_for(limits)
    if limits.max_links is not None:
        links = limits.max_links
        return lambda text: measure(text) <= limits.max_length and threads_text.distinct_links(text) <= links
    if limits.max_bytes is None:
        return lambda text: measure(text) <= limits.max_length
    cap = limits.max_bytes
    return lambda text: measure(text) <= limits.max_length and facets.utf8_length(linked.shown(text)) <= cap


def _entities_for(limits: Limits) -> Callable[[str], list[tuple[int, int]]]:
    """Where the network sees links, mentions and tags: spans a thread split must not cut."""
    if limits.counting in (Counting.X_WEIGHTED, Counting.THREADS):
        return lambda text: [(u.start, u.end) for u in twitter_text.extract_urls(text)]
    if limits.counting is Counting.MASTODON:
        return lambda text: [(u.start, u.end) for u in twitter_text.mastodon_urls(text)]
    if limits.linked_text:
        return lambda text: [(f.start, f.end) for f in facets.with_links(text, _marked(text))]
    if limits.counting is Counting.GRAPHEMES:
        return lambda text: [(f.start, f.end) for f in facets.detect(text)]
    return lambda text: []


def _marked(text: str) -> tuple[facets.Facet, ...]:
    """The linked labels in a text being split, as facets over the marks themselves."""
    return tuple(facets.Facet(start, end, "link", "") for start, end in linked.spans(text))


def _shorten_unsplittable(body: str, limits: Limits) -> str:
    """A link too long for a thread part would be cut between two posts, and neither half would link: it is
    shown as Bluesky's own app shows links, shortened, and linked to the whole URL."""
    fits = _fits_for(limits)
    numbering = f" ({limits.max_thread_parts}/{limits.max_thread_parts})"
    pieces, position, marks = [], 0, _marked(body)
    for facet in facets.with_links(body, marks):
        if facet in marks or facet.kind != "link" or fits(body[facet.start : facet.end] + numbering):
            continue
        pieces += [body[position : facet.start], linked.mark(linked.short(facet.value), facet.value)]
        position = facet.end
    return "".join(pieces) + body[position:]


def split_thread(text: str, limits: Limits) -> tuple[str, ...]:
    """Split into numbered parts, at sentence ends where possible, else between words, else between
    graphemes, never inside a link, mention or tag as the network detects them.

    Each part, numbering included, fits the network's limits by its own count. The numbering's own width
    depends on the number of parts, so the split is redone until the count is stable.
    """
    fits = _fits_for(limits)
    entities = _entities_for(limits)
    total = 2
    for _ in range(6):
        budget_fits = functools.partial(_fits_numbered, fits, f" ({total}/{total})")
        parts = _pack(_atoms(text, budget_fits, entities), budget_fits)
        if len(parts) <= total and len(str(len(parts))) == len(str(total)):
            break
        total = len(parts)
    count = len(parts)
    return tuple(f"{part} ({i}/{count})" for i, part in enumerate(parts, start=1))


def _fits_numbered(fits: Callable[[str], bool], numbering: str, part: str) -> bool:
    return fits(part + numbering)


def _atoms(text: str, fits: Callable[[str], bool], entities: Callable[[str], list[tuple[int, int]]]) -> list[str]:
    """Sentences (with their trailing space) that fit; words of those that don't; graphemes of huge words,
    each link, mention or tag kept whole."""
    atoms: list[str] = []
    last = 0
    pieces = []
    marked = linked.spans(text)
    for match in _SENTENCE_END.finditer(text):
        if any(start < match.start() < end for start, end in marked):
            continue
        pieces.append(text[last : match.end()])
        last = match.end()
    pieces.append(text[last:])
    for sentence in filter(None, pieces):
        if fits(sentence.strip()):
            atoms.append(sentence)
            continue
        for word in (match.group() for match in _WORD.finditer(sentence)):
            if fits(word.strip()):
                atoms.append(word)
            else:
                atoms.extend(_unbroken(word, entities(word)))
    return atoms


def _unbroken(word: str, spans: list[tuple[int, int]]) -> list[str]:
    """A word's graphemes, except that each entity in it stays one piece."""
    pieces: list[str] = []
    position = 0
    for start, end in sorted(spans):
        if start < position:
            continue
        pieces.extend(regex.findall(r"\X", word[position:start]))
        pieces.append(word[start:end])
        position = end
    pieces.extend(regex.findall(r"\X", word[position:]))
    return pieces


def _pack(atoms: list[str], fits: Callable[[str], bool]) -> list[str]:
    """Greedy parts: each takes the longest run of atoms that fits, found by doubling then halving, since
    measuring runs the network's whole extractor and a long word is hundreds of graphemes."""
    parts: list[str] = []
    start = 0
    while start < len(atoms):
        good, step, bad = start + 1, 1, len(atoms) + 1  # one atom always goes: render reports it if unfit
        while good < len(atoms):
            probe = min(good + step, len(atoms))
            if not fits("".join(atoms[start:probe]).strip()):
                bad = probe
                break
            good, step = probe, step * 2
        while bad - good > 1 and good < len(atoms):
            middle = (good + bad) // 2
            if fits("".join(atoms[start:middle]).strip()):
                good = middle
            else:
                bad = middle
        if part := "".join(atoms[start:good]).strip():
            parts.append(part)
        start = good
    return parts
