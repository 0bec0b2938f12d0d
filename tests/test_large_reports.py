"""A live report of many destinations: those that need a look by name, the rest counted per network."""

from __future__ import annotations

from tests.conftest import LEADER, report_text
from tests.fakes import FakeSlack, Fault
from tests.test_pacing import broadcast, channels, config


async def test_a_report_of_many_names_the_failed_and_the_retrying_and_counts_the_rest(
    start_relay, slack: FakeSlack
) -> None:
    places = channels(40)
    slack.channel_errors[places[3]] = "not_in_channel"
    slack.channel_errors[places[17]] = "is_archived"
    # Slack is down for one channel only: it is retried, and the rest need not wait for it.
    slack.faults.add(
        "chat.postMessage", Fault.status(503, "unavailable"), times=None, when=lambda p: p.get("channel") == places[29]
    )
    relay = await start_relay(config(places))
    await broadcast(relay, "Many places.")

    def settled() -> str | None:
        """The live report once everything but the rate-limited channel is final."""
        for message in reversed(slack.messages(f"D{LEADER}")):
            if "37 of 40 delivered" in message.get("text", "") and "retrying" in (text := report_text(message)):
                return text
        return None

    report = await slack.wait_for(settled, timeout=15)
    lines = report.split("\n")
    assert any(line.startswith(":x: *slack-3*: failed.") for line in lines), report
    assert any(line.startswith(":x: *slack-17*: failed.") for line in lines), report
    assert any(line.startswith(":arrows_counterclockwise: *slack-29*: retrying") for line in lines), report
    assert ":white_check_mark: 37 slack destinations: posted" in lines, report
    named = [line for line in lines if line.startswith((":x:", ":arrows_counterclockwise:", ":white_check_mark: *"))]
    assert len(named) == 3, "only those that need a look are named"
