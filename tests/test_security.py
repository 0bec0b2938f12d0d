"""The security matrix: forged, stale and replayed requests; unauthorized people at every step; four eyes;
people from another Slack workspace or Teams tenant; secrets kept out of every log line, error and file.

Each row is tallied as one security check. Cases already proved elsewhere stay there: wrongly signed Teams
tokens (test_teams_auth.py), unsigned Teams activities with credentials and messages from another tenant
(test_teams_flow.py), refusing history to strangers (test_history.py), approving one's own retraction or
correction (test_retract.py, test_correct.py).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import aiohttp
import psycopg
import pytest

from adapters.slack_chat import OTHER_WORKSPACE
from tests.bot_process import BotProcess, free_port
from tests.conftest import (
    APPROVER,
    DATABASE,
    LEADER,
    SIGNING_SECRET,
    STAFF_CHANNEL,
    STRANGER,
    Relay,
    bot_env,
    config_text,
    preview_id,
    teams_config,
)
from tests.fakes import FakeLinkedIn, FakeMastodon, FakeSlack, FakeThreads, FakeX, Fault
from tests.fakes.teams import FakeConnector
from tests.proof import tally
from tests.slack_requests import action_body, command_body, signed_headers, view_submission_body
from tests.teams_activities import ANNOUNCEMENTS, CEO, CFO, TeamsClient, action, message, personal
from tests.teams_activities import STRANGER as TEAMS_STRANGER
from tests.test_teams_auth import CREDENTIALS, token
from tests.test_teams_auth import bot_framework_keys as bot_framework_keys  # the fixture, for the signed cases
from tests.test_teams_flow import ask, card_text, click, final_card, start

SECURITY = "security checks (forged, replayed, unauthorized)"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
OTHER_TEAM = "T0OTHER"
OTHER_TENANT = "11111111-2222-3333-4444-555555555555"


async def drafts(relay: Relay) -> str:
    """What the leader's `/broadcast status` shows: every broadcast the relay kept, and its state."""
    return json.dumps(await relay.command(LEADER, "status"), ensure_ascii=False)


def slack_untouched(slack: FakeSlack) -> bool:
    """The bot neither answered nor called Slack (auth.test aside, which Bolt makes for any request)."""
    return not slack.responses and not [c for c in slack.calls if c.method != "auth.test"]


# ---- Slack: forged and stale signatures ---------------------------------------------------------------

Forgery = Callable[[str], tuple[str, dict[str, str]]]


def _without(header: str) -> Forgery:
    return lambda body: (body, {k: v for k, v in signed_headers(SIGNING_SECRET, body).items() if k != header})


def _signature(value: Callable[[str], str]) -> Forgery:
    def forge(body: str) -> tuple[str, dict[str, str]]:
        headers = signed_headers(SIGNING_SECRET, body)
        return body, {**headers, "X-Slack-Signature": value(headers["X-Slack-Signature"])}

    return forge


FORGERIES: list[tuple[str, Forgery]] = [
    ("wrong-secret", lambda body: (body, signed_headers("not-the-secret", body))),
    ("unsigned", lambda body: (body, FORM)),
    ("no-signature", _without("X-Slack-Signature")),
    ("no-timestamp", _without("X-Slack-Request-Timestamp")),
    ("stale", lambda body: (body, signed_headers(SIGNING_SECRET, body, timestamp=int(time.time()) - 301))),
    ("from-the-future", lambda body: (body, signed_headers(SIGNING_SECRET, body, timestamp=int(time.time()) + 360))),
    ("tampered-body", lambda body: (body.replace("Forged", "Tampered"), signed_headers(SIGNING_SECRET, body))),
    (
        "timestamp-moved",
        lambda body: (
            body,
            {**signed_headers(SIGNING_SECRET, body), "X-Slack-Request-Timestamp": str(int(time.time()) + 1)},
        ),
    ),
    (
        "timestamp-not-a-number",
        lambda body: (body, {**signed_headers(SIGNING_SECRET, body), "X-Slack-Request-Timestamp": "yesterday"}),
    ),
    ("other-scheme", _signature(lambda real: real.replace("v0=", "v1="))),
    ("not-hex", _signature(lambda real: "v0=" + "z" * 64)),
    ("truncated-signature", _signature(lambda real: real[:-8])),
]


