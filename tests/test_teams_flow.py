"""A broadcast from Microsoft Teams, and Teams channels as a destination, end to end over loopback."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from relay.config import ConfigError, settings_from_env
from tests.conftest import LEADER, STAFF_CHANNEL, TEAMS_ENV, Relay, preview_id, report_text, teams_config
from tests.fakes import FakeSlack, FakeX, Fault
from tests.fakes.teams import FakeConnector
from tests.proof import tally
from tests.teams_activities import (
    ANNOUNCEMENTS,
    APPROVALS,
    CEO,
    CFO,
    STRANGER,
    TeamsClient,
    action,
    channel_created,
    installed_in_team,
    message,
    personal,
)


def card_text(card: dict[str, Any]) -> str:
    """Every word on a card, as a person reads it."""
    words: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("text", "title", "value"):
                if isinstance(node.get(key), str):
                    words.append(node[key])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return "\n".join(words)


async def start(start_relay, connector: FakeConnector, config: str | None = None) -> TeamsClient:  # type: ignore[no-untyped-def]
    relay = await start_relay(config or teams_config(), **TEAMS_ENV)
    teams = TeamsClient(relay.url, relay.http)
    status, _ = await teams.send(installed_in_team(connector.service_url))
    assert status in (200, 202)
    return teams


def card_id(words: str) -> str:
    """The broadcast id a Teams card names (in bold: Adaptive Cards do not render code spans)."""
    match = re.search(r"\*\*(b[0-9a-f]{8})\*\*", words)
    assert match, words
    return match.group(1)


async def ask(teams: TeamsClient, connector: FakeConnector, user: str, text: str) -> tuple[str, str]:
    """`broadcast …` in a personal chat: returns the broadcast id and the preview card's message id."""
    status, _ = await teams.send(message(connector.service_url, user, text))
    assert status in (200, 202)
    chat = personal(user)["id"]
    card = await connector.wait_for(lambda: connector.cards(chat))
    return card_id(card_text(card[-1])), connector.posted(chat)[-1]["id"]


async def click(
    teams: TeamsClient, connector: FakeConnector, user: str, verb: str, broadcast: str, card: str, **values: Any
) -> str:
    """Press a card button; returns what Teams shows the clicker (the new card's words, or a message)."""
    status, body = await teams.send(
        action(connector.service_url, user, verb, {"broadcast_id": broadcast, **values}, card)
    )
    assert status == 200, body
    value = body["value"]
    return value if isinstance(value, str) else card_text(value)


async def final_card(connector: FakeConnector, conversation: str) -> str:
    """Wait until the card in `conversation` reports every delivery final."""

    def done() -> str | None:
        for card in connector.cards(conversation):
            text = card_text(card)
            if re.search(r"delivered\.", text):
                return text
        return None

    return await connector.wait_for(done, timeout=10)


async def test_a_teams_leader_reaches_a_teams_channel_slack_and_x_once_each(
    start_relay, connector, slack: FakeSlack, x: FakeX
) -> None:
    teams = await start(start_relay, connector)
    broadcast, card = await ask(teams, connector, CEO, "broadcast *Q3 results* are out")
    preview = card_text(connector.cards(personal(CEO)["id"])[-1])
    assert "teams-announcements" in preview and "**Q3 results** are out" in preview  # Markdown for Teams
    assert not connector.posted(ANNOUNCEMENTS) and not slack.messages(STAFF_CHANNEL) and not x.tweets

    shown = await click(teams, connector, CEO, "approve", broadcast, card)
    assert f"Broadcast **{broadcast}** to **everyone**" in shown
    report = await final_card(connector, personal(CEO)["id"])
    assert "3 of 3 delivered." in report
    [posted] = connector.posted(ANNOUNCEMENTS)
    assert posted["text"] == "**Q3 results** are out" and posted["textFormat"] == "markdown"
    assert "https://teams.microsoft.com/l/message/" in report
    assert len(slack.messages(STAFF_CHANNEL)) == 1 and len(x.tweets) == 1
    assert connector.calls_to("PUT activity"), "the preview card itself became the report"


