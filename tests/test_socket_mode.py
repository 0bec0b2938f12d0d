"""Socket Mode (SLACK_APP_TOKEN): the same broadcast flow with no public URL, over Slack's websocket."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from tests.conftest import LEADER, STAFF_CHANNEL, preview_id
from tests.fakes import FakeSlack, FakeX
from tests.slack_requests import action_body, command_body


async def test_a_broadcast_through_socket_mode(start_relay, slack: FakeSlack, x: FakeX) -> None:
    relay = await start_relay(SLACK_APP_TOKEN=slack.app_token)
    command = dict(parse_qsl(command_body(LEADER, "Over the socket", slack.response_url("s1"))))
    ack = await slack.socket_request("slash_commands", command)
    assert "Over the socket" in json.dumps(ack["payload"]) and ack["payload"]["response_type"] == "ephemeral"

    click = json.loads(
        dict(parse_qsl(action_body(LEADER, "approve", preview_id(ack), slack.response_url("s2"))))["payload"]
    )
    await slack.socket_request("interactive", click)
    assert "2 of 2 delivered." in await relay.final_report()
    assert len(slack.messages(STAFF_CHANNEL)) == 1 and len(x.tweets) == 1
