"""Several bots on one PostgreSQL, as behind a load balancer: a person's clicks may reach any of them, and
one may die mid-fan-out. Every destination still ends with exactly one post."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.bot_process import BotProcess, free_port
from tests.conftest import (
    APPROVER,
    LEADER,
    SIGNING_SECRET,
    STAFF_CHANNEL,
    Relay,
    bot_env,
    config_text,
    preview_id,
    report_text,
)
from tests.fakes import FakeSlack, FakeX, Fault
from tests.fleet import final_report, fleet
from tests.slack_requests import command_body, signed_headers

pytestmark = pytest.mark.postgres_only


@asynccontextmanager
async def instances(env: dict[str, str], slack: FakeSlack, count: int) -> AsyncIterator[list[tuple[BotProcess, Relay]]]:
    """`count` bots sharing `env`'s database, each on its own port, started together."""
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)))
        bots = []
        for _ in range(count):
            port = free_port()
            process = BotProcess({**env, "PORT": str(port)})
            stack.push_async_callback(process.stop)
            bots.append((process, Relay(f"http://127.0.0.1:{port}", slack, http)))
        await asyncio.gather(*(process.start() for process, _ in bots))
        yield bots


async def test_a_double_click_that_lands_on_two_instances_posts_once(
    tmp_path: Path, slack: FakeSlack, x: FakeX
) -> None:
    async with instances(bot_env(tmp_path, slack, x, config_text()), slack, 2) as [(_, first), (_, second)]:
        broadcast = preview_id(await first.command(LEADER, "Clicked twice, on two machines."))
        await asyncio.gather(first.click(LEADER, "approve", broadcast), second.click(LEADER, "approve", broadcast))
        assert "2 of 2 delivered." in await first.final_report()
        assert len(slack.messages(STAFF_CHANNEL)) == 1
        assert len(x.tweets) == 1


async def test_a_command_and_its_copy_arriving_at_two_instances_at_once_make_one_draft(
    tmp_path: Path, slack: FakeSlack, x: FakeX
) -> None:
    """Each instance notes the signature in the transaction of the draft it makes: the second waits for the
    first's key, then undoes its draft and refuses the copy."""
    async with instances(bot_env(tmp_path, slack, x, config_text()), slack, 2) as [(_, first), (_, second)]:
        for n in range(5):
            body = command_body(LEADER, f"Captured and sent twice, {n}.", slack.response_url(f"copy{n}"))
            headers = signed_headers(SIGNING_SECRET, body)
            answers = await asyncio.gather(first.post_signed(body, headers), second.post_signed(body, headers))
            assert sorted(answer.status for answer in answers) == [200, 401]
        history = report_text(await first.command(LEADER, "history"))
        assert all(history.count(f"Captured and sent twice, {n}.") == 1 for n in range(5)), history


async def test_four_eyes_across_instances_the_approval_on_another_instance_sends_once(
    tmp_path: Path, slack: FakeSlack, x: FakeX
) -> None:
    env = bot_env(tmp_path, slack, x, config_text([f"slack:{APPROVER}"]))
    async with instances(env, slack, 3) as [(_, first), (_, second), (_, third)]:
        broadcast = preview_id(await first.command(LEADER, "Two people, three machines."))
        await first.click(LEADER, "approve", broadcast)
        await slack.wait_for(lambda: slack.messages(f"D{APPROVER}"))
        block = f"approval:{broadcast}"
        await asyncio.gather(
            second.click(APPROVER, "approve", broadcast, block_id=block),
            third.click(APPROVER, "approve", broadcast, block_id=block),
        )
        assert "2 of 2 delivered." in await first.final_report()
        assert len(slack.messages(STAFF_CHANNEL)) == 1 and len(x.tweets) == 1