async def test_help_and_chatter_get_the_usage(start_relay, connector) -> None:
    teams = await start(start_relay, connector)
    await teams.send(message(connector.service_url, CEO, "hello bot"))
    [answer] = await connector.wait_for(lambda: connector.posted(personal(CEO)["id"]))
    assert "write `broadcast` then your message" in answer["text"]


async def test_an_unauthorized_teams_user_is_refused(start_relay, connector, slack: FakeSlack, x: FakeX) -> None:
    teams = await start(start_relay, connector)
    await teams.send(message(connector.service_url, STRANGER, "broadcast Free pizza"))
    [answer] = await connector.wait_for(lambda: connector.posted(personal(STRANGER)["id"]))
    assert answer["text"].startswith("Only the leaders listed")
    assert not connector.cards(personal(STRANGER)["id"]) and not x.calls


async def test_an_unauthorized_clicker_cannot_approve(start_relay, connector, x: FakeX) -> None:
    teams = await start(start_relay, connector)
    broadcast, card = await ask(teams, connector, CEO, "broadcast Big news")
    shown = await click(teams, connector, STRANGER, "approve", broadcast, card)
    assert "Only the person who wrote this broadcast" in shown
    assert not connector.posted(ANNOUNCEMENTS) and not x.calls


async def test_a_double_submit_sends_once(start_relay, connector, slack: FakeSlack, x: FakeX) -> None:
    teams = await start(start_relay, connector)
    broadcast, card = await ask(teams, connector, CEO, "broadcast Once")
    await click(teams, connector, CEO, "approve", broadcast, card)
    second = await click(teams, connector, CEO, "approve", broadcast, card)
    assert "already approved" in second
    await final_card(connector, personal(CEO)["id"])
    assert len(connector.posted(ANNOUNCEMENTS)) == 1 and len(slack.messages(STAFF_CHANNEL)) == 1 and len(x.tweets) == 1


async def test_edit_audience_and_cancel_from_the_card(start_relay, connector, x: FakeX) -> None:
    teams = await start(start_relay, connector)
    broadcast, card = await ask(teams, connector, CEO, "broadcast Helo")
    assert "Hello" in await click(teams, connector, CEO, "edit", broadcast, card, text="Hello")
    shown = await click(teams, connector, CEO, "audience", broadcast, card, audience="teams")
    assert "to **teams** (1 destination)" in shown and "company-x" not in shown
    assert "cancelled" in await click(teams, connector, CEO, "cancel", broadcast, card)
    assert "already cancelled" in await click(teams, connector, CEO, "approve", broadcast, card)
    assert not connector.posted(ANNOUNCEMENTS) and not x.calls


async def test_asked_in_slack_and_approved_in_teams_by_another_person(
    start_relay, connector, slack: FakeSlack, x: FakeX
) -> None:
    config = teams_config([f"teams:{CFO}"], f'teams_approval_channel = "{APPROVALS}"')
    teams = await start(start_relay, connector, config)
    relay = Relay(teams.url.removesuffix("/api/messages"), slack, teams.http)
    broadcast = preview_id(await relay.command(LEADER, "Four eyes across apps"))
    await relay.click(LEADER, "approve", broadcast)
    [request] = await connector.wait_for(lambda: connector.cards(APPROVALS))
    assert f"asks to broadcast **{broadcast}**" in card_text(request)
    request_id = connector.posted(APPROVALS)[0]["id"]
    assert not connector.posted(ANNOUNCEMENTS) and not x.tweets

    shown = await click(teams, connector, CFO, "approve", broadcast, request_id)
    assert "approved by you" in shown
    assert "3 of 3 delivered." in await relay.final_report()
    assert len(connector.posted(ANNOUNCEMENTS)) == 1 and len(x.tweets) == 1
    closed = await connector.wait_for(lambda: "approved by User f0" in card_text(connector.cards(APPROVALS)[0]))
    assert closed, "named as Teams shows them, not by id"


