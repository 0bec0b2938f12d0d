"""Adaptive Cards for the Teams surface: the preview, the composer, the approval request, the live report.

Pure functions from the core's data to card JSON. Buttons are `Action.Execute` (Universal Actions): Teams
sends an `adaptiveCard/action` invoke, and the card the bot answers with replaces the clicked one, for
everyone, at once. Version 1.4 is what Teams renders on every client (learn.microsoft.com, "Cards
reference").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from relay.config import DestinationConfig
from relay.destination import Counting
from relay.model import Broadcast, BroadcastState, Delivery
from relay.render import Rendering
from relay.reports import MARKS, Line, Report, excerpt, line, summary

Card = dict[str, Any]
Element = dict[str, Any]

TEXT_MAX = 3000  # the same cap as the Slack composer, so a message fits both
# Bytes of message text one card shows: Teams refuses a bot message over about 28 KB, envelope included
# (learn.microsoft.com, "Format your bot messages"), and the card's labels, counts and buttons need the rest.
CARD_TEXT_MAX = 20_000


def usage(needs_second_person: bool) -> str:
    return (
        "**How to broadcast**: write `broadcast <message>` to see exactly what each destination will receive, "
        "then **Approve**. `broadcast` alone opens a composer; `status` and `history` show what went out; "
        "`help` shows this. Nothing is sent until you "
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


def _within(text: str, room: int) -> str:
    """`text`, or as much of it as fits in `room` bytes (Teams measures a message in bytes), saying so."""
    data = text.encode()
    if len(data) <= room:
        return text
    shown = data[:room].decode(errors="ignore")
    return f"{shown}… (cut here to fit Teams: {len(text) - len(shown):,} more characters are sent as written)"


def _destinations(renderings: Sequence[Rendering], destinations: dict[str, DestinationConfig]) -> list[Element]:
    """Every destination's text, as much as fits in one card (CARD_TEXT_MAX), then its warnings."""
    body: list[Element] = []
    room = CARD_TEXT_MAX
    for rendering in renderings:
        config = destinations[rendering.destination]
        dry = " · dry run: recorded, not posted" if config.dry_run else ""
        items: list[Element] = [_text(f"**{config.name}** · {config.kind}{dry}", weight="Bolder")]
        unit = "weighted chars" if rendering.counting is Counting.X_WEIGHTED else "chars"
        for index, part in enumerate(rendering.parts):
            if room <= 0:
                left = len(rendering.parts) - index
                items.append(
                    _text(f"… and {left} more part{'s' if left != 1 else ''}, cut here to fit Teams.", isSubtle=True)
                )
                break
            label = f"Part {index + 1}/{len(rendering.parts)} · " if len(rendering.parts) > 1 else ""
            items.append(
                _text(f"{label}{rendering.lengths[index]:,}/{rendering.limit:,} {unit}", isSubtle=True, size="Small")
            )
            items.append(_text(_within(part, room)))
            room -= len(part.encode())
        if rendering.replies:
            items.append(_text(f"💬 Replies: {rendering.replies}", isSubtle=True, size="Small"))
        items.extend(_text(f"⚠️ {w}", color="Warning", size="Small") for w in rendering.warnings)
        if rendering.error:
            items.append(_text(f"⛔ {rendering.error}", color="Attention"))
        body.append({"type": "Container", "separator": True, "items": items})
    return body


def preview(
    broadcast: Broadcast,
    renderings: Sequence[Rendering],
    destinations: dict[str, DestinationConfig],
    audiences: Iterable[str],
    needs_second_person: bool,
) -> Card:
    """What the leader sees after `broadcast <message>`: every destination's text, then the choices."""
    count = len(renderings)
    body = [
        _text(
            f"📣 **Preview** of broadcast `{broadcast.id}` to **{broadcast.audience}** ({count} destination"
            f"{'s' if count != 1 else ''}). Nothing is sent until you approve."
        ),
        *_destinations(renderings, destinations),
        {
            "type": "Input.ChoiceSet",
            "id": "audience",
            "label": "Audience",
            "value": broadcast.audience,
            "choices": [{"title": name, "value": name} for name in audiences],
        },
    ]
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
    return _card(body, actions)


