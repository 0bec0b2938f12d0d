"""Who may do what: pure functions of the configured policy, the acting id and the broadcast.

Asked again at every step (preview, approve, reject, cancel), because any member of a channel can press
any button, and a button's value proves nothing about who pressed it. Ids are stable platform ids
(`slack:U0123ABC`), never display names.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.config import Policy
from relay.model import Broadcast, BroadcastState


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""  # for a refusal: one sentence the person can act on


ALLOWED = Decision(True)


def may_request(policy: Policy, actor: str) -> Decision:
    if actor in policy.leaders:
        return ALLOWED
    return Decision(False, "Only the leaders listed in the relay's policy can broadcast. Ask your comms team.")


def needs_second_person(policy: Policy) -> bool:
    """With approvers configured, someone other than the author must approve (four eyes)."""
    return bool(policy.approvers)


def may_change(policy: Policy, actor: str, broadcast: Broadcast) -> Decision:
    """Edit the text, pick another audience, or cancel: the author's own draft or request."""
    if not policy.same_person(actor, broadcast.author):
        return Decision(False, "Only the person who wrote this broadcast can change or cancel it.")
    if actor not in policy.leaders:
        return may_request(policy, actor)
    if broadcast.state not in (BroadcastState.DRAFT, BroadcastState.PENDING):
        return _settled(broadcast)
    return ALLOWED


def may_retract(policy: Policy, actor: str, broadcast: Broadcast) -> Decision:
    """Taking a broadcast back follows the rule for sending it: a leader asks; with approvers configured,
    someone else must agree (see may_approve)."""
    if actor not in policy.leaders:
        return Decision(False, "Only the leaders listed in the relay's policy can retract a broadcast.")
    if broadcast.state is not BroadcastState.APPROVED:
        if broadcast.state in (BroadcastState.RETRACT_PENDING, BroadcastState.RETRACTED):
            return _settled(broadcast)
        return Decision(False, f"This broadcast was never sent ({broadcast.state.value}); there is nothing to retract.")
    return ALLOWED


def may_reschedule(policy: Policy, actor: str, broadcast: Broadcast) -> Decision:
    """Move or cancel a scheduled broadcast: its author, before its time."""
    if not policy.same_person(actor, broadcast.author) or actor not in policy.leaders:
        return Decision(False, "Only the person who wrote this broadcast can move or cancel it.")
    if broadcast.state is not BroadcastState.APPROVED or broadcast.send_at is None:
        return Decision(False, "This broadcast is not scheduled; there is nothing to move or cancel.")
    return ALLOWED


def may_correct(policy: Policy, actor: str, broadcast: Broadcast) -> Decision:
    """Correct the staff posts of a sent broadcast: its author; with approvers, one must agree."""
    if not policy.same_person(actor, broadcast.author) or actor not in policy.leaders:
        return Decision(False, "Only the person who wrote this broadcast can correct it.")
    if broadcast.state is not BroadcastState.APPROVED:
        return _settled(broadcast)
    return ALLOWED


def may_approve(policy: Policy, actor: str, broadcast: Broadcast) -> Decision:
    """The author confirms a draft; a pending request (to send, or to retract) is approved by an approver
    other than the person who asked."""
    if broadcast.state is BroadcastState.DRAFT:
        if needs_second_person(policy) and all(policy.same_person(a, actor) for a in policy.approvers):
            return Decision(
                False, "Nobody but you could approve this: ask an admin to add another approver to policy.approvers."
            )
        return may_change(policy, actor, broadcast)
    if broadcast.state not in (BroadcastState.PENDING, BroadcastState.RETRACT_PENDING, BroadcastState.EDIT_PENDING):
        return _settled(broadcast)
    if broadcast.state is BroadcastState.RETRACT_PENDING:
        if policy.same_person(actor, broadcast.retract_requested_by or broadcast.author):
            return Decision(False, "You cannot approve your own request to retract: another approver must.")
    elif policy.same_person(actor, broadcast.author):
        return Decision(False, "You cannot approve your own broadcast: another approver must.")
    if actor not in policy.approvers:
        return Decision(False, "Only the approvers listed in the relay's policy can approve broadcasts.")
    return ALLOWED


def may_reject(policy: Policy, actor: str, broadcast: Broadcast) -> Decision:
    if broadcast.state not in (BroadcastState.PENDING, BroadcastState.RETRACT_PENDING, BroadcastState.EDIT_PENDING):
        return _settled(broadcast)
    if actor not in policy.approvers:
        return Decision(False, "Only the approvers listed in the relay's policy can reject broadcasts.")
    return ALLOWED


def _settled(broadcast: Broadcast) -> Decision:
    """Too late for any decision: say what happened instead (a double click lands here)."""
    return Decision(False, f"This broadcast is already {broadcast.state.value}; nothing was changed.")


def may_view(policy: Policy, actor: str) -> Decision:
    """History and status: the leaders and approvers, who are accountable for what went out."""
    if actor in policy.leaders or actor in policy.approvers:
        return ALLOWED
    return Decision(False, "Only leaders and approvers can see the broadcast history.")
