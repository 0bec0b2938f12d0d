"""Adaptive Cards for the Teams surface: the preview, the composer, the approval request, the live report.

Pure functions from the core's data to card JSON. Buttons are `Action.Execute` (Universal Actions): Teams
sends an `adaptiveCard/action` invoke, and the card the bot answers with replaces the clicked one, for
everyone, at once. Version 1.4 is what Teams renders on every client (learn.microsoft.com, "Cards
reference").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from relay import link_cards
from relay.config import DestinationConfig
from relay.destination import Counting, Image
from relay.images import MAX_ALT
from relay.model import Alike, Broadcast, BroadcastState, Delivery
from relay.render import Rendering, as_markdown
from relay.reports import MARKS, NEEDS_A_LOOK, Line, Report, Status, excerpt, line, summary

Card = dict[str, Any]
Element = dict[str, Any]

TEXT_MAX = 3000  # the same cap as the Slack composer, so a message fits both
# Teams refuses a bot message over about 28 KB, envelope included, with 413 MessageSizeTooBig
# (learn.microsoft.com, "Limits and specifications for Microsoft Teams"). A card is measured as the bot
# sends it (JSON with non-ASCII escaped); the activity around it (ids, service URL, conversation) takes
# under 2 KB.
CARD_MAX_BYTES = 24_000
# How much a card shows, from most to least: (items a list names one by one, bytes of message text).
# A card is drawn at the first level that fits CARD_MAX_BYTES; the last is small whatever the input.
LEVELS = ((25, 18_000), (10, 8_000), (5, 3_000), (2, 1_000))
WORDS_MAX = 400  # characters of one line's reason (a network's error) shown before it is cut


def size(card: Card) -> int:
    """Bytes of `card` as the bot sends it (aiohttp's JSON: non-ASCII as \\u escapes)."""
    return len(json.dumps(card))


def _fit(build: Callable[[int, int], Card]) -> Card:
    """The most detailed drawing of a card that Teams will take."""
    for listed, room in LEVELS:
        card = build(listed, room)
        if size(card) <= CARD_MAX_BYTES:
            break
    return card


def _when(moment: float) -> str:
    """A time each reader sees on their own clock: Adaptive Cards' DATE/TIME functions."""
    stamp = datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{{{{DATE({stamp}, SHORT)}}}} {{{{TIME({stamp})}}}}"


def usage(needs_second_person: bool) -> str:
    """The help, as a markdown message. No `<placeholder>`: Teams takes HTML tags in a message's text
    (learn.microsoft.com, "Formatting bot messages"), and the Agents Playground shows one in a code span as
    `&lt;message&gt;`."""
    return (
        "**How to broadcast**: write `broadcast` then your message to see exactly what each destination will "
        "receive, then **Approve**. `broadcast` alone opens a composer; `status` and `history` show what went "
        "out, `status` then a broadcast's id one broadcast in full; `accounts` connects your own accounts, to "
        "broadcast as yourself; `help` shows this. Nothing is sent until you "
        "approve" + (", and then another approver must approve it." if needs_second_person else ".")
    )


def _card(body: list[Element], actions: list[Element] | None = None) -> Card:
    card: Card = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return card


def _text(text: str, **style: Any) -> Element:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _execute(title: str, verb: str, broadcast_id: str, **extra: Any) -> Element:
    return {"type": "Action.Execute", "title": title, "verb": verb, "data": {"broadcast_id": broadcast_id}, **extra}


def _cost(text: str) -> int:
    return len(json.dumps(text)) - 2


def _within(text: str, room: int) -> str:
    """`text`, or as much of it as takes `room` bytes in the card, cut between words, saying so."""
    if _cost(text) <= room:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits
        middle = (low + high + 1) // 2
        low, high = (middle, high) if _cost(text[:middle]) <= room else (low, middle - 1)
    space = text.rfind(" ", max(0, low - 200), low)
    shown = text[: space if space > 0 else low]
    return f"{shown}… (cut here to fit Teams: {len(text) - len(shown):,} more characters are sent as written)"


def _names(names: Sequence[str], listed: int) -> str:
    """Names, or the first `listed` of them and how many more."""
    if len(names) <= listed:
        return ", ".join(f"**{n}**" for n in names)
    return ", ".join(f"**{n}**" for n in names[:listed]) + f" and {len(names) - listed} more"


def _looks(rendering: Rendering) -> tuple[Any, ...]:
    """What a preview says of a destination but its name and text: destinations alike share one line."""
    return (
        rendering.lengths,
        rendering.limit,
        rendering.counting,
        rendering.replies,
        rendering.warnings,
        rendering.error,
        rendering.images,
        rendering.cards,
    )


def _needs_a_look(renderings: Sequence[Rendering]) -> tuple[bool, bool, int]:
    """Sort key: those that cannot take the message first, then those with warnings, then the most."""
    return (all(r.error is None for r in renderings), all(not r.warnings for r in renderings), -len(renderings))


def _destinations(
    renderings: Sequence[Rendering], destinations: dict[str, DestinationConfig], listed: int, room: int
) -> list[Element]:
    """Each different text once, after the destinations that receive it, their counts and warnings:
    those that cannot take the message first, then those with warnings. Past `listed`, counts."""
    texts: dict[tuple[str, ...], list[Rendering]] = {}
    for rendering in renderings:
        texts.setdefault(rendering.parts, []).append(rendering)
    body: list[Element] = []
    ordered = sorted(texts.values(), key=_needs_a_look)
    for receivers in ordered[:listed]:
        items: list[Element] = []
        alike: dict[tuple[Any, ...], list[Rendering]] = {}
        for rendering in receivers:
            alike.setdefault(_looks(rendering), []).append(rendering)
        lines = sorted(alike.values(), key=_needs_a_look)
        for group in lines[:listed]:
            items.extend(_receivers(group, destinations, listed))
        if len(lines) > listed:
            left = sum(len(g) for g in lines[listed:])
            items.append(
                _text(f"… and {left} more destination{'s' if left != 1 else ''} with this text.", isSubtle=True)
            )
        parts = receivers[0].parts
        for index, part in enumerate(parts):
            if room <= 0:
                left = len(parts) - index
                items.append(
                    _text(f"… and {left} more part{'s' if left != 1 else ''}, cut here to fit Teams.", isSubtle=True)
                )
                break
            if len(parts) > 1:
                items.append(_text(f"Part {index + 1}/{len(parts)}", isSubtle=True, size="Small"))
            items.append(_text(_within(part, room)))
            room -= _cost(part)
        body.append({"type": "Container", "separator": True, "items": items})
    hidden = ordered[listed:]
    if hidden:
        count = sum(len(g) for g in hidden)
        body.append(_text(f"… and {count} more destination{'s' if count != 1 else ''}, each fine.", isSubtle=True))
    return body


def _receivers(group: Sequence[Rendering], destinations: dict[str, DestinationConfig], listed: int) -> list[Element]:
    """One line for destinations whose counts and warnings are the same: names, kind, length, notes."""
    rendering = group[0]
    configs = [destinations[r.destination] for r in group]
    kinds = ", ".join(sorted({c.kind for c in configs}))
    dry = " · dry run: recorded, not posted" if all(c.dry_run for c in configs) else ""
    unit = "weighted chars" if rendering.counting is Counting.X_WEIGHTED else "chars"
    lengths = ", ".join(f"{n:,}" for n in rendering.lengths)
    items = [
        _text(f"{_names([c.name for c in configs], listed)} · {kinds}{dry}", weight="Bolder"),
        _text(f"{lengths}/{rendering.limit:,} {unit}", isSubtle=True, size="Small"),
    ]
    if rendering.replies:
        items.append(_text(f"💬 Replies: {rendering.replies}", isSubtle=True, size="Small"))
    if rendering.images:
        items.append(_text(excerpt("🖼 " + " · ".join(rendering.images), WORDS_MAX), isSubtle=True, size="Small"))
    if rendering.cards:
        items.append(_text(excerpt(link_cards.note(rendering.cards), WORDS_MAX), isSubtle=True, size="Small"))
    items.extend(_text(f"⚠️ {excerpt(w, WORDS_MAX)}", color="Warning", size="Small") for w in rendering.warnings)
    if rendering.error:
        items.append(_text(f"⛔ {excerpt(rendering.error, WORDS_MAX)}", color="Attention"))
    return items


def pictures(images: Sequence[Image], urls: Sequence[str]) -> Card:
    """A channel post's images: a card of Image elements, each by URL with its alt text (Teams fetches
    them to show them; a photo inlined as data would not fit in a message)."""
    return _card(
        [
            {"type": "Image", "url": url, "altText": image.alt, "size": "Stretch"}
            for image, url in zip(images, urls, strict=True)
        ]
    )


def _audience_choice(audiences: Sequence[str], audience: str) -> Element:
    return {
        "type": "Input.ChoiceSet",
        "id": "audience",
        "label": "Audience",
        "value": audience,
        "choices": [{"title": name, "value": name} for name in audiences],
    }


def preview(
    broadcast: Broadcast,
    renderings: Sequence[Rendering],
    destinations: dict[str, DestinationConfig],
    audiences: Iterable[str],
    needs_second_person: bool,
    alts: Sequence[str] = (),
) -> Card:
    """What the leader sees after `broadcast <message>`: every destination's text, then the choices. With
    images (`alts`: the alt text each has so far), a field per image for its alt text: Teams has none for a
    pasted image, and public networks refuse one without it. Every button of the card submits them."""
    choices = list(audiences)
    count = len(renderings)
    verb = "Request approval" if needs_second_person else "Approve and send"
    confirm = (
        f"An approver will be asked to approve this broadcast to **{broadcast.audience}**."
        if needs_second_person
        else f"This posts to every destination of **{broadcast.audience}** at once."
    )
    actions: list[Element] = []
    if not any(r.error for r in renderings):
        actions.append(  # a second step, since Adaptive Cards have no confirm dialog
            {
                "type": "Action.ShowCard",
                "title": f"{verb}…",
                "card": _card([_text(confirm)], [_execute(verb, "approve", broadcast.id, style="positive")]),
            }
        )
        actions.append(
            {
                "type": "Action.ShowCard",
                "title": "Schedule…",
                "card": _card(
                    [
                        {"type": "Input.Date", "id": "send_date", "label": "Day"},
                        {"type": "Input.Time", "id": "send_time", "label": "Time (your clock)"},
                    ],
                    [_execute(f"{verb} then", "schedule", broadcast.id, style="positive")],
                ),
            }
        )
    actions.append(_execute("Change audience", "audience", broadcast.id))
    if len(broadcast.text) <= TEXT_MAX:  # a longer text would be cut by the form, and the rest lost on save
        actions.append(
            {
                "type": "Action.ShowCard",
                "title": "Edit",
                "card": _card(
                    [
                        {
                            "type": "Input.Text",
                            "id": "text",
                            "label": "Message",
                            "isMultiline": True,
                            "maxLength": TEXT_MAX,
                            "value": broadcast.text,
                        }
                    ],
                    [_execute("Update preview", "edit", broadcast.id)],
                ),
            }
        )
    actions.append(_execute("Cancel", "cancel", broadcast.id, style="destructive"))

    def build(listed: int, room: int) -> Card:
        body = [
            _text(
                f"📣 **Preview** of broadcast **{broadcast.id}** to **{broadcast.audience}** ({count} destination"
                f"{'s' if count != 1 else ''}). Nothing is sent until you approve."
            ),
            *_alt_inputs(alts, broadcast.id),
            *_destinations(renderings, destinations, listed, room),
            _audience_choice(choices, broadcast.audience),
        ]
        return _card(body, actions)

    return _fit(build)


def _alt_inputs(alts: Sequence[str], broadcast_id: str) -> list[Element]:
    if not alts:
        return []
    fields: list[Element] = [
        {
            "type": "Input.Text",
            "id": f"alt_{number}",
            "label": f"Alt text of image {number}: what it shows, for those who cannot see it",
            "maxLength": MAX_ALT,
            "value": alt,
        }
        for number, alt in enumerate(alts, start=1)
    ]
    return [*fields, {"type": "ActionSet", "actions": [_execute("Save alt text", "alt", broadcast_id)]}]


def composer(audiences: Iterable[str], audience: str) -> Card:
    """`broadcast` with no text: write the message and pick the audience."""
    return _card(
        [
            _text("📣 **New broadcast**"),
            {"type": "Input.Text", "id": "text", "label": "Message", "isMultiline": True, "maxLength": TEXT_MAX},
            _audience_choice(list(audiences), audience),
        ],
        [{"type": "Action.Execute", "title": "Preview", "verb": "compose", "data": {}}],
    )


def approval_request(
    broadcast: Broadcast, author: str, renderings: Sequence[Rendering], destinations: dict[str, DestinationConfig]
) -> Card:
    """Sent to approvers in Teams: who asks, what each destination will receive, Approve / Reject."""
    verb = "retract" if broadcast.state is BroadcastState.RETRACT_PENDING else "broadcast"
    actions = [
        {
            "type": "Action.ShowCard",
            "title": "Approve…",
            "card": _card(
                [_text(f"This posts to every destination of **{broadcast.audience}** at once.")],
                [_execute("Approve and send", "approve", broadcast.id, style="positive")],
            ),
        },
        _execute("Reject", "reject", broadcast.id, style="destructive"),
    ]

    def build(listed: int, room: int) -> Card:
        body = [
            _text(f"📣 **{author}** asks to {verb} **{broadcast.id}** to **{broadcast.audience}**. Approve it?"),
            *_destinations(renderings, destinations, listed, room),
        ]
        return _card(body, actions)

    return _fit(build)


def decided(broadcast: Broadcast, by: str | None) -> str:
    """The outcome in one sentence, for a card or a message (no backticks: cards do not render code)."""
    who = f" by {by}" if by else ""
    name = f"**{broadcast.id}**"
    return {
        BroadcastState.APPROVED: f"✅ Broadcast {name} was approved{who} and is going out.",
        BroadcastState.REJECTED: f"❌ Broadcast {name} was rejected{who}. Nothing was sent.",
        BroadcastState.CANCELLED: f"🗑️ Broadcast {name} was cancelled{who}. Nothing was sent.",
        BroadcastState.EXPIRED: f"⌛ Broadcast {name} expired. Nothing was sent.",
        BroadcastState.PENDING: f"⏳ Broadcast {name} is waiting for an approver.",
        BroadcastState.RETRACT_PENDING: f"⏳ Retracting {name} waits for an approver.",
        BroadcastState.RETRACTED: f"🗑️ Broadcast {name} is being retracted everywhere.",
        BroadcastState.EDIT_PENDING: f"⏳ Correcting {name} waits for an approver.",
    }.get(broadcast.state, f"Broadcast {name} is {broadcast.state.value}.")


def notice(text: str) -> Card:
    """A card that says one thing and offers nothing to click."""
    return _card([_text(text)])


def delivery_line(delivery: Delivery) -> str:
    return _line_text(line(delivery))


def _line_text(shown: Line) -> str:
    text = f"{MARKS[shown.status]} **{shown.destination}**: {excerpt(shown.words, WORDS_MAX)}"
    if shown.link:
        text += f" · [view]({shown.link})"
    if shown.next_try:
        text += f" {'for' if shown.status is Status.WAITING else '; next try'} {_when(shown.next_try)}"
    return text


_ATTENTION_FIRST = {status: rank for rank, status in enumerate(NEEDS_A_LOOK)}


def _lines(lines: Sequence[Line], tallies: Sequence[tuple[Status, str]], listed: int, more: str) -> list[str]:
    """A report's lines, those needing a look first; past `listed`, how many more and where to see them."""
    ordered = sorted(lines, key=lambda shown: _ATTENTION_FIRST.get(shown.status, len(NEEDS_A_LOOK)))
    shown = [_line_text(each) for each in ordered[:listed]]
    if len(ordered) > listed:
        left = len(ordered) - listed
        shown.append(f"… and {left} more destination{'s' if left != 1 else ''} to look at: {more}.")
    return shown + [f"{MARKS[status]} {words}" for status, words in tallies]


def _pointer(broadcast_id: str) -> str:
    return f"write **status {broadcast_id}** to me, or open the status page"


def history(shown: Sequence[tuple[Broadcast, Sequence[Delivery]]], detailed: bool) -> Card:
    """`status` (the last few, destination by destination) and `history` (one line each)."""
    if not shown:
        return notice("No broadcasts yet.")

    def build(listed: int, room: int) -> Card:
        body: list[Element] = []
        for broadcast, deliveries in shown:
            items = [_text(summary(_shown(broadcast), deliveries), weight="Bolder")]
            if detailed:
                condensed = Report.of([Alike(d) for d in deliveries])
                texts = _lines(condensed.lines, condensed.tallies, listed, _pointer(broadcast.id))
                items.extend(_text(text) for text in texts)
            body.append({"type": "Container", "separator": True, "items": items})
        return _card(body)

    return _fit(build)


def _shown(broadcast: Broadcast) -> Broadcast:
    """The broadcast with its text as a card shows it: links as links, not as the Slack markup it is kept in."""
    return replace(broadcast, text=as_markdown(broadcast.text))


def _head(broadcast: Broadcast, now: Report, at: float) -> str:
    head = f"📣 Broadcast **{broadcast.id}** to **{broadcast.audience}**: "
    if broadcast.state is BroadcastState.APPROVED and broadcast.send_at and broadcast.send_at > at:
        return head + f"scheduled for {_when(broadcast.send_at)} ({now.progress.split(',')[0]} so far)."
    return head + now.progress


def report(broadcast: Broadcast, now: Report, at: float, buttons: bool = True) -> Card:
    """The live report, which replaces the preview card (`status <id>` shows it without `buttons`).
    `at`: the time now, to tell a scheduled broadcast (which says when it will go) from one going out."""
    actions = None
    if broadcast.state is BroadcastState.APPROVED and buttons:
        confirm = _card(
            [_text("Its posts are deleted from every destination that allows it.")],
            [_execute("Retract", "retract", broadcast.id, style="destructive")],
        )
        actions = [{"type": "Action.ShowCard", "title": "Retract everywhere…", "card": confirm}]
        if len(broadcast.text) <= TEXT_MAX:  # a longer text would be cut by the form
            correction = _card(
                [
                    {
                        "type": "Input.Text",
                        "id": "text",
                        "label": "Corrected message",
                        "isMultiline": True,
                        "maxLength": TEXT_MAX,
                        "value": broadcast.text,
                    }
                ],
                [_execute("Correct staff posts", "correct", broadcast.id)],
            )
            actions.insert(0, {"type": "Action.ShowCard", "title": "Correct staff posts…", "card": correction})

    def build(listed: int, room: int) -> Card:
        body = [_text(_head(broadcast, now, at)), _text(excerpt(as_markdown(broadcast.text)), isSubtle=True)]
        texts = _lines(now.lines, now.tallies, listed, _pointer(broadcast.id))
        return _card([*body, *(_text(text) for text in texts)], actions)

    return _fit(build)
