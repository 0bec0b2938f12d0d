"""Behind PgBouncer in transaction mode (`DATABASE_CONNECTION_POOL_URL`), as Heroku's connection pooling puts
it: a server connection is a client's for one transaction only, so nothing may rely on a session there.
Two instances send through it, and what needs a session (LISTEN, the instances' locks) goes direct."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conftest import LEADER, STAFF_CHANNEL, bot_env, config_text, preview_id
from tests.fakes import FakeSlack, FakeX
from tests.postgres.cluster import Bouncer, Cluster, fresh_database
from tests.test_instances import instances

pytestmark = pytest.mark.postgres_only


async def test_two_instances_behind_pgbouncer_in_transaction_mode_post_once(
    tmp_path: Path, slack: FakeSlack, x: FakeX
) -> None:
    cluster = Cluster()
    cluster.start()
    bouncer = Bouncer(cluster)
    try:
        bouncer.start()
        for url in fresh_database(cluster.url):
            pooled = url.replace(f":{cluster.port}/", f":{bouncer.port}/")
            env = {**bot_env(tmp_path, slack, x, config_text()), "DATABASE_URL": url}
            env["DATABASE_CONNECTION_POOL_URL"] = pooled
            async with instances(env, slack, 2) as [(_, first), (_, second)]:
                before = bouncer.transactions()
                broadcast = preview_id(await first.command(LEADER, "Pooled by PgBouncer."))
                await asyncio.gather(
                    first.click(LEADER, "approve", broadcast), second.click(LEADER, "approve", broadcast)
                )
                assert "2 of 2 delivered." in await second.final_report()
                assert len(slack.messages(STAFF_CHANNEL)) == 1 and len(x.tweets) == 1
                assert bouncer.transactions() > before, "the pooled work went through PgBouncer"
    finally:
        bouncer.stop()
        cluster.stop()
