"""The bot killed mid-broadcast and started again: every destination ends posted exactly once."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.bot_process import ROOT, BotProcess, free_port
from tests.conftest import BOT_TOKEN, LEADER, SIGNING_SECRET, STAFF_CHANNEL, Relay, bot_env, config_text, preview_id
from tests.fakes import FakeSlack, FakeX, Fault


@pytest.fixture
async def bot(tmp_path: Path, slack: FakeSlack, x: FakeX) -> AsyncIterator[tuple[BotProcess, Relay]]:
    port = free_port()
    process = BotProcess({**bot_env(tmp_path, slack, x, config_text()), "PORT": str(port)})
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        yield process, Relay(f"http://127.0.0.1:{port}", slack, http)
    await process.stop()


async def test_killed_with_deliveries_in_flight_and_pending_each_destination_gets_exactly_one_post(
    bot: tuple[BotProcess, Relay], slack: FakeSlack, x: FakeX, tmp_path: Path, backend: str
) -> None:
    process, relay = bot
    # Slack takes the post and never answers (in flight when killed); X says "rate limited" (pending).
    slack.faults.add("chat.postMessage", Fault.hang(), when=lambda p: p.get("channel") == STAFF_CHANNEL)
    # X's reset is far enough off that a loaded machine still shows "retrying" before it passes.
    x.faults.add("POST /2/tweets", x.rate_limited(reset_in=10))
    await process.start()
    broadcast = preview_id(await relay.command(LEADER, "Survives a crash."))
    await relay.click(LEADER, "approve", broadcast)
    await slack.wait_for(lambda: slack.messages(STAFF_CHANNEL))
    await slack.wait_for(
        lambda: any("retrying" in str(c.params.get("blocks")) for c in slack.calls_to("chat.update")), timeout=10
    )
    await process.kill()

    await process.start()
    report = await relay.final_report(timeout=30)
    assert "2 of 2 delivered." in report
    assert len(slack.messages(STAFF_CHANNEL)) == 1, "the in-flight Slack post was found, not repeated"
    assert len(x.tweets) == 1
    assert any("resuming 1 deliveries" in line for line in process.log), "only Slack's was in flight"
    everything = "".join(process.log)
    for secret in (SIGNING_SECRET, BOT_TOKEN, x.credentials.consumer_secret, x.credentials.access_token_secret):
        assert secret not in everything
    if backend == "sqlite":
        assert oct(os.stat(tmp_path / "relay.db").st_mode & 0o777) == "0o600"


async def test_stopped_with_a_post_under_way_the_bot_waits_for_its_answer_and_leaves_nothing_in_flight(
    bot: tuple[BotProcess, Relay], slack: FakeSlack, x: FakeX
) -> None:
    """A deploy or a restart sends SIGTERM: the post already on its way gets its answer recorded before the
    process ends, so the next start has nothing to look for, and posts nothing again."""
    process, relay = bot
    slack.faults.add("chat.postMessage", Fault.hang(), when=lambda p: p.get("channel") == STAFF_CHANNEL)
    await process.start()
    broadcast = preview_id(await relay.command(LEADER, "Said as the deploy began."))
    await relay.click(LEADER, "approve", broadcast)
    await slack.wait_for(lambda: slack.messages(STAFF_CHANNEL))
    assert process.process is not None
    process.process.terminate()
    await process.wait_for_log("deliveries under way get up to")
    slack.release()
    assert await process.process.wait() == 0

    await process.start()
    assert "2 of 2 delivered." in await relay.final_report(timeout=20)
    assert not any("resuming" in line for line in process.log), "nothing was left in flight"
    assert len(slack.messages(STAFF_CHANNEL)) == 1 and len(x.tweets) == 1


async def test_stopped_the_moment_it_has_started_the_bot_exits_every_time(
    bot: tuple[BotProcess, Relay],
) -> None:
    """SIGTERM while the bot's first reads are under way. On PostgreSQL a read waiting for the pool's next
    connection could lose the cancellation (Python 3.11's `asyncio.wait_for`, inside psycopg_pool): the
    task went on as if never cancelled, and the bot never exited, about one start in five."""
    process, _ = bot
    for _ in range(10):
        await process.start()
        assert process.process is not None
        process.process.terminate()
        async with asyncio.timeout(20):
            assert await process.process.wait() == 0


@pytest.mark.sqlite_only
async def test_a_second_bot_on_the_same_sqlite_database_refuses_to_start(bot: tuple[BotProcess, Relay]) -> None:
    process, _ = bot
    await process.start()
    second = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **process.env, "PORT": str(free_port())},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(second.communicate(), 30)
    assert second.returncode == 2
    assert "another bot is already running on" in err.decode()
    assert "DATABASE_URL" in err.decode(), "it says how to run several"


async def test_a_report_left_stale_by_a_crash_is_brought_up_to_date_at_start(
    bot: tuple[BotProcess, Relay], slack: FakeSlack, x: FakeX
) -> None:
    process, relay = bot
    slack.faults.add("chat.update", Fault.drop_before(), times=None)  # every report edit is lost
    x.faults.add("POST /2/tweets", Fault.hang())  # X answers only once the report shows "in progress"
    await process.start()
    broadcast = preview_id(await relay.command(LEADER, "Report me."))
    await relay.click(LEADER, "approve", broadcast)
    await slack.wait_for(lambda: slack.messages(f"D{LEADER}"))
    await x.wait_for(lambda: x.tweets)  # release() frees only a request already held
    x.release()
    # The bot tried to show the final state (so it had recorded it), and Slack never got it.
    await slack.wait_for(lambda: any("delivered." in c.params.get("text", "") for c in slack.calls_to("chat.update")))
    await process.kill()
    assert "delivered." not in relay.slack.messages(f"D{LEADER}")[-1]["text"]

    slack.faults.clear()
    await process.start()
    assert "2 of 2 delivered." in await relay.final_report()
    assert len(slack.messages(STAFF_CHANNEL)) == 1 and len(x.tweets) == 1


async def test_a_report_posted_just_before_a_crash_is_found_again_not_doubled(
    bot: tuple[BotProcess, Relay], slack: FakeSlack
) -> None:
    process, relay = bot
    # The report lands in the DM, but the bot dies before hearing where.
    slack.faults.add("chat.postMessage", Fault.hang(), when=lambda p: p.get("channel") == LEADER)
    await process.start()
    broadcast = preview_id(await relay.command(LEADER, "One report only."))
    await relay.click(LEADER, "approve", broadcast)
    await slack.wait_for(lambda: slack.messages(f"D{LEADER}"))
    await process.kill()

    slack.faults.clear()
    await process.start()
    assert "2 of 2 delivered." in await relay.final_report()
    assert len(slack.messages(f"D{LEADER}")) == 1
