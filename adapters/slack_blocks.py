"""Block Kit for the Slack surface: the preview, the approval request, the live report, the composer.

Pure functions from the core's data to Slack JSON, kept apart from the handlers so each reads alone.
Every message fits Slack whatever it is given (tests/fakes/block_kit.py holds the limits, with their
sources, and property tests drive each builder against them): a text is shown once for all the
destinations that receive it alike, long lists show what needs a look first and count the rest, and a
text is split between sections only where no link, mention, entity or emoji is cut.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import regex

from relay import link_cards
from relay.broadcasts import Approval
from relay.config import DestinationConfig, Policy
from relay.destination import Counting
from relay.facets import Facet
from relay.images import MAX_IMAGES
from relay.model import Broadcast, BroadcastState, Delivery
from relay.render import Rendering
from relay.reports import NEEDS_A_LOOK, Line, Report, Status, excerpt, line, summary
from relay.shortlist import shortlist

Block = dict[str, Any]

# Block Kit's reference (docs.slack.dev/reference/block-kit): a section's text is at most 3,000 characters,
# a message at most 50 blocks, a plain-text input at most 3,000 characters (its max_length "between 1 and
# 3000, inclusive"), a button's text 75.
SECTION_MAX = 3000
MESSAGE_MAX_BLOCKS = 50
INPUT_MAX = 3000
# Slack refuses chat.postMessage and chat.update past about 12,000 characters of block text
# (msg_blocks_too_long; bolt-js issues 2509 and 2867, the latter refused at 11,341): messages keep to this.
MESSAGE_TEXT_BUDGET = 10_000
LINE_MAX = 400  # one destination's line in a report: a reason longer than this is cut, the status page has it
TITLE_NAMES = 5  # destinations named in one title of the preview; the others are counted

# What a split must not cut: a link, mention or channel (`<…>`), an HTML entity (`&amp;`), an emoji code
# (`:tada:`), and otherwise one user-perceived character (a grapheme: an emoji with its modifiers).
_ATOM = regex.compile(r"<[^<>\n]{1,2000}>|&#?\w{1,10};|:[\w+'-]{1,100}:|\X")

USAGE = (
    "*How to broadcast*\n"
    "• `/broadcast <message>`: preview your message as each destination will receive it, then *Approve*.\n"
    "• `/broadcast`: open the composer (message and audience).\n"
    "• `/broadcast status`, `/broadcast status <id>`, `/broadcast history`: what went out, destination by "
    "destination.\n"
    "• `/broadcast accounts`: connect your own LinkedIn, X, Threads, Mastodon or Bluesky, to broadcast as yourself.\n"
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


def split(text: str, size: int = SECTION_MAX) -> list[str]:
    """`text` in pieces of at most `size` characters, cut after the last space or line break that leaves the
    piece at least half full, and never inside a link, a mention, an entity, an emoji or a grapheme. Each
    piece is shown as its own section, so a piece that would hold only white space is left out."""
    pieces: list[str] = []
    atoms: list[str] = []
    length = 0
    # an atom longer than a piece (thousands of combining marks) is the one thing cut where it falls
    for atom in (a[i : i + size] for a in _ATOM.findall(text) for i in range(0, len(a), size)):
        while atoms and length + len(atom) > size:
            breaks = [i for i, a in enumerate(atoms) if a.isspace()]
            cut = breaks[-1] + 1 if breaks and sum(map(len, atoms[: breaks[-1] + 1])) >= size // 2 else len(atoms)
            pieces.append("".join(atoms[:cut]))
            atoms = atoms[cut:]
            length = sum(map(len, atoms))
        atoms.append(atom)
        length += len(atom)
    pieces.append("".join(atoms))
    return [piece for piece in pieces if piece.strip()] or ["(empty)"]


def text_size(blocks: Sequence[Block]) -> int:
    """Characters of text in `blocks`, counted as Slack counts them against MESSAGE_TEXT_BUDGET."""

    def size(value: Any) -> int:
        if isinstance(value, list):
            return sum(size(item) for item in value)
        if isinstance(value, dict):
            own = value.get("text")
            if isinstance(own, str):
                return len(own) + sum(size(item) for key, item in value.items() if key != "text")
            return sum(size(item) for item in value.values())
        return 0

    return size(list(blocks))


class _Room:
    """What is left of one message: blocks and characters of text."""

    def __init__(self, blocks: int, text: int) -> None:
        self.blocks = blocks
        self.text = text

    def take(self, wanted: Sequence[Block]) -> bool:
        """Reserve room for `wanted`, if there is enough."""
        size = text_size(wanted)
        if len(wanted) > self.blocks or size > self.text:
            return False
        self.blocks -= len(wanted)
        self.text -= size
        return True


def _shown(rendering: Rendering, kind: str, room: _Room) -> tuple[list[Block], bool]:
    """The exact text(s), as Slack mrkdwn for Slack, verbatim plain text elsewhere, as far as `room` allows
    (the counts of every part first, then its text), and whether all of it was shown."""
    blocks: list[Block] = []
    unit = "weighted chars" if rendering.counting is Counting.X_WEIGHTED else "chars"
    cut = False
    for index, part in enumerate(rendering.parts):
        label = f"Part {index + 1}/{len(rendering.parts)} · " if len(rendering.parts) > 1 else ""
        counts = _context(f"{label}{rendering.lengths[index]:,}/{rendering.limit:,} {unit}")
        if not room.take([counts]):
            break
        blocks.append(counts)
        if cut:
            continue
        for chunk in split(part):
            shown = (
                _mrkdwn(chunk)
                if kind == "slack"
                else {"type": "section", "text": {"type": "plain_text", "text": chunk, "emoji": False}}
            )
            if not room.take([shown]):
                cut = True
                break
            blocks.append(shown)
        if rendering.links and rendering.links[index] and not cut:
            links = _links(part, rendering.links[index])
            cut = not room.take([links])
            if not cut:
                blocks.append(links)
    if rendering.images and not cut:  # what the first part carries: each image as this network receives it
        images = _context("🖼 " + " · ".join(rendering.images))
        cut = not room.take([images])
        if not cut:
            blocks.append(images)
    if rendering.cards and not cut:
        said = excerpt(link_cards.note(rendering.cards), SECTION_MAX)  # plain: a URL may hold mrkdwn's < & >
        cards: Block = {"type": "context", "elements": [{"type": "plain_text", "text": said, "emoji": False}]}
        cut = not room.take([cards])
        if not cut:
            blocks.append(cards)
    return blocks, not cut and len(blocks) >= len(rendering.parts)


def _links(part: str, links: Sequence[Facet]) -> Block:
    """Where the part's linked words lead: the network shows only the words."""
    said = "\n".join(f"🔗 “{part[link.start : link.end]}” links to {link.value}" for link in links)
    return {"type": "context", "elements": [{"type": "plain_text", "text": excerpt(said, SECTION_MAX), "emoji": False}]}