@pytest.mark.parametrize("forge", [f for _, f in FORGERIES], ids=[name for name, _ in FORGERIES])
async def test_a_forged_or_stale_slack_request_gets_401_and_does_nothing(
    start_relay, slack: FakeSlack, x: FakeX, forge: Forgery
) -> None:
    tally(SECURITY)
    relay = await start_relay()
    body, headers = forge(command_body(LEADER, "Forged", slack.response_url("forged")))
    answer = await relay.post_signed(body, headers)
    assert answer.status == 401
    assert slack_untouched(slack) and "No broadcasts yet." in await drafts(relay)
    assert not x.calls


# ---- Slack: replays -----------------------------------------------------------------------------------


async def test_a_replayed_command_is_refused_and_makes_no_second_draft(start_relay, slack: FakeSlack) -> None:
    tally(SECURITY)
    relay = await start_relay()
    body = command_body(LEADER, "Replayed", slack.response_url("r"))
    headers = signed_headers(SIGNING_SECRET, body)
    first, second = await relay.post_signed(body, headers), await relay.post_signed(body, headers)
    assert first.status == 200 and "Preview of broadcast" in await first.text()
    assert second.status == 401 and await second.json() == {"error": "replayed request"}
    assert (await drafts(relay)).count("· draft · Replayed") == 1


@pytest.mark.parametrize("text", ["status", "history", "help"])
async def test_a_replayed_command_that_makes_no_draft_is_refused_before_it_answers(
    start_relay, slack: FakeSlack, text: str
) -> None:
    """Such a command is known to be no copy before it reads or answers anything: a copy would show the
    broadcasts to whoever replays it."""
    tally(SECURITY)
    relay = await start_relay()
    await relay.command(LEADER, "Seen by the leader only")
    body = command_body(LEADER, text, slack.response_url("r"))
    headers = signed_headers(SIGNING_SECRET, body)
    first, second = await relay.post_signed(body, headers), await relay.post_signed(body, headers)
    assert first.status == 200
    assert second.status == 401 and await second.json() == {"error": "replayed request"}


async def test_a_replayed_draft_that_begins_with_a_command_word_is_refused_and_made_once(
    start_relay, slack: FakeSlack
) -> None:
    """A draft is noted as seen in its own transaction; one whose first word is a command's is known to be no
    copy before it is written. Either way a copy makes nothing."""
    tally(SECURITY)
    relay = await start_relay()
    for text in ("Status of the merger: signed.", "Twice replayed"):
        body = command_body(LEADER, text, slack.response_url("r"))
        headers = signed_headers(SIGNING_SECRET, body)
        first, second, third = [await relay.post_signed(body, headers) for _ in range(3)]
        assert first.status == 200 and "Preview of broadcast" in await first.text()
        assert (second.status, third.status) == (401, 401)
        assert (await drafts(relay)).count(f"· draft · {text}") == 1


async def test_a_replayed_approve_click_does_nothing_and_sends_once(start_relay, slack: FakeSlack, x: FakeX) -> None:
    """A click is acknowledged at once (its answer carries nothing); a copy of it stops there."""
    tally(SECURITY)
    relay = await start_relay()
    broadcast = preview_id(await relay.command(LEADER, "Once, even replayed"))
    body = action_body(LEADER, "approve", broadcast, slack.response_url("approve"))
    headers = signed_headers(SIGNING_SECRET, body)
    first, second = await relay.post_signed(body, headers), await relay.post_signed(body, headers)
    assert (first.status, second.status) == (200, 200)
    assert "2 of 2 delivered." in await relay.final_report()
    assert "approved" in (await relay.answer("approve"))["text"]
    assert len(slack.responses["approve"]) == 1, "the replay was not even answered"
    assert len(slack.messages(STAFF_CHANNEL)) == 1 and len(x.tweets) == 1