async def test_self_approval_is_refused_across_platforms_for_one_person(
    start_relay, connector, slack: FakeSlack, x: FakeX
) -> None:
    config = teams_config([f"teams:{CEO}", f"teams:{CFO}"], f'teams_approval_channel = "{APPROVALS}"')
    teams = await start(start_relay, connector, config)
    relay = Relay(teams.url.removesuffix("/api/messages"), slack, teams.http)
    broadcast = preview_id(await relay.command(LEADER, "Mine to approve?"))
    await relay.click(LEADER, "approve", broadcast)
    await connector.wait_for(lambda: connector.cards(APPROVALS))
    request_id = connector.posted(APPROVALS)[0]["id"]
    shown = await click(teams, connector, CEO, "approve", broadcast, request_id)
    assert "You cannot approve your own broadcast" in shown
    assert not connector.posted(ANNOUNCEMENTS) and not x.calls and not slack.messages(STAFF_CHANNEL)


async def test_teams_429_is_retried_after_retry_after_and_posted_once(start_relay, connector) -> None:
    connector.faults.add(
        "POST activities", connector.throttled(retry_after=1), when=lambda p: p["conversation"] == ANNOUNCEMENTS
    )
    teams = await start(start_relay, connector)
    broadcast, card = await ask(teams, connector, CEO, "broadcast Throttled once")
    await click(teams, connector, CEO, "audience", broadcast, card, audience="teams")
    await click(teams, connector, CEO, "approve", broadcast, card)
    assert "1 of 1 delivered." in await final_card(connector, personal(CEO)["id"])
    first, second = [c for c in connector.calls_to("POST activities") if c.conversation == ANNOUNCEMENTS]
    assert second.at - first.at >= 1.0
    assert len(connector.posted(ANNOUNCEMENTS)) == 1


async def test_a_channel_created_later_is_learned(start_relay, connector) -> None:
    later = "19:later@thread.tacv2"
    config = teams_config().replace(ANNOUNCEMENTS, later)
    relay = await start_relay(config, **TEAMS_ENV)
    teams = TeamsClient(relay.url, relay.http)
    await teams.send(installed_in_team(connector.service_url))
    await teams.send(channel_created(connector.service_url, later, "Later"))
    broadcast, card = await ask(teams, connector, CEO, "broadcast Found it")
    await click(teams, connector, CEO, "audience", broadcast, card, audience="teams")
    await click(teams, connector, CEO, "approve", broadcast, card)
    assert "1 of 1 delivered." in await final_card(connector, personal(CEO)["id"])
    assert len(connector.posted(later)) == 1


async def test_a_channel_the_bot_was_never_added_to_fails_with_the_fix(start_relay, connector) -> None:
    config = teams_config().replace(ANNOUNCEMENTS, "19:elsewhere@thread.tacv2")
    teams = await start(start_relay, connector, config)
    broadcast, card = await ask(teams, connector, CEO, "broadcast Where?")
    await click(teams, connector, CEO, "audience", broadcast, card, audience="teams")
    await click(teams, connector, CEO, "approve", broadcast, card)
    report = await final_card(connector, personal(CEO)["id"])
    assert "add the app to the team that owns it" in report and "It is in: Company." in report


async def test_an_activity_from_another_tenant_is_refused(start_relay, connector, x: FakeX) -> None:
    tally("security checks (forged, replayed, unauthorized)")
    teams = await start(start_relay, connector)
    other = "11111111-2222-3333-4444-555555555555"
    await teams.send(message(connector.service_url, CEO, "broadcast From elsewhere", tenant=other))
    [answer] = await connector.wait_for(lambda: connector.posted(personal(CEO)["id"]))
    assert answer["text"] == "This bot serves another organisation."
    assert not connector.cards(personal(CEO)["id"]) and not x.calls


