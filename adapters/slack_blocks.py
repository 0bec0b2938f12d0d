"""Block Kit for the Slack surface: the preview, the approval request, the live report, the composer.

Pure functions from the core's data to Slack JSON, kept apart from the handlers so each reads alone.
Limits quoted from Block Kit's reference (docs.slack.dev/reference/block-kit): a section's text is at
most 3,000 characters, a message at most 50 blocks, a plain-text input at most 3,000 characters.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from relay.broadcasts import Approval
from relay.config import DestinationConfig, Policy
from relay.destination import Counting
from relay.model import Broadcast, BroadcastState, Delivery
from relay.render import Rendering
from relay.reports import Line, Report, Status, excerpt, line, summary

Block = dict[str, Any]

SECTION_MAX = 3000
MESSAGE_MAX_BLOCKS = 50
INPUT_MAX = 3000

USAGE = (
    "*How to broadcast*\n"
    "• `/broadcast <message>`: preview your message as each destination will receive it, then *Approve*.\n"
    "• `/broadcast`: open the composer (message and audience).\n"
    "• `/broadcast status`, `/broadcast history`: what went out, destination by destination.\n"
    "• `/broadcast help`: this help.\n"
    "Write in Slack formatting; public networks get plain text, and long posts become numbered threads. "
    "Nothing is sent until you approve"
)


def usage(needs_second_person: bool) -> str:
    return USAGE + (", and then another approver must approve it." if needs_second_person else ".")


def _mrkdwn(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_MAX]}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:SECTION_MAX]}]}


def _chunks(text: str) -> list[str]:
    return [text[i : i + SECTION_MAX] for i in range(0, len(text), SECTION_MAX)] or [""]


def _shown(rendering: Rendering, kind: str) -> list[Block]:
    """The exact text(s), as Slack mrkdwn for Slack, verbatim plain text elsewhere."""
    blocks: list[Block] = []
    unit = "weighted chars" if rendering.counting is Counting.X_WEIGHTED else "chars"
    for index, part in enumerate(rendering.parts):
        label = f"Part {index + 1}/{len(rendering.parts)} · " if len(rendering.parts) > 1 else ""
        blocks.append(_context(f"{label}{rendering.lengths[index]:,}/{rendering.limit:,} {unit}"))
        for chunk in _chunks(part):
            if kind == "slack":
                blocks.append(_mrkdwn(chunk))
            else:
                blocks.append({"type": "section", "text": {"type": "plain_text", "text": chunk, "emoji": False}})
    return blocks


def _destination_title(config: DestinationConfig) -> str:
    where = f" · <#{config.options['channel']}>" if config.kind == "slack" else f" · {config.kind.upper()}"
    dry = " · _dry run: recorded, not posted_" if config.dry_run else ""
    return f"*{config.name}*{where}{dry}"


def preview(
    broadcast: Broadcast,
    renderings: Sequence[Rendering],
    destinations: dict[str, DestinationConfig],
    audiences: Iterable[str],
    needs_second_person: bool,
) -> list[Block]:
    """What the leader sees after /broadcast: every destination's text, then the choices."""
    count = len(renderings)
    blocks: list[Block] = [
        _mrkdwn(
            f":mega: *Preview* of broadcast `{broadcast.id}` to *{broadcast.audience}* "
            f"({count} destination{'s' if count != 1 else ''}). Nothing is sent until you approve."
        ),
        {"type": "divider"},
    ]
    body: list[Block] = []
    for rendering in renderings:
        config = destinations[rendering.destination]
        body.append(_mrkdwn(_destination_title(config)))
        if rendering.error:  # it cannot be sent as it is: say why, rather than show parts that won't go
            body.extend([_mrkdwn(f":no_entry: {rendering.error}"), {"type": "divider"}])
            continue
        body.extend(_shown(rendering, config.kind))
        if rendering.replies:
            body.append(_context(f":speech_balloon: Replies: {rendering.replies}"))
        body.extend(_context(f":warning: {w}") for w in rendering.warnings)
        body.append({"type": "divider"})
    room = MESSAGE_MAX_BLOCKS - len(blocks) - 3
    if len(body) > room:
        body = body[: room - 1] + [
            _context("… the preview is cut here to fit Slack; every part is sent as shown above and below.")
        ]
    blocks.extend(body)
    blocks.append(_actions(broadcast, [r for r in renderings if r.error], audiences, needs_second_person))
    if not any(r.error for r in renderings):
        blocks.append(_scheduling(broadcast, needs_second_person))
    return blocks