def composer(audiences: Iterable[str], audience: str) -> Card:
    """`broadcast` with no text: write the message and pick the audience."""
    return _card(
        [
            _text("📣 **New broadcast**"),
            {"type": "Input.Text", "id": "text", "label": "Message", "isMultiline": True, "maxLength": TEXT_MAX},
            {
                "type": "Input.ChoiceSet",
                "id": "audience",
                "label": "Audience",
                "value": audience,
                "choices": [{"title": name, "value": name} for name in audiences],
            },
        ],
        [{"type": "Action.Execute", "title": "Preview", "verb": "compose", "data": {}}],
    )


def approval_request(
    broadcast: Broadcast, author: str, renderings: Sequence[Rendering], destinations: dict[str, DestinationConfig]
) -> Card:
    """Sent to approvers in Teams: who asks, what each destination will receive, Approve / Reject."""
    verb = "retract" if broadcast.state is BroadcastState.RETRACT_PENDING else "broadcast"
    body = [
        _text(f"📣 **{author}** asks to {verb} `{broadcast.id}` to **{broadcast.audience}**. Approve it?"),
        *_destinations(renderings, destinations),
    ]
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
    return _card(body, actions)


def decided(broadcast: Broadcast, by: str | None) -> str:
    who = f" by {by}" if by else ""
    return {
        BroadcastState.APPROVED: f"✅ Broadcast `{broadcast.id}` was approved{who} and is going out.",
        BroadcastState.REJECTED: f"❌ Broadcast `{broadcast.id}` was rejected{who}. Nothing was sent.",
        BroadcastState.CANCELLED: f"🗑️ Broadcast `{broadcast.id}` was cancelled{who}. Nothing was sent.",
        BroadcastState.EXPIRED: f"⌛ Broadcast `{broadcast.id}` expired. Nothing was sent.",
        BroadcastState.PENDING: f"⏳ Broadcast `{broadcast.id}` is waiting for an approver.",
        BroadcastState.RETRACT_PENDING: f"⏳ Retracting `{broadcast.id}` waits for an approver.",
        BroadcastState.RETRACTED: f"🗑️ Broadcast `{broadcast.id}` is being retracted everywhere.",
        BroadcastState.EDIT_PENDING: f"⏳ Correcting `{broadcast.id}` waits for an approver.",
    }.get(broadcast.state, f"Broadcast `{broadcast.id}` is {broadcast.state.value}.")


def notice(text: str) -> Card:
    """A card that says one thing and offers nothing to click."""
    return _card([_text(text)])


def delivery_line(delivery: Delivery) -> str:
    return _line_text(line(delivery))


def _line_text(shown: Line) -> str:
    text = f"{MARKS[shown.status]} **{shown.destination}**: {shown.words}"
    return text + (f" · [view]({shown.link})" if shown.link else "")


def history(shown: Sequence[tuple[Broadcast, Sequence[Delivery]]], detailed: bool) -> Card:
    """`status` (the last few, destination by destination) and `history` (one line each)."""
    if not shown:
        return notice("No broadcasts yet.")
    body: list[Element] = []
    for broadcast, deliveries in shown:
        items = [_text(f"`{summary(broadcast, deliveries)}`", weight="Bolder")]
        if detailed:
            items.extend(_text(delivery_line(d)) for d in deliveries)
        body.append({"type": "Container", "separator": True, "items": items})
    return _card(body)


def report(broadcast: Broadcast, now: Report) -> Card:
    """The live report, which replaces the preview card."""
    head = f"📣 Broadcast `{broadcast.id}` to **{broadcast.audience}**: {now.progress}"
    body = [_text(head), _text(excerpt(broadcast.text), isSubtle=True)]
    actions = None
    if broadcast.state is BroadcastState.APPROVED:
        confirm = _card(
            [_text("Its posts are deleted from every destination that allows it.")],
            [_execute("Retract", "retract", broadcast.id, style="destructive")],
        )
        correction = _card(
            [{"type": "Input.Text", "id": "text", "isMultiline": True, "maxLength": TEXT_MAX, "value": broadcast.text}],
            [_execute("Correct staff posts", "correct", broadcast.id)],
        )
        actions = [
            {"type": "Action.ShowCard", "title": "Correct staff posts…", "card": correction},
            {"type": "Action.ShowCard", "title": "Retract everywhere…", "card": confirm},
        ]
    shown = [_line_text(each) for each in now.lines] + [f"{MARKS[status]} {words}" for status, words in now.tallies]
    return _card([*body, *(_text(text) for text in shown)], actions)