@pytest.mark.parametrize("authorization", [None, "Bearer garbage", "Basic dXNlcjpwYXNz"])
async def test_with_credentials_an_unsigned_or_forged_activity_is_refused(
    start_relay, connector, authorization: str | None
) -> None:
    tally("security checks (forged, replayed, unauthorized)")
    relay = await start_relay(
        teams_config(),
        CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID="11111111-1111-1111-1111-111111111111",
        CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTSECRET="teams-client-secret",
        CONNECTIONS__SERVICE_CONNECTION__SETTINGS__TENANTID="72f988bf-86f1-41af-91ab-2d7cd011db47",
    )
    headers = {"Authorization": authorization} if authorization else {}
    async with relay.http.post(
        f"{relay.url}/api/messages", json=message(connector.service_url, CEO, "broadcast Forged"), headers=headers
    ) as response:
        assert response.status == 401
    assert not connector.calls


def test_anonymous_mode_with_credentials_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="ANONYMOUS_ALLOWED=true would let unsigned requests in"):
        settings_from_env({**TEAMS_ENV, "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID": "x"})


async def test_people_are_named_as_declared_on_approval_cards(start_relay, connector, slack: FakeSlack) -> None:
    config = teams_config([f"teams:{CFO}"], f'teams_approval_channel = "{APPROVALS}"')
    teams = await start(start_relay, connector, config)
    relay = Relay(teams.url.removesuffix("/api/messages"), slack, teams.http)
    await relay.click(LEADER, "approve", preview_id(await relay.command(LEADER, "Named")))
    [request] = await connector.wait_for(lambda: connector.cards(APPROVALS))
    assert "**ceo** asks to broadcast" in card_text(request)


async def test_a_teams_post_whose_answer_never_comes_is_unknown_not_repeated(start_relay, connector) -> None:
    connector.faults.add("POST activities", Fault.hang(), when=lambda p: p["conversation"] == ANNOUNCEMENTS)
    relay = await start_relay(teams_config(), RELAY_HTTP_TIMEOUT="1", **TEAMS_ENV)
    teams = TeamsClient(relay.url, relay.http)
    await teams.send(installed_in_team(connector.service_url))
    broadcast, card = await ask(teams, connector, CEO, "broadcast Did it land?")
    await click(teams, connector, CEO, "audience", broadcast, card, audience="teams")
    await click(teams, connector, CEO, "approve", broadcast, card)
    report = await final_card(connector, personal(CEO)["id"])
    assert "unknown, not posted again" in report and "look there before posting it by hand" in report
    assert len([c for c in connector.calls_to("POST activities") if c.conversation == ANNOUNCEMENTS]) == 1


async def test_a_rejection_in_slack_turns_the_teams_leaders_card_into_the_answer(
    start_relay, connector, slack: FakeSlack, x: FakeX
) -> None:
    teams = await start(start_relay, connector, teams_config(["slack:U0APPR"]))
    broadcast, card = await ask(teams, connector, CEO, "broadcast Not this time")
    assert "waiting for an approver" in await click(teams, connector, CEO, "approve", broadcast, card)
    relay = Relay(teams.url.removesuffix("/api/messages"), slack, teams.http)
    [request] = await slack.wait_for(lambda: slack.messages("DU0APPR"))
    assert "ceo asks to broadcast" in report_text(request)
    await relay.click("U0APPR", "reject", broadcast, block_id=f"approval:{broadcast}")
    rejected = await connector.wait_for(
        lambda: [
            c
            for c in connector.cards(personal(CEO)["id"])
            if "rejected by <@U0APPR>" in card_text(c) or "rejected by slack:U0APPR" in card_text(c)
        ]
    )
    assert rejected and not x.calls and not connector.posted(ANNOUNCEMENTS)