def _button(
    action_id: str, label: str, value: str, style: str | None = None, confirm: tuple[str, str, str, str] | None = None
) -> Block:
    """A button; `confirm` is Slack's confirmation dialog as (title, question, yes, no)."""
    button: Block = {"type": "button", "action_id": action_id, "text": _plain(label), "value": value}
    if style:
        button["style"] = style
    if confirm:
        title, question, yes, no = confirm
        button["confirm"] = {
            "title": _plain(title),
            "text": {"type": "mrkdwn", "text": question},
            "confirm": _plain(yes),
            "deny": _plain(no),
        }
    return button


def _plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


def _scheduling(broadcast: Broadcast, four_eyes: bool) -> Block:
    """A date and a time on the leader's own clock (their Slack time zone), and the button that uses them."""
    return {
        "type": "actions",
        "block_id": f"schedule:{broadcast.id}",
        "elements": [
            {"type": "datepicker", "action_id": "send_date", "placeholder": {"type": "plain_text", "text": "Day"}},
            {"type": "timepicker", "action_id": "send_time", "placeholder": {"type": "plain_text", "text": "Time"}},
            _button(
                "schedule",
                "Request approval to send then" if four_eyes else "Approve and send then",
                broadcast.id,
                confirm=(
                    "Schedule it?",
                    "It goes out to every destination at the day and time you picked, on your clock.",
                    "Schedule",
                    "Not yet",
                ),
            ),
        ],
    }


def _actions(broadcast: Broadcast, broken: list[Rendering], audiences: Iterable[str], four_eyes: bool) -> Block:
    options = [{"text": {"type": "plain_text", "text": name}, "value": name} for name in audiences]
    current = next(o for o in options if o["value"] == broadcast.audience)
    elements: list[Block] = [
        {
            "type": "static_select",
            "action_id": "choose_audience",
            "placeholder": {"type": "plain_text", "text": "Audience"},
            "options": options,
            "initial_option": current,
        }
    ]
    if not broken:
        verb = "Request approval" if four_eyes else "Approve and send"
        question = (
            f"An approver will be asked to approve this broadcast to *{broadcast.audience}*."
            if four_eyes
            else f"This posts to every destination of *{broadcast.audience}* at once."
        )
        title = "Send for approval?" if four_eyes else "Send now?"
        elements.append(_button("approve", verb, broadcast.id, "primary", (title, question, verb, "Not yet")))
    if len(broadcast.text) <= INPUT_MAX:  # a longer text would be cut by the form, and the rest lost on save
        elements.append(_button("edit", "Edit", broadcast.id))
    elements.append(_button("cancel", "Cancel", broadcast.id, "danger"))
    return {"type": "actions", "block_id": f"broadcast:{broadcast.id}", "elements": elements}


def who(person: str, policy: Policy) -> str:
    """A Slack member as a mention; someone from Teams by their [people] name."""
    return f"<@{person.removeprefix('slack:')}>" if person.startswith("slack:") else policy.name(person)