def _destination_title(config: DestinationConfig) -> str:
    where = f" · <#{config.options['channel']}>" if config.kind == "slack" else f" · {config.kind.upper()}"
    dry = " · _dry run: recorded, not posted_" if config.dry_run else ""
    return f"*{excerpt(config.name, 80)}*{where}{dry}"


def _group_title(configs: Sequence[DestinationConfig]) -> str:
    """The destinations receiving one same text: a few by name, the others counted."""
    named = [_destination_title(config) for config in configs[:TITLE_NAMES]]
    more = len(configs) - len(named)
    return "\n".join(named) + (f"\n… and {more} more destination{'s' if more > 1 else ''}" if more else "")


_NOTE_ROOM = 400  # characters kept for the last line saying what did not fit


def _destinations(
    renderings: Sequence[Rendering], destinations: dict[str, DestinationConfig], room: _Room
) -> list[Block]:
    """Each distinct text once, under every destination that receives it alike; the ones that cannot take
    the message first, with why. What does not fit in `room` is said in a last line."""
    groups: dict[tuple[str, bool, tuple[str, ...], tuple[str, ...]], list[Rendering]] = {}
    for rendering in sorted(renderings, key=lambda r: r.error is None):
        slack = destinations[rendering.destination].kind == "slack"
        key = (rendering.error or "", slack, rendering.payloads(), rendering.images + rendering.cards)
        groups.setdefault(key, []).append(rendering)
    room.blocks -= 1
    room.text -= _NOTE_ROOM
    blocks: list[Block] = []
    unseen = 0  # destinations not even named
    complete = True
    for (error, slack, _, _), members in groups.items():
        title = _mrkdwn(_group_title([destinations[m.destination] for m in members]))
        if not room.take([title]):
            unseen += len(members)
            continue
        blocks.append(title)
        if error:
            reason = [_mrkdwn(f":no_entry: {excerpt(error, LINE_MAX)}")]
            if room.take(reason):
                blocks.extend(reason)
            continue
        shown, whole = _shown(members[0], "slack" if slack else "plain", room)
        blocks.extend(shown)
        complete = complete and whole
        replies = {m.replies for m in members if m.replies}
        warnings = list(dict.fromkeys(w for m in members for w in m.warnings))
        notes = [_context(f":speech_balloon: Replies: {r}") for r in sorted(replies)]
        notes += [_context(f":warning: {excerpt(w, LINE_MAX)}") for w in warnings]
        for note in notes:
            if not room.take([note]):
                complete = False
                break
            blocks.append(note)
        if room.take([{"type": "divider"}]):
            blocks.append({"type": "divider"})
    if unseen or not complete:
        missing = f" {unseen} more destination{'s are' if unseen > 1 else ' is'} not shown." if unseen else ""
        blocks.append(
            _context(
                f":scissors: This message is cut to fit Slack.{missing} Every destination gets its text as "
                "counted above for its network; nothing is sent that is not counted here."
            )
        )
    return blocks


