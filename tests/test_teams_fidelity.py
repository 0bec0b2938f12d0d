"""What a real Teams tenant does to the Teams surface, against the strict fake Bot Connector (Teams' size
limit, Microsoft's Adaptive Cards library): the defects of issue 10, findings 7 and 9 to 12."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.conftest import teams_config
from tests.fakes import FakeX, Fault
from tests.fakes.teams import FakeConnector
from tests.teams_activities import ANNOUNCEMENTS, APPROVALS, CEO, CFO, TEAM, TENANT, action, message, personal
from tests.test_teams_flow import ask, card_text, click, final_card, start

CHAT = personal(CEO)["id"]


def in_channel(activity: dict[str, Any], channel: str = ANNOUNCEMENTS) -> dict[str, Any]:
    """The same activity, written in a team's channel (with the bot @mentioned) instead of the 1:1 chat."""
    activity["conversation"] = {"id": channel, "conversationType": "channel", "isGroup": True, "tenantId": TENANT}
    activity["channelData"] = {"tenant": {"id": TENANT}, "team": {"id": TEAM}, "channel": {"id": channel}}
    return activity


def texts(connector: FakeConnector, conversation: str) -> list[str]:
    return [m.get("text") or "" for m in connector.posted(conversation)]


def kb(card: Any) -> float:
    return len(json.dumps(card)) / 1024


