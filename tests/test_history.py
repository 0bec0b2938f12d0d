"""`/broadcast status` and `history` (and the same words to the Teams bot): leaders and approvers only."""

from __future__ import annotations

import json

from tests.conftest import LEADER, STAFF_CHANNEL, STRANGER, TEAMS_ENV, preview_id, teams_config
from tests.fakes import FakeSlack
from tests.proof import tally
from tests.teams_activities import CEO, TeamsClient, installed_in_team, message, personal
from tests.teams_activities import STRANGER as TEAMS_STRANGER
from tests.test_teams_flow import card_text


async def test_status_shows_recent_broadcasts_destination_by_destination(start_relay, slack: FakeSlack) -> None:
    relay = await start_relay()
    sent = preview_id(await relay.command(LEADER, "First news"))
    await relay.click(LEADER, "approve", sent)
    await relay.final_report()
    draft = preview_id(await relay.command(LEADER, "Still a draft"))
    status = json.dumps(await relay.command(LEADER, "status"), ensure_ascii=False)
    assert f"{sent} ·" in status and "2 of 2 delivered." in status and f"archives/{STAFF_CHANNEL}" in status
    assert f"{draft} ·" in status and "draft" in status
    history = json.dumps(await relay.command(LEADER, "history"), ensure_ascii=False)
    assert f"{sent} ·" in history and "archives" not in history  # one line each


async def test_history_is_refused_to_others(start_relay) -> None:
    tally("security checks (forged, replayed, unauthorized)")
    relay = await start_relay()
    answer = await relay.command(STRANGER, "history")
    assert answer["text"] == "Only leaders and approvers can see the broadcast history."


async def test_the_same_words_work_in_teams(start_relay, connector) -> None:
    relay = await start_relay(teams_config(), **TEAMS_ENV)
    teams = TeamsClient(relay.url, relay.http)
    await teams.send(installed_in_team(connector.service_url))
    await teams.send(message(connector.service_url, CEO, "broadcast Teams history"))
    await connector.wait_for(lambda: connector.cards(personal(CEO)["id"]))
    await teams.send(message(connector.service_url, CEO, "history"))
    cards = await connector.wait_for(lambda: connector.cards(personal(CEO)["id"])[1:])
    assert "Teams history" in card_text(cards[-1])
    await teams.send(message(connector.service_url, TEAMS_STRANGER, "broadcast status"))
    [refusal] = await connector.wait_for(lambda: connector.posted(personal(TEAMS_STRANGER)["id"]))
    assert refusal["text"] == "Only leaders and approvers can see the broadcast history."
