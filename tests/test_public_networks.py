"""Public networks: each gets its own rendering, its reply policy, and clear failures."""

from __future__ import annotations

import json

from tests.conftest import LEADER, config_text, preview_id
from tests.fakes import FakeX


async def test_x_reply_policy_is_shown_in_the_preview_and_sent(start_relay, x: FakeX) -> None:
    relay = await start_relay(config_text().replace("[policy]", '[policy]\nreplies = "none"'))
    ack = await relay.command(LEADER, "One way only")
    assert "Replies: nobody can reply" in json.dumps(ack)
    await relay.click(LEADER, "approve", preview_id(ack))
    await relay.final_report()
    [post] = x.calls_to("POST /2/tweets")
    assert post.json["reply_settings"] == "mentionedUsers"


async def test_x_open_replies_send_no_reply_settings(start_relay, x: FakeX) -> None:
    relay = await start_relay()
    await relay.click(LEADER, "approve", preview_id(await relay.command(LEADER, "Talk to us")))
    await relay.final_report()
    [post] = x.calls_to("POST /2/tweets")
    assert "reply_settings" not in post.json
