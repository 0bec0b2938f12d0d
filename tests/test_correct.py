"""Correcting a sent broadcast: staff posts are edited in place; public ones can only be re-posted."""

from __future__ import annotations

import json
import re

from tests.conftest import APPROVER, LEADER, STAFF_CHANNEL, Relay, config_text, preview_id
from tests.fakes import FakeSlack, FakeX


async def sent(relay: Relay, text: str) -> str:
    broadcast = preview_id(await relay.command(LEADER, text))
    await relay.click(LEADER, "approve", broadcast)
    await relay.final_report()
    return broadcast


async def correct(relay: Relay, broadcast: str, text: str, by: str = LEADER) -> str:
    """Press 'Correct staff posts…' on the report and submit the new text; returns the answer's key."""
    key = await relay.click(by, "correct", broadcast, block_id=f"report:{broadcast}")
    opened = await relay.slack.wait_for(lambda: relay.slack.calls_to("views.open"))
    view = opened[-1].params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == "correct" and view["blocks"][0]["element"]["initial_value"]
    response = await relay.submit_view(by, "correct", json.loads(view["private_metadata"]), text, "everyone")
    assert response.status == 200
    return key


async def corrected_report(relay: Relay) -> str:
    def done() -> str | None:
        for message in reversed(relay.slack.messages(f"D{LEADER}")):
            if re.search(r"corrected: \d+ of \d+\.$", message.get("text", "")):
                return str(message.get("blocks"))
        return None

    return await relay.slack.wait_for(done, timeout=10)


async def test_staff_posts_are_corrected_in_place_and_public_ones_are_left(
    start_relay, slack: FakeSlack, x: FakeX
) -> None:
    relay = await start_relay()
    broadcast = await sent(relay, "Town hall on Tusday")
    key = await correct(relay, broadcast, "Town hall on Tuesday")
    report = await corrected_report(relay)
    assert "all-staff*: corrected in place" in report
    [post] = slack.messages(STAFF_CHANNEL)
    assert post["text"] == "Town hall on Tuesday" and post.get("edited")
    assert [t.text for t in x.tweets] == ["Town hall on Tusday"]
    told = await relay.answer(key)
    assert "Public networks cannot edit posts" in told["text"]


async def test_retract_and_post_again_gives_a_new_preview_of_the_corrected_text(
    start_relay, slack: FakeSlack, x: FakeX
) -> None:
    relay = await start_relay()
    broadcast = await sent(relay, "Prices go up 5%")
    await correct(relay, broadcast, "Prices go up 3%")
    await corrected_report(relay)
    key = await relay.click(LEADER, "repost", broadcast, block_id=f"report:{broadcast}")
    preview = json.dumps(await relay.answer(key))
    assert "Prices go up 3%" in preview and preview_id({"p": preview}) != broadcast
    await slack.wait_for(lambda: not x.tweets and not slack.messages(STAFF_CHANNEL), timeout=10)


async def test_with_approvers_a_correction_waits_for_another_person(start_relay, slack: FakeSlack) -> None:
    relay = await start_relay(config_text([f"slack:{APPROVER}", f"slack:{LEADER}"]))
    broadcast = preview_id(await relay.command(LEADER, "Helo all"))
    await relay.click(LEADER, "approve", broadcast)
    await relay.click(APPROVER, "approve", broadcast, block_id=f"approval:{broadcast}")
    await relay.final_report()
    await correct(relay, broadcast, "Hello all")
    await slack.wait_for(
        lambda: [m for m in slack.messages(f"D{APPROVER}") if "asks to *correct*" in str(m.get("blocks"))]
    )
    assert slack.messages(STAFF_CHANNEL)[0]["text"] == "Helo all", "nothing changes before an approver agrees"
    key = await relay.click(LEADER, "approve", broadcast, block_id=f"approval:{broadcast}")
    assert "cannot approve your own broadcast" in (await relay.answer(key))["text"]
    await relay.click(APPROVER, "approve", broadcast, block_id=f"approval:{broadcast}")
    await corrected_report(relay)
    assert slack.messages(STAFF_CHANNEL)[0]["text"] == "Hello all"
