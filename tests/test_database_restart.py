"""PostgreSQL itself stopped in the middle of a fan-out, and started again: the bot says it is unhealthy
meanwhile, keeps what it was doing, and finishes with exactly one post per channel once the database is back."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import aiohttp
import pytest

from tests.bot_process import BotProcess, free_port
from tests.conftest import LEADER, Relay, bot_env, preview_id
from tests.fakes import FakeSlack, FakeX, Fault
from tests.fleet import final_report, fleet
from tests.postgres.cluster import Cluster, fresh_database

pytestmark = pytest.mark.postgres_only


async def _health(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(f"{url}/healthz") as response:
        return response.status


async def test_postgres_stopped_mid_fan_out_the_bot_waits_and_finishes_once_it_is_back(
    tmp_path: Path, slack: FakeSlack, x: FakeX
) -> None:
    cluster = Cluster()  # a server of its own, to stop and start without touching the suite's
    cluster.start()
    try:
        for url in fresh_database(cluster.url):
            latency = random.Random("restart")
            async with fleet(slack, slack_channels=40, teams_channels=0, x=0, mastodon=0, linkedin=0) as f:
                for endpoint in f.endpoints():
                    endpoint.fake.faults.storm(endpoint.name, [(Fault.delay(0.3), 1)], latency, when=endpoint.when)
                port = free_port()
                env = {**bot_env(tmp_path, slack, x, f.config()), **f.env(), "DATABASE_URL": url, "PORT": str(port)}
                process = BotProcess(env)
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                    relay = Relay(f"http://127.0.0.1:{port}", slack, http)
                    try:
                        await process.start()
                        text = "Said while the database went away and came back."
                        broadcast = preview_id(await relay.command(LEADER, text))
                        await relay.click(LEADER, "approve", broadcast)
                        await slack.wait_for(lambda: sum(bool(slack.messages(p.where)) for p in f.places) >= 5)
                        await asyncio.to_thread(cluster.halt)
                        posted = sum(bool(slack.messages(p.where)) for p in f.places)
                        assert posted < len(f.places), "the database went away in the middle of the fan-out"
                        assert await _health(http, relay.url) == 503, "a monitor sees the database gone"
                        await asyncio.to_thread(cluster.resume)
                        report = await final_report(slack, broadcast, timeout=60)
                        assert f"{len(f.places)} of {len(f.places)} delivered." in report.head
                        assert await _health(http, relay.url) == 200
                    finally:
                        await process.stop()
                        print("".join(process.log))  # shown by pytest when the test fails
                doubled = [p.name for p in f.places if len(slack.messages(p.where)) != 1]
                assert doubled == [], f"not exactly one post in {doubled}"
    finally:
        cluster.stop()