def approval_request(
    broadcast: Broadcast, renderings: Sequence[Rendering], destinations: dict[str, DestinationConfig], policy: Policy
) -> list[Block]:
    """Sent to the approvers: who asks, what each destination will receive, Approve / Reject."""
    if broadcast.state is BroadcastState.RETRACT_PENDING:
        asker = who(broadcast.retract_requested_by or broadcast.author, policy)
        ask = f":wastebasket: {asker} asks to *retract* broadcast `{broadcast.id}` from *{broadcast.audience}*"
    elif broadcast.state is BroadcastState.EDIT_PENDING:
        ask = f":pencil2: {who(broadcast.author, policy)} asks to *correct* the staff posts of `{broadcast.id}` to this"
    else:
        ask = f":mega: {who(broadcast.author, policy)} asks to broadcast `{broadcast.id}` to *{broadcast.audience}*"
    blocks: list[Block] = [
        _mrkdwn(f"{ask}. Approve it?"),
        {"type": "divider"},
    ]
    for rendering in renderings:
        config = destinations[rendering.destination]
        blocks.append(_mrkdwn(_destination_title(config)))
        blocks.extend(_shown(rendering, config.kind))
    blocks = blocks[: MESSAGE_MAX_BLOCKS - 1]
    blocks.append(
        {
            "type": "actions",
            "block_id": f"approval:{broadcast.id}",
            "elements": [
                _button(
                    "approve",
                    "Approve and send",
                    broadcast.id,
                    "primary",
                    (
                        "Send now?",
                        f"This posts to every destination of *{broadcast.audience}* at once.",
                        "Approve and send",
                        "Not yet",
                    ),
                ),
                _button("reject", "Reject", broadcast.id, "danger"),
            ],
        }
    )
    return blocks


def decided(broadcast: Broadcast, policy: Policy) -> str:
    """What replaces the buttons once a broadcast is decided."""
    by = f" by {who(broadcast.decided_by, policy)}" if broadcast.decided_by else ""
    words = {
        BroadcastState.APPROVED: f":white_check_mark: Broadcast `{broadcast.id}` was approved{by} and is going out.",
        BroadcastState.REJECTED: f":x: Broadcast `{broadcast.id}` was rejected{by}. Nothing was sent.",
        BroadcastState.CANCELLED: f":wastebasket: Broadcast `{broadcast.id}` was cancelled{by}. Nothing was sent.",
        BroadcastState.EXPIRED: f":hourglass: Broadcast `{broadcast.id}` expired. Nothing was sent.",
        BroadcastState.PENDING: f":hourglass_flowing_sand: Broadcast `{broadcast.id}` is waiting for an approver.",
        BroadcastState.RETRACT_PENDING: f":hourglass_flowing_sand: Retracting `{broadcast.id}` waits for an approver.",
        BroadcastState.RETRACTED: f":wastebasket: Broadcast `{broadcast.id}` is being retracted everywhere.",
        BroadcastState.EDIT_PENDING: f":hourglass_flowing_sand: Correcting `{broadcast.id}` waits for an approver.",
    }
    return words.get(broadcast.state, f"Broadcast `{broadcast.id}` is {broadcast.state.value}.")


_MARKS = {
    Status.DELETED: ":wastebasket:",
    Status.POSTED: ":white_check_mark:",
    Status.DRY_RUN: ":white_check_mark:",
    Status.FAILED: ":x:",
    Status.UNKNOWN: ":grey_question:",
    Status.RETRYING: ":arrows_counterclockwise:",
    Status.SENDING: ":outbox_tray:",
    Status.WAITING: ":hourglass_flowing_sand:",
}


def delivery_line(delivery: Delivery) -> str:
    """One destination's state, with its link or its reason; a retry's time in the reader's zone."""
    return _line_text(line(delivery))


def _line_text(shown: Line) -> str:
    text = f"{_MARKS[shown.status]} *{shown.destination}*: {shown.words}"
    if shown.link:
        text += f" · <{shown.link}|view>"
    if shown.next_try:
        label = "for" if shown.words == "scheduled" else "; next try"
        text += f" {label} <!date^{int(shown.next_try)}^{{date_short_pretty}} {{time}}|soon>".replace(" ;", ";")
    return text


