"""Who may do what, on stable ids, with one person allowed several ids (Slack and Teams)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from relay import policy
from relay.config import Policy
from relay.model import Broadcast, BroadcastState

CEO_SLACK, CEO_TEAMS = "slack:U0CEO", "teams:00000000-0000-0000-0000-0000000000c0"
CFO_TEAMS = "teams:00000000-0000-0000-0000-0000000000f0"
STRANGER = "slack:U0NOBODY"

POLICY = Policy(
    leaders=frozenset({CEO_SLACK, CEO_TEAMS}),
    approvers=frozenset({CEO_SLACK, CEO_TEAMS, CFO_TEAMS}),
    default_audience="everyone",
    approval_channel=None,
    pending_for=timedelta(hours=24),
    people={CEO_SLACK: frozenset({CEO_SLACK, CEO_TEAMS}), CEO_TEAMS: frozenset({CEO_SLACK, CEO_TEAMS})},
)


def broadcast(state: BroadcastState, author: str = CEO_SLACK) -> Broadcast:
    return Broadcast("b1", author, "text", "everyone", state, 0.0, 1e12, None, "slack", {}, {})


@pytest.mark.parametrize(
    ("step", "actor", "state", "allowed", "reason"),
    [
        (policy.may_approve, CEO_SLACK, BroadcastState.DRAFT, True, ""),
        (policy.may_approve, CEO_TEAMS, BroadcastState.DRAFT, True, ""),  # the author's other id
        (policy.may_approve, STRANGER, BroadcastState.DRAFT, False, "Only the person who wrote"),
        (policy.may_approve, CEO_TEAMS, BroadcastState.PENDING, False, "cannot approve your own"),
        (policy.may_approve, CFO_TEAMS, BroadcastState.PENDING, True, ""),
        (policy.may_approve, STRANGER, BroadcastState.PENDING, False, "Only the approvers"),
        (policy.may_approve, CFO_TEAMS, BroadcastState.APPROVED, False, "already approved"),
        (policy.may_reject, CFO_TEAMS, BroadcastState.PENDING, True, ""),
        (policy.may_reject, STRANGER, BroadcastState.PENDING, False, "Only the approvers"),
        (policy.may_change, CEO_TEAMS, BroadcastState.PENDING, True, ""),
        (policy.may_change, CFO_TEAMS, BroadcastState.DRAFT, False, "Only the person who wrote"),
        (policy.may_change, CEO_SLACK, BroadcastState.CANCELLED, False, "already cancelled"),
    ],
)
def test_each_step_is_decided_for_the_person_behind_the_id(step, actor, state, allowed, reason) -> None:  # type: ignore[no-untyped-def]
    decision = step(POLICY, actor, broadcast(state))
    assert decision.allowed is allowed
    assert reason in decision.reason


def test_a_leader_with_only_their_own_ids_as_approvers_is_told_nobody_else_can_approve() -> None:
    alone = Policy(
        POLICY.leaders, frozenset({CEO_SLACK, CEO_TEAMS}), "everyone", None, timedelta(hours=1), POLICY.people
    )
    decision = policy.may_approve(alone, CEO_TEAMS, broadcast(BroadcastState.DRAFT))
    assert not decision.allowed and "add another approver" in decision.reason


@pytest.mark.parametrize("actor", [CEO_SLACK, CEO_TEAMS])
def test_leaders_may_request_from_any_of_their_ids(actor: str) -> None:
    assert policy.may_request(POLICY, actor).allowed


def test_strangers_may_not_request() -> None:
    assert not policy.may_request(POLICY, STRANGER).allowed