async def test_an_instance_killed_mid_fan_out_the_other_finishes_and_nothing_is_doubled(
    tmp_path: Path, slack: FakeSlack, x: FakeX
) -> None:
    latency = random.Random("instances")
    async with fleet(slack, slack_channels=60, teams_channels=0, x=0, mastodon=0, linkedin=0) as f:
        for endpoint in f.endpoints():
            # A few answers come seconds late: whenever the kill lands, the dead instance held posts in flight.
            mix = [(None, 2), (Fault.delay(0.05), 2), (Fault.delay(0.2), 1), (Fault.delay(3.0), 1)]
            endpoint.fake.faults.storm(endpoint.name, mix, latency, when=endpoint.when)
        env = {**bot_env(tmp_path, slack, x, f.config()), **f.env(), "RELAY_HTTP_TIMEOUT": "5"}
        async with instances(env, slack, 2) as [(doomed, first), (survivor, _)]:
            os.kill(survivor.pid, signal.SIGSTOP)  # frozen (a long pause): the doomed one takes all the work
            text = "Killed half-way: the other instance finishes."
            broadcast = preview_id(await first.command(LEADER, text))
            await first.click(LEADER, "approve", broadcast)
            await slack.wait_for(lambda: sum(bool(slack.messages(p.where)) for p in f.places) >= 10)
            await doomed.kill()
            os.kill(survivor.pid, signal.SIGCONT)
            report = await final_report(slack, broadcast, timeout=60)
            assert f"{len(f.places)} of {len(f.places)} delivered." in report.head
            doubled = [p.name for p in f.places if len(slack.messages(p.where)) != 1]
            assert doubled == [], f"not exactly one post in {doubled}"
            # Taken back by its lease look, or by its start-up look when the freeze came before that had run.
            taken_back = ("took back deliveries", "resuming")
            assert any(words in line for line in survivor.log for words in taken_back), "what the dead one held"


async def test_a_pause_x_asks_of_one_instance_holds_the_other(tmp_path: Path, slack: FakeSlack, x: FakeX) -> None:
    x.faults.add("POST /2/tweets", x.rate_limited(reset_in=3))
    async with instances(bot_env(tmp_path, slack, x, config_text()), slack, 2) as [(_, first), (_, second)]:
        broadcast = preview_id(await first.command(LEADER, "Rate limited here."))
        await first.click(LEADER, "choose_audience", broadcast, selected="public")
        await first.click(LEADER, "approve", broadcast)
        [refused] = await x.wait_for(lambda: x.calls_to("POST /2/tweets"))
        assert refused.fault is not None
        reset = int(dict(refused.fault.headers)["x-rate-limit-reset"])

        later = preview_id(await second.command(LEADER, "Sent from the other instance."))
        await second.click(LEADER, "choose_audience", later, selected="public")
        await second.click(LEADER, "approve", later)
        await x.wait_for(lambda: len(x.tweets) == 2, timeout=20)
        calls = x.calls_to("POST /2/tweets")
        assert len(calls) == 3, "one refusal, then each broadcast once"
        assert all(call.wall >= reset for call in calls[1:]), "no instance called X before the pause ended"


async def test_a_rolling_deploy_under_load_loses_and_doubles_nothing(
    tmp_path: Path, slack: FakeSlack, x: FakeX
) -> None:
    """Two old instances replaced one by one by two new ones (each new one started before an old one is told
    to stop, as a PaaS does), while one broadcast fans out and a second is sent through a new instance."""
    latency = random.Random("rolling")
    async with fleet(slack, slack_channels=50, teams_channels=0, x=0, mastodon=0, linkedin=0) as f:
        for endpoint in f.endpoints():
            mix = [(Fault.delay(0.1), 2), (Fault.delay(0.5), 1)]
            endpoint.fake.faults.storm(endpoint.name, mix, latency, when=endpoint.when)
        env = {**bot_env(tmp_path, slack, x, f.config()), **f.env()}
        async with instances(env, slack, 4) as bots:
            (old, first), (older, _), (new, renewed), (newer, _) = bots
            await asyncio.gather(new.stop(), newer.stop())  # the new release is not out yet
            first_text, second_text = "Sent before the deploy.", "Sent during the deploy."
            broadcast = preview_id(await first.command(LEADER, first_text))
            await new.start()
            await first.click(LEADER, "approve", broadcast)
            await slack.wait_for(lambda: sum(bool(slack.messages(p.where)) for p in f.places) >= 5)
            await old.stop()  # SIGTERM while its deliveries are under way
            during = preview_id(await renewed.command(LEADER, second_text))
            await renewed.click(LEADER, "approve", during)
            await newer.start()
            await older.stop()
            for each in (broadcast, during):
                report = await final_report(slack, each, timeout=60)
                assert f"{len(f.places)} of {len(f.places)} delivered." in report.head
            for text in (first_text, second_text):
                wrong = {p.name: n for p in f.places if (n := len(f.requests(p, text))) != 1}
                assert wrong == {}, f"{text!r} not posted exactly once in {wrong}"
