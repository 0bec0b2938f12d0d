"""Scheduled broadcasts: picked on the leader's clock, kept in the outbox, sent on time, restart-proof."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot import DISPATCHER
from tests.conftest import LEADER, STAFF_CHANNEL, Relay, preview_id
from tests.fakes import FakeSlack, FakeX


class Clock:
    """The relay's time, moved by the test."""

    def __init__(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment.timestamp()


BEFORE_DST = datetime(2027, 3, 26, 12, 0, tzinfo=UTC)  # Friday; Europe's clocks go forward on Sunday
MONDAY_NINE_PARIS = datetime(2027, 3, 29, 7, 0, tzinfo=UTC)  # 09:00 CEST


def picked(broadcast: str, day: str, time: str) -> dict[str, dict[str, dict[str, str]]]:
    return {
        f"schedule:{broadcast}": {
            "send_date": {"type": "datepicker", "selected_date": day},
            "send_time": {"type": "timepicker", "selected_time": time},
        }
    }


async def schedule(relay: Relay, text: str, day: str = "2027-03-29", time: str = "09:00") -> tuple[str, str]:
    broadcast = preview_id(await relay.command(LEADER, text))
    key = await relay.click(
        LEADER, "schedule", broadcast, block_id=f"schedule:{broadcast}", state=picked(broadcast, day, time)
    )
    return broadcast, (await relay.answer(key))["text"]


def wake(relay: Relay) -> None:
    assert relay.server is not None
    relay.server.app[DISPATCHER].poke()


async def test_monday_nine_on_the_leaders_clock_goes_out_then_across_a_dst_change(
    start_relay, slack: FakeSlack, x: FakeX
) -> None:
    clock = Clock(BEFORE_DST)
    relay = await start_relay(clock=clock)
    _, answer = await schedule(relay, "Monday news")
    assert "Scheduled for Mon 29 Mar 2027 09:00 CEST." in answer  # the fake Slack user is in Europe/Paris
    status = json.dumps(await relay.command(LEADER, "status"), ensure_ascii=False)
    assert f"scheduled for <!date^{int(MONDAY_NINE_PARIS.timestamp())}^" in status  # shown on each reader's clock

    clock.set(datetime(2027, 3, 29, 6, 59, 50, tzinfo=UTC))
    wake(relay)
    await relay.command(LEADER, "status")  # a round trip through the bot and its database
    assert not slack.messages(STAFF_CHANNEL) and not x.calls

    clock.set(datetime(2027, 3, 29, 7, 0, 1, tzinfo=UTC))
    wake(relay)
    assert "2 of 2 delivered." in await relay.final_report()
    assert len(slack.messages(STAFF_CHANNEL)) == 1 and len(x.tweets) == 1


async def test_a_scheduled_broadcast_survives_a_restart(start_relay, slack: FakeSlack, x: FakeX) -> None:
    clock = Clock(BEFORE_DST)
    first = await start_relay(clock=clock)
    await schedule(first, "Kept across a restart")
    assert first.server is not None
    await first.server.close()

    clock.set(MONDAY_NINE_PARIS.replace(second=5))
    second = await start_relay(clock=clock)
    assert "2 of 2 delivered." in await second.final_report()
    assert len(slack.messages(STAFF_CHANNEL)) == 1 and len(x.tweets) == 1


async def test_a_scheduled_broadcast_can_be_moved_and_cancelled(start_relay, slack: FakeSlack, x: FakeX) -> None:
    clock = Clock(BEFORE_DST)
    relay = await start_relay(clock=clock)
    moved, _ = await schedule(relay, "Moved to Tuesday")
    await relay.command(LEADER, f"move {moved} 2027-03-30 10:00")
    told = await slack.wait_for(
        lambda: [r for rs in slack.responses.values() for r in rs if "Moved" in r.get("text", "")]
    )
    assert "Tue 30 Mar 2027 10:00 CEST" in told[0]["text"]
    cancelled, _ = await schedule(relay, "Never mind")
    await relay.command(LEADER, f"cancel {cancelled}")
    await slack.wait_for(lambda: [r for rs in slack.responses.values() for r in rs if "cancelled" in r.get("text", "")])

    clock.set(datetime(2027, 3, 29, 7, 0, 1, tzinfo=UTC))  # Monday 9:00: neither goes out
    wake(relay)
    await relay.command(LEADER, "status")
    assert not slack.messages(STAFF_CHANNEL)
    clock.set(datetime(2027, 3, 30, 8, 0, 1, tzinfo=UTC))  # Tuesday 10:00 CEST: the moved one does
    wake(relay)
    await relay.final_report()
    await slack.wait_for(lambda: slack.messages(STAFF_CHANNEL))  # the report may be drawn before the post lands
    assert [m["text"] for m in slack.messages(STAFF_CHANNEL)] == ["Moved to Tuesday"]


async def test_an_impossible_time_is_refused_and_nothing_is_scheduled(start_relay, slack: FakeSlack) -> None:
    relay = await start_relay(clock=Clock(BEFORE_DST))
    _, answer = await schedule(relay, "In the gap", day="2027-03-28", time="02:30")
    assert "does not exist in Europe/Paris: the clocks skip it" in answer
    _, past = await schedule(relay, "Too late", day="2027-03-25", time="09:00")
    assert "is in the past" in past


async def test_a_message_that_starts_with_a_command_word_is_still_a_message(start_relay) -> None:
    relay = await start_relay()
    for text in ("cancel the 3pm meeting, we meet tomorrow", "retract nothing: we stand by it", "move fast"):
        ack = await relay.command(LEADER, text)
        assert text in json.dumps(ack), "previewed as a broadcast"