def preview(
    broadcast: Broadcast,
    renderings: Sequence[Rendering],
    destinations: dict[str, DestinationConfig],
    audiences: Iterable[str],
    needs_second_person: bool,
) -> list[Block]:
    """What the leader sees after /broadcast: every distinct text once, the destinations receiving each,
    then the choices."""
    count = len(renderings)
    head = [
        _mrkdwn(
            f":mega: *Preview* of broadcast `{broadcast.id}` to *{broadcast.audience}* "
            f"({count} destination{'s' if count != 1 else ''}). Nothing is sent until you approve."
        ),
        {"type": "divider"},
    ]
    tail = [_actions(broadcast, [r for r in renderings if r.error], audiences, needs_second_person)]
    if not any(r.error for r in renderings):
        tail.append(_scheduling(broadcast, needs_second_person))
    room = _Room(MESSAGE_MAX_BLOCKS - len(head) - len(tail), MESSAGE_TEXT_BUDGET - text_size(head + tail))
    return head + _destinations(renderings, destinations, room) + tail


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


_BUTTONS_ROOM = 300  # characters of the approval request's two buttons and their confirmation


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
    head: list[Block] = [_mrkdwn(f"{ask}. Approve it?"), {"type": "divider"}]
    room = _Room(MESSAGE_MAX_BLOCKS - len(head) - 1, MESSAGE_TEXT_BUDGET - text_size(head) - _BUTTONS_ROOM)
    blocks = head + _destinations(renderings, destinations, room)
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
    text = f"{_MARKS[shown.status]} *{excerpt(shown.destination, 80)}*: {excerpt(shown.words, LINE_MAX)}"
    if shown.link:
        text += f" · <{shown.link}|view>"
    if shown.next_try:
        label = "for" if shown.words == "scheduled" else "; next try"
        text += f" {label} <!date^{int(shown.next_try)}^{{date_short_pretty}} {{time}}|soon>".replace(" ;", ";")
    return text


def _sections(lines: Sequence[str]) -> list[Block]:
    """Lines packed into as few sections as their 3,000 characters allow, never splitting a line."""
    sections: list[list[str]] = [[]]
    for text in lines:
        if sections[-1] and len("\n".join([*sections[-1], text])) > SECTION_MAX:
            sections.append([])
        sections[-1].append(text[:SECTION_MAX])
    return [_mrkdwn("\n".join(section)) for section in sections if "".join(section).strip()]


def _listed(lines: Sequence[Line], budget: int, pointer: str) -> list[str]:
    """Report lines, those needing a look first, as many as `budget` characters hold; the rest counted, with
    where to see them."""
    listed = shortlist(lines, lambda each: len(_line_text(each)) + 1, budget, lambda each: each.status in NEEDS_A_LOOK)
    shown = [_line_text(each) for each in listed.shown]
    if listed.hidden:
        shown.append(f"… and {listed.hidden} more: {pointer}")
    return shown


def report(broadcast: Broadcast, now: Report) -> tuple[str, list[Block]]:
    """The live report: fallback text for notifications, and the blocks."""
    head = f"Broadcast `{broadcast.id}` to *{broadcast.audience}*: {now.progress}"
    top = [_mrkdwn(f":mega: {head}"), _context("> " + excerpt(broadcast.text).replace("\n", "\n> "))]
    buttons = [_report_buttons(broadcast)] if broadcast.state is BroadcastState.APPROVED else []
    tallies = [f"{_MARKS[status]} {words}" for status, words in now.tallies]
    budget = MESSAGE_TEXT_BUDGET - text_size(top + buttons) - len("\n".join(tallies)) - _NOTE_ROOM
    pointer = f"`/broadcast status {broadcast.id}` lists them, and the status page has every one."
    blocks = top + _sections(_listed(now.lines, budget, pointer) + tallies) + buttons
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