def text_blocks(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "TextBlock" else []
        return own + [t for value in node.values() for t in text_blocks(value)]
    if isinstance(node, list):
        return [t for item in node for t in text_blocks(item)]
    return []


# ---- finding 7: nothing to say must not crash the turn ------------------------------------------------


async def test_broadcast_alone_opens_the_composer(start_relay, connector: FakeConnector) -> None:
    teams = await start(start_relay, connector)
    status, _ = await teams.send(message(connector.service_url, CEO, "broadcast"))
    assert status in (200, 202)
    [card] = await connector.wait_for(lambda: connector.cards(CHAT))
    assert "New broadcast" in card_text(card) and card["actions"][0]["verb"] == "compose"


async def test_an_empty_message_and_a_bare_mention_get_the_usage(start_relay, connector: FakeConnector) -> None:
    teams = await start(start_relay, connector)
    await teams.send(message(connector.service_url, CEO, ""))
    await teams.send(in_channel(message(connector.service_url, CEO, "<at>Broadcast Relay</at>")))
    await connector.wait_for(lambda: texts(connector, CHAT) and texts(connector, ANNOUNCEMENTS))
    assert "How to broadcast" in texts(connector, CHAT)[0]
    assert "How to broadcast" in texts(connector, ANNOUNCEMENTS)[0]


# ---- finding 9: every message fits Teams' 28 KB -----------------------------------------------------------


def many_channels(count: int) -> str:
    """A config with `count` dry-run Teams channels in one audience (previews need no delivery)."""
    destinations = "\n".join(
        f'[destinations.channel-{i:03}]\nkind = "teams"\nchannel = "19:c{i:03}@thread.tacv2"\ndry_run = true\n'
        for i in range(count)
    )
    names = ", ".join(f'"channel-{i:03}"' for i in range(count))
    return teams_config().replace("[audiences]", f"{destinations}\n[audiences]\nmany = [{names}]")


async def test_a_long_text_to_31_destinations_previews_within_teams_limit(start_relay, connector) -> None:
    teams = await start(start_relay, connector, many_channels(31))
    text = "Quarterly update. " * 111  # about 2,000 characters
    await teams.send(message(connector.service_url, CEO, f"broadcast {text}"))
    [card] = await connector.wait_for(lambda: connector.cards(CHAT))
    assert not connector.refused, connector.refused[0][0]
    broadcast = card["actions"][-1]["data"]["broadcast_id"]
    data = {"broadcast_id": broadcast, "audience": "many"}
    status, answer = await teams.send(
        action(connector.service_url, CEO, "audience", data, connector.posted(CHAT)[0]["id"])
    )
    assert status == 200 and kb(answer["value"]) < 24, "the card that replaces the preview fits too"
    shown = " ".join(text_blocks(answer["value"]["body"]))
    assert "(31 destinations)" in shown and shown.count("Quarterly update.") == 111
    assert "**channel-000**, **channel-001**" in shown and "and 6 more" in shown


# ---- finding 10: links and angle brackets as written ---------------------------------------------------------


async def test_links_typed_in_teams_and_angle_brackets_reach_every_network(
    start_relay, connector: FakeConnector, x: FakeX
) -> None:
    teams = await start(start_relay, connector)
    typed = (
        'broadcast Read <a href="https://example.com/q3" rel="noreferrer noopener" target="_blank">'
        "the Q3 report</a> and &lt;https://example.com/faq|the FAQ&gt;: margins &lt;5% and &gt;2%"
    )
    broadcast, card = await ask(teams, connector, CEO, typed)
    await click(teams, connector, CEO, "approve", broadcast, card)
    await final_card(connector, CHAT)
    [posted] = connector.posted(ANNOUNCEMENTS)
    assert "[the Q3 report](https://example.com/q3)" in posted["text"]
    assert "[the FAQ](https://example.com/faq)" in posted["text"]
    assert "5% and" in posted["text"] and "2%" in posted["text"]
    [tweet] = x.tweets
    assert tweet.text == (
        "Read the Q3 report (https://example.com/q3) and the FAQ (https://example.com/faq): margins <5% and >2%"
    )


# ---- finding 11: drafts only in the author's chat ------------------------------------------------------


async def test_a_mention_in_a_channel_sends_the_preview_to_the_authors_chat(start_relay, connector) -> None:
    teams = await start(start_relay, connector)
    await teams.send(in_channel(message(connector.service_url, CEO, "<at>Broadcast Relay</at> broadcast Hush")))
    [card] = await connector.wait_for(lambda: connector.cards(CHAT))
    assert "Preview" in card_text(card) and "Hush" in card_text(card)
    [said] = await connector.wait_for(lambda: texts(connector, ANNOUNCEMENTS))
    assert "in our chat" in said and not connector.cards(ANNOUNCEMENTS), "no draft, no Approve button in public"
    [opened] = connector.calls_to("POST conversations")
    assert opened.body["members"] == [{"id": f"29:{CEO}"}] and opened.body["tenantId"] == TENANT

    broadcast = card["actions"][-1]["data"]["broadcast_id"]
    await click(teams, connector, CEO, "approve", broadcast, connector.posted(CHAT)[0]["id"])
    assert "1 of 1 delivered." not in await final_card(connector, CHAT)  # the report lives in the chat too


# ---- finding 12: names, no backticks, permanent answers, scheduled reports ----------------------------------


async def test_cards_carry_no_backticks(start_relay, connector: FakeConnector) -> None:
    teams = await start(start_relay, connector)
    broadcast, card = await ask(teams, connector, CEO, "broadcast Plain words")
    await click(teams, connector, CEO, "approve", broadcast, card)
    await final_card(connector, CHAT)
    await teams.send(message(connector.service_url, CEO, "status"))
    await connector.wait_for(lambda: len(connector.cards(CHAT)) == 2)
    blocks = [t for call in connector.calls if call.body for t in text_blocks(call.body.get("attachments"))]
    assert blocks and not [t for t in blocks if "`" in t]


async def test_an_approver_who_only_clicked_in_a_channel_is_named(start_relay, connector: FakeConnector) -> None:
    config = teams_config([f"teams:{CFO}"], f'teams_approval_channel = "{APPROVALS}"')
    teams = await start(start_relay, connector, config)
    broadcast, card = await ask(teams, connector, CEO, "broadcast Four eyes")
    assert "waiting for an approver" in await click(teams, connector, CEO, "approve", broadcast, card)
    await connector.wait_for(lambda: connector.cards(APPROVALS))
    channel = {"id": APPROVALS, "conversationType": "channel", "isGroup": True}
    request = connector.posted(APPROVALS)[0]["id"]
    status, _ = await teams.send(
        action(connector.service_url, CFO, "approve", {"broadcast_id": broadcast}, request, channel)
    )
    assert status == 200 and not connector.posted(personal(CFO)["id"])  # no chat of theirs with the bot
    await connector.wait_for(lambda: "approved by" in card_text(connector.cards(APPROVALS)[-1]))
    assert "approved by User f0" in card_text(connector.cards(APPROVALS)[-1]), "as Teams names them, not by id"


async def test_a_501_from_teams_is_not_retried(start_relay, connector: FakeConnector) -> None:
    body = {"error": {"code": "NotImplemented", "message": "Not implemented"}}
    connector.faults.add("POST activities", Fault.status(501, body), when=lambda p: p["conversation"] == ANNOUNCEMENTS)
    teams = await start(start_relay, connector)
    broadcast, card = await ask(teams, connector, CEO, "broadcast Once is enough")
    await click(teams, connector, CEO, "audience", broadcast, card, audience="teams")
    await click(teams, connector, CEO, "approve", broadcast, card)
    report = await final_card(connector, CHAT)
    assert "0 of 1 delivered." in report and "(501)" in report
    assert len([c for c in connector.calls_to("POST activities") if c.conversation == ANNOUNCEMENTS]) == 1


async def test_a_scheduled_broadcast_s_card_is_its_report_at_once(start_relay, connector: FakeConnector) -> None:
    teams = await start(start_relay, connector)
    broadcast, card = await ask(teams, connector, CEO, "broadcast Next week's news")
    soon = datetime.now(ZoneInfo("UTC")) + timedelta(days=2)
    when = {"send_date": soon.strftime("%Y-%m-%d"), "send_time": "09:00"}
    shown = await click(teams, connector, CEO, "schedule", broadcast, card, **when)
    # What Teams shows the clicker is what the report refresher draws on the same card: no answer to
    # land over the report, which the Agents Playground showed ("is going out", for a broadcast that waits).
    assert f"**{broadcast}** to **everyone**: scheduled for {{{{DATE(" in shown and "is going out" not in shown


async def test_reports_and_status_show_links_not_slack_markup(start_relay, connector: FakeConnector) -> None:
    teams = await start(start_relay, connector)
    broadcast, card = await ask(teams, connector, CEO, "broadcast Read <https://example.com/q3|the Q3 report>")
    await click(teams, connector, CEO, "audience", broadcast, card, audience="teams")
    await click(teams, connector, CEO, "approve", broadcast, card)
    await final_card(connector, CHAT)
    await teams.send(message(connector.service_url, CEO, "status"))
    [report, status] = await connector.wait_for(lambda: connector.cards(CHAT)[1:] and connector.cards(CHAT))
    for card_shown in (report, status):
        shown = "\n".join(text_blocks(card_shown))  # the correction form keeps the text as it is written
        assert "Read [the Q3 report](https://example.com/q3)" in shown and "<https://" not in shown, shown


async def test_a_scheduled_broadcast_says_when_it_goes(start_relay, connector: FakeConnector, x: FakeX) -> None:
    teams = await start(start_relay, connector)
    broadcast, card = await ask(teams, connector, CEO, "broadcast Tomorrow's news")
    soon = datetime.now(ZoneInfo("Europe/Paris")) + timedelta(days=2)
    activity = action(
        connector.service_url,
        CEO,
        "schedule",
        {"broadcast_id": broadcast, "send_date": soon.strftime("%Y-%m-%d"), "send_time": "09:00"},
        card,
    )
    activity["localTimezone"] = "Europe/Paris"
    await teams.send(activity)
    report = await connector.wait_for(
        lambda: [card_text(c) for c in connector.cards(CHAT) if "scheduled for" in card_text(c)]
    )
    expected = soon.replace(hour=9, minute=0, second=0).astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:00Z")
    assert f"{{{{DATE({expected}, SHORT)}}}}" in report[0], report[0]  # on each reader's own clock
    assert "in progress" not in report[0] and not x.calls