def report(broadcast: Broadcast, now: Report) -> tuple[str, list[Block]]:
    """The live report: fallback text for notifications, and the blocks."""
    head = f"Broadcast `{broadcast.id}` to *{broadcast.audience}*: {now.progress}"
    blocks = [_mrkdwn(f":mega: {head}"), _context("> " + excerpt(broadcast.text).replace("\n", "\n> "))]
    shown = [_line_text(each) for each in now.lines] + [f"{_MARKS[status]} {words}" for status, words in now.tallies]
    blocks.extend(_mrkdwn(chunk) for chunk in _chunks("\n".join(shown)))
    blocks = blocks[: MESSAGE_MAX_BLOCKS - 1]
    if broadcast.state is BroadcastState.APPROVED:
        blocks.append(_report_buttons(broadcast))
    return head.replace("*", "").replace("`", ""), blocks


def corrected(approval: Approval) -> dict[str, Any]:
    """What the author is told after correcting: staff posts are edited; public ones can only be re-posted."""
    broadcast = approval.broadcast
    if not approval.sent:
        return {"text": f":hourglass_flowing_sand: The correction of `{broadcast.id}` waits for an approver."}
    text = (
        f":pencil2: Correcting the staff posts of `{broadcast.id}` in place. Public networks cannot edit posts: "
        "to correct them too, retract the broadcast and post it again."
    )
    button = _button(
        "repost",
        "Retract and post again…",
        broadcast.id,
        confirm=(
            "Retract and post again?",
            "Every post is deleted, and you get a new preview of the corrected text.",
            "Retract",
            "Keep them",
        ),
    )
    return {
        "text": text,
        "blocks": [_mrkdwn(text), {"type": "actions", "block_id": f"report:{broadcast.id}", "elements": [button]}],
    }


def _report_buttons(broadcast: Broadcast) -> Block:
    return {
        "type": "actions",
        "block_id": f"report:{broadcast.id}",
        "elements": [
            _button("correct", "Correct staff posts…", broadcast.id),
            _button(
                "retract",
                "Retract everywhere…",
                broadcast.id,
                "danger",
                (
                    "Retract this broadcast?",
                    "Its posts are deleted from every destination that allows it.",
                    "Retract",
                    "Keep it",
                ),
            ),
        ],
    }


def history(shown: Sequence[tuple[Broadcast, Sequence[Delivery]]], detailed: bool) -> dict[str, Any]:
    """`/broadcast status` (the last few, destination by destination) and `history` (one line each)."""
    if not shown:
        return {"text": "No broadcasts yet."}
    parts = []
    for broadcast, deliveries in shown:
        head = f"`{summary(broadcast, deliveries)}`"
        lines = [delivery_line(d) for d in deliveries] if detailed else []
        parts.append("\n".join([head, *lines]))
    body = [_mrkdwn(chunk) for chunk in _chunks("\n\n".join(parts))][:MESSAGE_MAX_BLOCKS]
    return {"text": f"{len(shown)} recent broadcasts", "blocks": body}


def composer(
    audiences: Iterable[str], audience: str, metadata: dict[str, Any], text: str = "", callback: str = "compose"
) -> dict[str, Any]:
    """The modal for `/broadcast` with no text, and for Edit."""
    options = [{"text": {"type": "plain_text", "text": name}, "value": name} for name in audiences]
    message_input: Block = {
        "type": "plain_text_input",
        "action_id": "message",
        "multiline": True,
        "max_length": INPUT_MAX,
    }
    if text:
        message_input["initial_value"] = text[:INPUT_MAX]
    return {
        "type": "modal",
        "callback_id": callback,
        "private_metadata": json.dumps(metadata),
        "title": {"type": "plain_text", "text": "Broadcast"},
        "submit": {"type": "plain_text", "text": "Preview"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "message",
                "label": {"type": "plain_text", "text": "Message"},
                "element": message_input,
            },
            {
                "type": "input",
                "block_id": "audience",
                "label": {"type": "plain_text", "text": "Audience"},
                "element": {
                    "type": "static_select",
                    "action_id": "audience",
                    "options": options,
                    "initial_option": next(o for o in options if o["value"] == audience),
                },
            },
        ],
    }