async def test_a_replayed_audience_choice_cannot_undo_the_leaders_later_choice(
    start_relay, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    tally(SECURITY)
    relay = await start_relay()
    broadcast = preview_id(await relay.command(LEADER, "Who hears it"))
    staff = action_body(LEADER, "choose_audience", broadcast, slack.response_url("staff"), selected="staff")
    headers = signed_headers(SIGNING_SECRET, staff)
    assert (await relay.post_signed(staff, headers)).status == 200
    await relay.answer("staff")
    await relay.answer(await relay.click(LEADER, "choose_audience", broadcast, selected="public"))
    assert (await relay.post_signed(staff, headers)).status == 200
    assert "· public · draft · Who hears it" in await drafts(relay)
    assert "refused a copy of a Slack request already received" in caplog.text


async def test_the_same_command_typed_again_is_signed_anew_and_accepted(start_relay, slack: FakeSlack) -> None:
    tally(SECURITY)
    relay = await start_relay()
    await relay.command(LEADER, "Said twice")
    await relay.command(LEADER, "Said twice")
    assert (await drafts(relay)).count("· draft · Said twice") == 2


# ---- Slack: every step, tried by someone the policy does not allow ------------------------------------


def picked(broadcast: str, day: str, clock_time: str = "09:00") -> dict[str, Any]:
    """The schedule row's date and time pickers, as Slack sends their state."""
    return {
        f"schedule:{broadcast}": {
            "send_date": {"type": "datepicker", "selected_date": day},
            "send_time": {"type": "timepicker", "selected_time": clock_time},
        }
    }


def in_days(days: int) -> str:
    """A day ahead on the fake Slack user's clock (Europe/Paris)."""
    return (datetime.now(ZoneInfo("Europe/Paris")) + timedelta(days=days)).strftime("%Y-%m-%d")


async def prepared(relay: Relay, state: str | None) -> str:
    """A broadcast by the leader in `state`: draft, pending (an approver must agree), sent, or scheduled."""
    if state is None:
        return ""
    broadcast = preview_id(await relay.command(LEADER, "Quarterly update"))
    if state in ("pending", "sent"):
        await relay.click(LEADER, "approve", broadcast)
    if state == "pending":
        await relay.slack.wait_for(lambda: relay.slack.messages(f"D{APPROVER}"))
    if state == "sent":
        await relay.final_report()
    if state == "scheduled":
        key = await relay.click(LEADER, "schedule", broadcast, state=picked(broadcast, in_days(2)))
        assert "Scheduled for" in (await relay.answer(key))["text"]
    return broadcast


async def command_answer(relay: Relay, user: str, text: str) -> str:
    """What `/broadcast <text>` shows the person: its acknowledgement, or the answer that follows it."""
    key, url = relay.new_response_url()
    response = await relay.post_signed(command_body(user, text, url))
    ack = await response.json() if response.content_type == "application/json" else {}
    return str(ack.get("text") or (await relay.answer(key))["text"])


async def click_answer(relay: Relay, user: str, action_id: str, broadcast: str, **extra: Any) -> str:
    return str((await relay.answer(await relay.click(user, action_id, broadcast, **extra)))["text"])


async def submit_answer(relay: Relay, user: str, callback: str, broadcast: str) -> str:
    response = await relay.submit_view(user, callback, {"broadcast_id": broadcast}, "Hijacked", "everyone")
    return str((await response.json())["errors"]["message"])


Step = Callable[[Relay, str], Any]
NOT_AUTHOR = "Only the person who wrote this broadcast can change or cancel it."
NOT_APPROVER = "Only the approvers listed in the relay's policy can"
NOT_LEADER_RETRACT = "Only the leaders listed in the relay's policy can retract a broadcast."
NOT_CORRECTOR = "Only the person who wrote this broadcast can correct it."
NOT_MOVER = "Only the person who wrote this broadcast can move or cancel it."

# (step, the broadcast's state, what the stranger does, what they are told)
SLACK_STEPS: list[tuple[str, str | None, Step, str]] = [
    ("request", None, lambda r, b: command_answer(r, STRANGER, "Free pizza"), "Only the leaders listed"),
    ("approve-draft", "draft", lambda r, b: click_answer(r, STRANGER, "approve", b), NOT_AUTHOR),
    (
        "approve-request",
        "pending",
        lambda r, b: click_answer(r, STRANGER, "approve", b, block_id=f"approval:{b}"),
        NOT_APPROVER + " approve",
    ),
    (
        "reject",
        "pending",
        lambda r, b: click_answer(r, STRANGER, "reject", b, block_id=f"approval:{b}"),
        NOT_APPROVER + " reject",
    ),
    ("cancel", "draft", lambda r, b: click_answer(r, STRANGER, "cancel", b), NOT_AUTHOR),
    ("audience", "draft", lambda r, b: click_answer(r, STRANGER, "choose_audience", b, selected="staff"), NOT_AUTHOR),
    ("edit-button", "draft", lambda r, b: click_answer(r, STRANGER, "edit", b), NOT_AUTHOR),
    ("edit-submission", "draft", lambda r, b: submit_answer(r, STRANGER, "edit", b), NOT_AUTHOR),
    (
        "schedule",
        "draft",
        lambda r, b: click_answer(r, STRANGER, "schedule", b, state=picked(b, in_days(2))),
        NOT_AUTHOR,
    ),
    (
        "retract-button",
        "sent",
        lambda r, b: click_answer(r, STRANGER, "retract", b, block_id=f"report:{b}"),
        NOT_LEADER_RETRACT,
    ),
    ("retract-command", "sent", lambda r, b: command_answer(r, STRANGER, f"retract {b}"), NOT_LEADER_RETRACT),
    (
        "correct-button",
        "sent",
        lambda r, b: click_answer(r, STRANGER, "correct", b, block_id=f"report:{b}"),
        NOT_CORRECTOR,
    ),
    ("correct-submission", "sent", lambda r, b: submit_answer(r, STRANGER, "correct", b), NOT_CORRECTOR),
    (
        "retract-and-post-again",
        "sent",
        lambda r, b: click_answer(r, STRANGER, "repost", b, block_id=f"report:{b}"),
        NOT_LEADER_RETRACT,
    ),
    ("move", "scheduled", lambda r, b: command_answer(r, STRANGER, f"move {b} {in_days(3)} 10:00"), NOT_MOVER),
    ("unschedule", "scheduled", lambda r, b: command_answer(r, STRANGER, f"cancel {b}"), NOT_MOVER),
    ("status", None, lambda r, b: command_answer(r, STRANGER, "status"), "Only leaders and approvers can see"),
]


@pytest.mark.parametrize(("state", "step", "expected"), [s[1:] for s in SLACK_STEPS], ids=[s[0] for s in SLACK_STEPS])
async def test_every_slack_step_by_an_unauthorized_user_is_refused_and_changes_nothing(
    start_relay, slack: FakeSlack, x: FakeX, state: str | None, step: Step, expected: str
) -> None:
    tally(SECURITY)
    relay = await start_relay(config_text([f"slack:{APPROVER}"]) if state == "pending" else None)
    broadcast = await prepared(relay, state)
    before = (await drafts(relay), [m["text"] for m in slack.messages(STAFF_CHANNEL)], [t.id for t in x.tweets])
    assert expected in await step(relay, broadcast)
    after = (await drafts(relay), [m["text"] for m in slack.messages(STAFF_CHANNEL)], [t.id for t in x.tweets])
    assert after == before and not x.deleted
    assert not slack.calls_to("views.open"), "no form was opened for them"


# ---- Teams: the main steps, tried by someone the policy does not allow --------------------------------


async def teams_prepared(teams: TeamsClient, connector: FakeConnector, state: str) -> tuple[str, str]:
    """The CEO's broadcast from Teams in `state`, and its card's message id."""
    broadcast, card = await ask(teams, connector, CEO, "broadcast Quarterly update")
    if state in ("pending", "sent"):
        await click(teams, connector, CEO, "approve", broadcast, card)
    if state == "sent":
        await final_card(connector, personal(CEO)["id"])
    if state == "scheduled":
        shown = await click(teams, connector, CEO, "schedule", broadcast, card, send_date=in_days(2), send_time="09:00")
        assert "scheduled for" in shown  # the card is its report at once
    return broadcast, card


async def teams_said(teams: TeamsClient, connector: FakeConnector, text: str) -> str:
    """What the bot answers the stranger's chat message."""
    chat = personal(TEAMS_STRANGER)["id"]
    await teams.send(message(connector.service_url, TEAMS_STRANGER, text))
    [answer] = await connector.wait_for(lambda: connector.posted(chat))
    return str(answer.get("text") or card_text(answer))


TeamsStep = Callable[[TeamsClient, FakeConnector, str, str], Any]


def _pressed(verb: str, **values: Any) -> TeamsStep:
    return lambda teams, connector, b, card: click(teams, connector, TEAMS_STRANGER, verb, b, card, **values)


TEAMS_STEPS: list[tuple[str, str, TeamsStep, str]] = [
    ("approve-request", "pending", _pressed("approve"), NOT_APPROVER + " approve"),
    ("reject", "pending", _pressed("reject"), NOT_APPROVER + " reject"),
    ("cancel", "draft", _pressed("cancel"), NOT_AUTHOR),
    ("edit", "draft", _pressed("edit", text="Hijacked"), NOT_AUTHOR),
    ("audience", "draft", _pressed("audience", audience="teams"), NOT_AUTHOR),
    ("schedule", "draft", _pressed("schedule", send_date=in_days(2), send_time="09:00"), NOT_AUTHOR),
    ("retract-button", "sent", _pressed("retract"), NOT_LEADER_RETRACT),
    ("correct-button", "sent", _pressed("correct", text="Hijacked"), NOT_CORRECTOR),
    ("retract-message", "sent", lambda t, c, b, card: teams_said(t, c, f"broadcast retract {b}"), NOT_LEADER_RETRACT),
    (
        "move-message",
        "scheduled",
        lambda t, c, b, card: teams_said(t, c, f"broadcast move {b} {in_days(3)} 10:00"),
        NOT_MOVER,
    ),
    ("unschedule-message", "scheduled", lambda t, c, b, card: teams_said(t, c, f"broadcast cancel {b}"), NOT_MOVER),
]


@pytest.mark.parametrize(("state", "step", "expected"), [s[1:] for s in TEAMS_STEPS], ids=[s[0] for s in TEAMS_STEPS])
async def test_every_teams_step_by_an_unauthorized_user_is_refused_and_changes_nothing(
    start_relay, connector: FakeConnector, slack: FakeSlack, x: FakeX, state: str, step: TeamsStep, expected: str
) -> None:
    tally(SECURITY)
    teams = await start(start_relay, connector, teams_config([f"teams:{CFO}"]) if state == "pending" else None)
    relay = Relay(teams.url.removesuffix("/api/messages"), slack, teams.http)
    broadcast, card = await teams_prepared(teams, connector, state)
    posted = (connector.posted(ANNOUNCEMENTS), [m["text"] for m in slack.messages(STAFF_CHANNEL)], len(x.tweets))
    before = await drafts(relay)
    assert expected in await step(teams, connector, broadcast, card)
    assert await drafts(relay) == before
    assert (
        connector.posted(ANNOUNCEMENTS),
        [m["text"] for m in slack.messages(STAFF_CHANNEL)],
        len(x.tweets),
    ) == posted


# ---- four eyes: nobody approves their own request -------------------------------------------------------


@pytest.mark.parametrize(
    "step",
    [
        lambda r, b: click_answer(r, LEADER, "approve", b, block_id=f"approval:{b}"),
        lambda r, b: click_answer(r, LEADER, "schedule", b, block_id=f"approval:{b}", state=picked(b, in_days(2))),
        lambda r, b: click_answer(r, LEADER, "approve", b),  # the preview's own button, pressed again
    ],
    ids=["approve", "schedule", "preview-button"],
)
async def test_with_four_eyes_the_author_cannot_approve_their_own_request(
    start_relay, slack: FakeSlack, x: FakeX, step: Step
) -> None:
    tally(SECURITY)
    relay = await start_relay(config_text([f"slack:{APPROVER}", f"slack:{LEADER}"]))
    broadcast = await prepared(relay, "pending")
    assert "You cannot approve your own broadcast: another approver must." in await step(relay, broadcast)
    assert "· pending · Quarterly update" in await drafts(relay)
    assert not slack.messages(STAFF_CHANNEL) and not x.calls


async def test_with_four_eyes_a_teams_author_cannot_approve_their_own_request(
    start_relay, connector: FakeConnector, x: FakeX
) -> None:
    tally(SECURITY)
    teams = await start(start_relay, connector, teams_config([f"teams:{CEO}", f"teams:{CFO}"]))
    broadcast, card = await teams_prepared(teams, connector, "pending")
    assert "You cannot approve your own broadcast" in await click(teams, connector, CEO, "approve", broadcast, card)
    assert not connector.posted(ANNOUNCEMENTS) and not x.calls


# ---- another Slack workspace, another Teams tenant ----------------------------------------------------


def from_workspace(body: str, team: str, whole: bool = True) -> str:
    """The same request as made by someone of workspace `team` (a namesake id elsewhere, or a guest in a
    shared channel); `whole=False` changes only the person's own team, as in a Slack Connect channel."""
    form = dict(parse_qsl(body))
    if "payload" not in form:
        return urlencode({**form, "team_id": team})
    payload = json.loads(form["payload"])
    payload["user"]["team_id"] = team
    if whole:
        payload["team"]["id"] = team
    return urlencode({"payload": json.dumps(payload)})


async def test_an_approver_id_from_another_workspace_does_not_count(start_relay, slack: FakeSlack, x: FakeX) -> None:
    relay = await start_relay(config_text([f"slack:{APPROVER}"]))
    broadcast = await prepared(relay, "pending")
    for whole in (True, False):  # a namesake in another workspace; a guest in a shared channel
        tally(SECURITY)
        key, url = relay.new_response_url()
        body = from_workspace(
            action_body(APPROVER, "approve", broadcast, url, block_id=f"approval:{broadcast}"), OTHER_TEAM, whole
        )
        assert (await relay.post_signed(body)).status == 200
        assert (await relay.answer(key))["text"] == OTHER_WORKSPACE
        assert "· pending · Quarterly update" in await drafts(relay)
        assert not slack.messages(STAFF_CHANNEL) and not x.calls
    await relay.click(APPROVER, "approve", broadcast, block_id=f"approval:{broadcast}")  # the real one
    assert "2 of 2 delivered." in await relay.final_report()
    assert len(slack.messages(STAFF_CHANNEL)) == 1 and len(x.tweets) == 1


@pytest.mark.parametrize(
    "request_body",
    [
        lambda url: command_body(LEADER, "Hello from elsewhere", url),
        lambda url: view_submission_body(LEADER, "compose", "{}", "Hello from elsewhere", "staff"),
    ],
    ids=["command", "composer"],
)
async def test_a_leader_id_from_another_workspace_cannot_broadcast(
    start_relay, slack: FakeSlack, x: FakeX, request_body: Callable[[str], str]
) -> None:
    tally(SECURITY)
    relay = await start_relay()
    answer = await relay.post_signed(from_workspace(request_body(slack.response_url("c")), OTHER_TEAM))
    assert OTHER_WORKSPACE in json.dumps(await answer.json())
    assert "No broadcasts yet." in await drafts(relay)
    assert not slack.messages(STAFF_CHANNEL) and not x.calls


def tenant(activity: dict[str, Any], tenant_id: str | None) -> dict[str, Any]:
    """The activity as Teams would send it from another tenant (or with none)."""
    activity["conversation"]["tenantId"] = tenant_id
    activity["channelData"] = {"tenant": {"id": tenant_id}} if tenant_id else {}
    return activity


@pytest.mark.parametrize("other", [OTHER_TENANT, None], ids=["another-tenant", "no-tenant"])
async def test_an_approver_from_another_tenant_does_not_count(
    start_relay, connector: FakeConnector, slack: FakeSlack, x: FakeX, other: str | None
) -> None:
    tally(SECURITY)
    teams = await start(start_relay, connector, teams_config([f"teams:{CFO}"]))
    broadcast, card = await teams_prepared(teams, connector, "pending")
    clicked = tenant(action(connector.service_url, CFO, "approve", {"broadcast_id": broadcast}, card), other)
    status, body = await teams.send(clicked)
    assert status == 200 and body["value"] == "This bot serves another organisation."
    relay = Relay(teams.url.removesuffix("/api/messages"), slack, teams.http)
    assert "· pending · Quarterly update" in await drafts(relay)
    assert not connector.posted(ANNOUNCEMENTS) and not x.calls


async def test_a_validly_signed_activity_from_another_tenant_is_refused(
    start_relay, connector: FakeConnector, x: FakeX, bot_framework_keys: None
) -> None:
    tally(SECURITY)
    relay = await start_relay(teams_config(), **CREDENTIALS)
    teams = TeamsClient(relay.url, relay.http)
    status, _ = await teams.send(
        tenant(message(connector.service_url, CEO, "broadcast From elsewhere"), OTHER_TENANT), token=token()
    )
    assert status in (200, 202)
    [answer] = await connector.wait_for(lambda: connector.posted(personal(CEO)["id"]))
    assert answer["text"] == "This bot serves another organisation."
    assert not connector.cards(personal(CEO)["id"]) and not x.calls


# ---- secrets: in no log line, no error, no file; the database owner-only ------------------------------

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|_KEY$")

CONFIG = """
[policy]
leaders = ["slack:U0LEAD"]
default_audience = "everyone"

[destinations.all-staff]
kind = "slack"
channel = "C0STAFF"

[destinations.company-x]
kind = "x"

[destinations.company-mastodon]
kind = "mastodon"

[destinations.company-linkedin]
kind = "linkedin"
organization = "urn:li:organization:2414183"

[destinations.company-threads]
kind = "threads"

[audiences]
everyone = ["all-staff", "company-x", "company-mastodon", "company-linkedin", "company-threads"]
"""


def unique(prefix: str) -> str:
    """A secret no log line could contain by chance."""
    return f"{prefix}-{secrets.token_hex(12)}"


async def test_no_secret_reaches_a_log_line_an_error_or_the_database(tmp_path: Path, backend: str) -> None:
    x_credentials = [unique(p) for p in ("x-key", "x-secret", "x-token", "x-token-secret")]
    async with (
        FakeSlack(token=unique("xoxb"), app_token=unique("xapp")) as slack,
        FakeX(*x_credentials) as x,
        FakeMastodon(token=unique("mastodon")) as mastodon,
        FakeLinkedIn(token=unique("linkedin")) as linkedin,
        FakeThreads(token=unique("threads")) as threads,
    ):
        env = {
            **bot_env(tmp_path, slack, x, CONFIG),
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_APP_TOKEN": slack.app_token,
            "MASTODON_URL": mastodon.url,
            "MASTODON_ACCESS_TOKEN": mastodon.token,
            "LINKEDIN_API_URL": linkedin.url,
            "LINKEDIN_ACCESS_TOKEN": linkedin.token,
            "THREADS_API_URL": threads.api_url,
            "THREADS_ACCESS_TOKEN": threads.token,
            "RELAY_STATUS_SECRET": unique("status"),
            "PORT": str(free_port()),
        }
        # Every destination refuses its credentials, and the report's permalink is refused too.
        slack.faults.add(
            "chat.postMessage",
            Fault.status(200, {"ok": False, "error": "invalid_auth"}),
            when=lambda p: p.get("channel") == STAFF_CHANNEL,
        )
        slack.faults.add("chat.getPermalink", Fault.status(401, {"ok": False, "error": "invalid_auth"}))
        x.faults.add(
            "POST /2/tweets", Fault.status(401, {"title": "Unauthorized", "status": 401, "detail": "Unauthorized"})
        )
        linkedin.faults.add("POST /rest/posts", Fault.status(401, {"status": 401, "message": "Invalid access token"}))
        mastodon.token_revoked = True
        threads.token_expired = True  # refused at every call, each of which carries the token in its parameters
        process = BotProcess(env)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            relay = Relay(f"http://127.0.0.1:{env['PORT']}", slack, http)
            try:
                await process.start()
                broadcast = preview_id(await relay.command(LEADER, "Everything refuses us"))
                await relay.click(LEADER, "approve", broadcast)
                report = await relay.final_report(timeout=20)
                late = command_body(LEADER, "Late", slack.response_url("late"))  # carries a verification token
                stale = signed_headers(SIGNING_SECRET, late, timestamp=int(time.time()) - 600)
                assert (await relay.post_signed(late, stale)).status == 401
                assert (await relay.post_signed(late, signed_headers("not-the-secret", late))).status == 401
                login = await http.post(
                    f"{relay.url}/status/login", data={"secret": "a wrong guess at it"}, headers={"Origin": relay.url}
                )
                assert login.status == 401
            finally:
                await process.stop()
        assert "0 of 5 delivered." in report
        values = [value for name, value in env.items() if SECRET_NAME.search(name)]
        assert len(values) == 11 and SIGNING_SECRET in values
        values += ["deprecated-verification-token", slack.response_url("late")]  # what Slack's requests carry
        lines = process.log
        tally("log lines checked for secrets", n=len(lines))
        leaked = [(value[:8], line) for line in lines for value in values if value in line]
        assert not leaked
        shown = json.dumps([slack.messages(f"D{LEADER}"), slack.responses])
        assert not [value for value in values if value in shown], "no secret in what the leader is shown"
        assert not [value for value in values if value.encode() in _stored(backend, tmp_path)], "no secret stored"


def _stored(backend: str, folder: Path) -> bytes:
    """Everything the database holds, as bytes to search: SQLite's files (owner-only), or every row."""
    if backend == "sqlite":
        files = sorted(folder.glob("relay.db*"))
        assert files and oct(os.stat(folder / "relay.db").st_mode & 0o777) == "0o600"
        assert all(os.stat(f).st_mode & 0o077 == 0 for f in files), "no database file is readable by others"
        return b"".join(f.read_bytes() for f in files)
    with psycopg.connect(DATABASE["DATABASE_URL"]) as pg:
        tables = [row[0] for row in pg.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        assert "deliveries" in tables
        return repr([pg.execute(f"SELECT * FROM {table}".encode()).fetchall() for table in tables]).encode()


# ---- what is reachable, and from where -----------------------------------------------------------------


async def reachable(address: str, port: int) -> bool:
    """Whether a client can reach the bot at `address` (127.0.0.2 is this machine too: Linux routes all of
    127/8 to loopback, so a server listening on every interface answers there, one on 127.0.0.1 does not)."""
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://{address}:{port}/healthz") as answer:
            return answer.status == 200
    except aiohttp.ClientConnectionError:
        return False


async def test_anonymous_teams_mode_listens_on_loopback_only_and_names_what_could_be_posted_to(
    tmp_path: Path, slack: FakeSlack, x: FakeX
) -> None:
    """Unsigned Teams requests claiming a leader's (not secret) Entra id would post everywhere: that mode
    must never be reachable from another machine, whatever HOST says."""
    port = free_port()
    env = {
        **bot_env(tmp_path, slack, x, teams_config()),
        "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__ANONYMOUS_ALLOWED": "true",
        "HOST": "0.0.0.0",
        "PORT": str(port),
    }
    process = BotProcess(env)
    await process.start()
    try:
        assert await reachable("127.0.0.1", port)
        assert not await reachable("127.0.0.2", port), "not on any other address of the machine"
        with pytest.raises(aiohttp.ClientConnectionError):
            async with aiohttp.ClientSession() as http:
                await http.post(f"http://127.0.0.2:{port}/api/messages", json=message("http://x", CEO, "/broadcast hi"))
    finally:
        await process.stop()
    loud = next(line for line in process.log if "TEAMS ANONYMOUS MODE" in line)
    assert "127.0.0.1 only (HOST is ignored)" in loud
    for live in ("all-staff (slack)", "teams-announcements (teams)", "company-x (x)"):
        assert live in loud, live
    assert any(f"listening on port {port} (127.0.0.1 only)" in line for line in process.log)
    tally(SECURITY, 2)


async def test_host_chooses_the_address_and_the_default_is_every_interface(
    tmp_path: Path, slack: FakeSlack, x: FakeX
) -> None:
    for host, answers, silent in (
        (None, ("127.0.0.1", "127.0.0.2"), ()),
        ("127.0.0.2", ("127.0.0.2",), ("127.0.0.1",)),
    ):
        port = free_port()
        env = {**bot_env(tmp_path, slack, x, config_text()), "PORT": str(port), **({"HOST": host} if host else {})}
        process = BotProcess(env)
        await process.start()
        try:
            for address in answers:
                assert await reachable(address, port), (host, address)
            for address in silent:
                assert not await reachable(address, port), (host, address)
        finally:
            await process.stop()


async def test_a_captured_command_replayed_after_a_restart_is_still_refused(start_relay, slack: FakeSlack) -> None:
    relay = await start_relay()
    body = command_body(LEADER, "Captured on the way", slack.response_url("r"))
    headers = signed_headers(SIGNING_SECRET, body)
    assert (await relay.post_signed(body, headers)).status == 200
    assert relay.server is not None
    await relay.server.close()
    restarted = await start_relay()
    again = await restarted.post_signed(body, headers)
    assert again.status == 401 and await again.json() == {"error": "replayed request"}
    assert (await drafts(restarted)).count("Captured on the way") == 1
    tally(SECURITY)