async def test_a_teams_leader_retracts_from_the_report_card(start_relay, connector, slack: FakeSlack, x: FakeX) -> None:
    teams = await start(start_relay, connector)
    broadcast, card = await ask(teams, connector, CEO, "broadcast Take me back")
    await click(teams, connector, CEO, "approve", broadcast, card)
    await final_card(connector, personal(CEO)["id"])
    shown = await click(teams, connector, CEO, "retract", broadcast, card)
    assert "retracted" in shown
    done = await connector.wait_for(
        lambda: [c for c in connector.cards(personal(CEO)["id"]) if "3 of 3 deleted." in card_text(c)], timeout=10
    )
    assert done and not connector.posted(ANNOUNCEMENTS) and not slack.messages(STAFF_CHANNEL) and not x.tweets


async def test_a_teams_leader_schedules_on_their_own_clock(start_relay, connector, x: FakeX) -> None:
    teams = await start(start_relay, connector)
    broadcast, card = await ask(teams, connector, CEO, "broadcast Next week")
    activity = action(
        connector.service_url,
        CEO,
        "schedule",
        {"broadcast_id": broadcast, "send_date": "2099-01-05", "send_time": "09:00"},
        card,
    )
    activity["localTimezone"] = "America/New_York"
    status, body = await teams.send(activity)
    assert status == 200 and "more than 90 days ahead" in body["value"]  # 2099 is refused, on the leader's clock
    soon = datetime.now(ZoneInfo("America/New_York")) + timedelta(days=2)
    activity["value"]["action"]["data"].update(send_date=soon.strftime("%Y-%m-%d"), send_time="09:00")
    status, body = await teams.send(activity)
    nine = soon.replace(hour=9, minute=0).astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:00Z")
    assert f"scheduled for {{{{DATE({nine}, SHORT)}}}}" in card_text(body["value"])  # 09:00 in New York
    assert not x.calls and not connector.posted(ANNOUNCEMENTS)


async def test_a_teams_leader_corrects_the_staff_posts_in_place(
    start_relay, connector, slack: FakeSlack, x: FakeX
) -> None:
    teams = await start(start_relay, connector)
    broadcast, card = await ask(teams, connector, CEO, "broadcast Offsite on Fridy")
    await click(teams, connector, CEO, "approve", broadcast, card)
    await final_card(connector, personal(CEO)["id"])
    shown = await click(teams, connector, CEO, "correct", broadcast, card, text="Offsite on Friday")
    assert "Public networks cannot edit posts" in shown
    await connector.wait_for(lambda: connector.posted(ANNOUNCEMENTS)[0]["text"] == "Offsite on Friday", timeout=10)
    await slack.wait_for(lambda: slack.messages(STAFF_CHANNEL)[0]["text"] == "Offsite on Friday", timeout=10)
    assert [t.text for t in x.tweets] == ["Offsite on Fridy"]


async def test_a_teams_leader_moves_and_cancels_a_scheduled_broadcast(start_relay, connector, x: FakeX) -> None:
    teams = await start(start_relay, connector)
    chat = personal(CEO)["id"]
    soon = (datetime.now(ZoneInfo("Europe/Paris")) + timedelta(days=2)).strftime("%Y-%m-%d")
    later = (datetime.now(ZoneInfo("Europe/Paris")) + timedelta(days=3)).strftime("%Y-%m-%d")
    broadcast, card = await ask(teams, connector, CEO, "broadcast Later")
    scheduled = action(
        connector.service_url,
        CEO,
        "schedule",
        {"broadcast_id": broadcast, "send_date": soon, "send_time": "09:00"},
        card,
    )
    scheduled["localTimezone"] = "Europe/Paris"
    await teams.send(scheduled)
    moving = message(connector.service_url, CEO, f"broadcast move {broadcast} {later} 10:00")
    moving["localTimezone"] = "Europe/Paris"
    await teams.send(moving)
    moved = await connector.wait_for(lambda: [m for m in connector.posted(chat) if "Moved" in (m.get("text") or "")])
    assert "10:00 CE" in moved[0]["text"]
    await teams.send(message(connector.service_url, CEO, f"broadcast cancel {broadcast}"))
    await connector.wait_for(lambda: [m for m in connector.posted(chat) if "was cancelled" in (m.get("text") or "")])
    assert not x.calls and not connector.posted(ANNOUNCEMENTS)
