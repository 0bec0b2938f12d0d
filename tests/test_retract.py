"""Retract: take a broadcast back from every destination, through the outbox, reported per destination."""

from __future__ import annotations

import re

from tests.conftest import APPROVER, LEADER, STAFF_CHANNEL, Relay, config_text, preview_id
from tests.fakes import FakeSlack, FakeX, Fault

THREAD = " ".join(f"Point {i}: we are investing in the people and tools that serve our customers." for i in range(9))


async def sent(relay: Relay, text: str) -> str:
    broadcast = preview_id(await relay.command(LEADER, text))
    await relay.click(LEADER, "approve", broadcast)
    assert "delivered." in await relay.final_report()
    return broadcast


async def retracted_report(relay: Relay) -> str:
    """Wait until the leader's report says every deletion is final."""

    def done() -> str | None:
        for message in reversed(relay.slack.messages(f"D{LEADER}")):
            if re.search(r"deleted\.$", message.get("text", "")):
                return str(message.get("blocks"))
        return None

    return await relay.slack.wait_for(done, timeout=10)


def live(x: FakeX) -> list[str]:
    """What is still on the account (the fake moves deleted tweets to `deleted`)."""
    return [t.id for t in x.tweets]


async def test_retract_deletes_everywhere_thread_parts_included(start_relay, slack: FakeSlack, x: FakeX) -> None:
    relay = await start_relay()
    broadcast = await sent(relay, THREAD)
    posted = live(x)
    assert len(posted) == 3 and len(slack.messages(STAFF_CHANNEL)) == 1
    await relay.click(LEADER, "retract", broadcast, block_id=f"report:{broadcast}")
    report = await retracted_report(relay)
    assert "retracted: 2 of 2 deleted." in report
    assert not slack.messages(STAFF_CHANNEL) and not live(x)
    assert [t.id for t in x.deleted] == posted[::-1], "replies first, then the root"


async def test_a_destination_that_fails_to_delete_says_so(start_relay, slack: FakeSlack, x: FakeX) -> None:
    x.faults.add(
        "DELETE /2/tweets/{id}",
        Fault.status(403, {"title": "Forbidden", "detail": "You are not allowed to delete this Tweet."}),
    )
    relay = await start_relay()
    broadcast = await sent(relay, "Short one")
    await relay.command(LEADER, f"retract {broadcast}")
    report = await retracted_report(relay)
    assert "retracted: 1 of 2 deleted." in report
    assert "company-x*: could not be deleted. X refused the post" in report
    assert not slack.messages(STAFF_CHANNEL) and live(x)


async def test_retract_racing_a_send_in_flight_leaves_nothing_posted(start_relay, slack: FakeSlack, x: FakeX) -> None:
    x.faults.add("POST /2/tweets", Fault.hang())
    relay = await start_relay()
    broadcast = preview_id(await relay.command(LEADER, THREAD))
    await relay.click(LEADER, "approve", broadcast)
    await x.wait_for(lambda: x.tweets)  # part 1 has landed; its answer is held
    await relay.command(LEADER, f"retract {broadcast}")
    x.release()
    report = await retracted_report(relay)
    assert "company-x*: retracted: deleted" in report
    assert len(x.deleted) == 1 and not live(x), "part 1 deleted, parts 2 and 3 never posted"
    assert not slack.messages(STAFF_CHANNEL)


async def test_with_approvers_another_person_must_agree_to_retract(start_relay, slack: FakeSlack, x: FakeX) -> None:
    relay = await start_relay(config_text([f"slack:{APPROVER}", f"slack:{LEADER}"]))
    broadcast = preview_id(await relay.command(LEADER, "Four eyes to take back"))
    await relay.click(LEADER, "approve", broadcast)
    await relay.click(APPROVER, "approve", broadcast, block_id=f"approval:{broadcast}")
    await relay.final_report()
    await relay.click(LEADER, "retract", broadcast, block_id=f"report:{broadcast}")
    requests = await slack.wait_for(
        lambda: [m for m in slack.messages(f"D{APPROVER}") if "asks to *retract*" in str(m.get("blocks"))]
    )
    assert requests and slack.messages(STAFF_CHANNEL), "nothing deleted before an approver agrees"
    key = await relay.click(LEADER, "approve", broadcast, block_id=f"approval:{broadcast}")
    assert "cannot approve your own request to retract" in (await relay.answer(key))["text"]
    await relay.click(APPROVER, "approve", broadcast, block_id=f"approval:{broadcast}")
    await retracted_report(relay)
    assert not slack.messages(STAFF_CHANNEL) and not live(x)


async def test_retracting_what_was_never_sent_or_does_not_exist_is_explained(start_relay) -> None:
    relay = await start_relay()
    draft = preview_id(await relay.command(LEADER, "Only a draft"))
    await relay.command(LEADER, f"retract {draft}")
    answer = await relay.slack.wait_for(
        lambda: [r for rs in relay.slack.responses.values() for r in rs if "never sent" in r.get("text", "")]
    )
    assert "there is nothing to retract" in answer[0]["text"]
    await relay.command(LEADER, "retract b00000000")
    missing = await relay.slack.wait_for(
        lambda: [r for rs in relay.slack.responses.values() for r in rs if "no broadcast" in r.get("text", "")]
    )
    assert missing[0]["text"] == "There is no broadcast b00000000."