def too_long_to_correct(broadcast: Broadcast) -> dict[str, Any]:
    """'Correct staff posts…' on a text longer than Slack's form holds: say so, rather than cut it, and
    offer the way that keeps every word (retract, then broadcast the corrected text)."""
    text = (
        f":pencil2: Broadcast `{broadcast.id}` is {len(broadcast.text):,} characters, and Slack's form holds at "
        f"most {INPUT_MAX:,}: it cannot be corrected here without cutting it. To correct it, retract it "
        "everywhere, then send the corrected text with `/broadcast <message>`."
    )
    return {
        "text": text,
        "blocks": [
            _mrkdwn(text),
            {"type": "actions", "block_id": f"report:{broadcast.id}", "elements": [_retract_button(broadcast.id)]},
        ],
    }


def _retract_button(broadcast_id: str) -> Block:
    return _button(
        "retract",
        "Retract everywhere…",
        broadcast_id,
        "danger",
        (
            "Retract this broadcast?",
            "Its posts are deleted from every destination that allows it.",
            "Retract",
            "Keep it",
        ),
    )


def _report_buttons(broadcast: Broadcast) -> Block:
    return {
        "type": "actions",
        "block_id": f"report:{broadcast.id}",
        "elements": [
            _button("correct", "Correct staff posts…", broadcast.id),
            _retract_button(broadcast.id),
        ],
    }


def history(shown: Sequence[tuple[Broadcast, Sequence[Delivery]]], detailed: bool) -> dict[str, Any]:
    """`/broadcast status` (the last few, destination by destination), `/broadcast status <id>` (one, all of
    its destinations that fit) and `history` (one line each). Each broadcast gets its share of the message;
    its destinations needing a look come first."""
    if not shown:
        return {"text": "No broadcasts yet."}
    share = (MESSAGE_TEXT_BUDGET - _NOTE_ROOM) // len(shown)
    lines: list[str] = []
    for broadcast, deliveries in shown:
        head = f"`{summary(broadcast, deliveries)}`"
        lines.append(head)
        if detailed:
            pointer = (
                "the status page lists every one."
                if len(shown) == 1
                else f"`/broadcast status {broadcast.id}` shows more."
            )
            lines.extend(_listed([line(d) for d in deliveries], share - len(head) - 2, pointer))
        lines.append(" ")
    body = _sections(lines[:-1])[:MESSAGE_MAX_BLOCKS]
    return {"text": f"{len(shown)} recent broadcast{'s' if len(shown) > 1 else ''}", "blocks": body}


def composer(
    audiences: Iterable[str],
    audience: str,
    metadata: dict[str, Any],
    text: str = "",
    callback: str = "compose",
    attached: Sequence[str] = (),
) -> dict[str, Any]:
    """The modal for `/broadcast` with no text, for Edit and for a correction. A text longer than the form
    holds is refused (ValueError) rather than cut: the callers offer another way."""
    if len(text) > INPUT_MAX:
        raise ValueError(f"a text of {len(text):,} characters does not fit Slack's form ({INPUT_MAX:,})")
    options = [{"text": {"type": "plain_text", "text": name}, "value": name} for name in audiences]
    message_input: Block = {
        "type": "plain_text_input",
        "action_id": "message",
        "multiline": True,
        "max_length": INPUT_MAX,
    }
    if text:
        message_input["initial_value"] = text
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
            *(_image_inputs(attached) if callback == "compose" else []),
        ],
    }


def _image_inputs(attached: Sequence[str]) -> list[Block]:
    """A new broadcast may carry images (Slack's file_input: the files the leader picks or uploads; or, from
    the message shortcut, the message's own, named), each described for screen readers: public networks
    refuse an image without alt text."""
    if attached:
        names = ", ".join(f"`{name}`" for name in attached)
        chosen: Block = _context(f"🖼 Images from the message, in order: {names}")
    else:
        chosen = {
            "type": "input",
            "block_id": "images",
            "optional": True,
            "label": {"type": "plain_text", "text": f"Images (up to {MAX_IMAGES})"},
            "element": {
                "type": "file_input",
                "action_id": "images",
                "filetypes": ["jpg", "jpeg", "png", "gif", "webp"],
                "max_files": MAX_IMAGES,
            },
        }
    return [
        chosen,
        {
            "type": "input",
            "block_id": "alt",
            "optional": True,
            "label": {"type": "plain_text", "text": "Alt text, one line per image"},
            "hint": {"type": "plain_text", "text": "What each image shows, in order: public networks need it."},
            "element": {"type": "plain_text_input", "action_id": "alt", "multiline": True, "max_length": INPUT_MAX},
        },
    ]
