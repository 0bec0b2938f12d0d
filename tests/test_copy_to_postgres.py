"""A team that outgrows one process moves its SQLite database into PostgreSQL: every broadcast, delivery and
line of the audit trail comes along, once, and the bot goes on from there."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import LEADER, STAFF_CHANNEL, preview_id
from tests.fakes import FakeSlack, FakeX
from tests.test_terminal import cli_env, relay_cli

pytestmark = pytest.mark.postgres_only


async def test_a_sqlite_database_moves_into_postgres_whole_and_once(
    start_relay, slack: FakeSlack, x: FakeX, tmp_path: Path
) -> None:
    on_sqlite = await start_relay(DATABASE_URL="")  # the bot as it ran before: SQLite at RELAY_DB
    first = preview_id(await on_sqlite.command(LEADER, "Said while on SQLite."))
    await on_sqlite.click(LEADER, "approve", first)
    assert "2 of 2 delivered." in await on_sqlite.final_report()
    env = cli_env(tmp_path)

    refused = relay_cli("copy-to-postgres", env=env)
    assert refused.returncode == 2 and "another bot is already running" in refused.stderr, "not under a live bot"
    assert on_sqlite.server is not None
    await on_sqlite.server.close()

    copied = relay_cli("copy-to-postgres", env=env)
    assert copied.returncode == 0, copied.stderr
    assert "1 broadcasts, 2 deliveries" in copied.stdout
    again = relay_cli("copy-to-postgres", env=env)
    assert again.returncode == 2 and "already holds broadcasts" in again.stderr, "a second copy doubles nothing"

    listed = relay_cli("list", env=env)
    assert first in listed.stdout and "Said while on SQLite." in listed.stdout
    trail = relay_cli("audit", "--format", "json", env=env).stdout
    assert '"approved"' in trail and '"copied-from-sqlite"' in trail

    on_postgres = await start_relay()
    second = preview_id(await on_postgres.command(LEADER, "Said on PostgreSQL."))
    await on_postgres.click(LEADER, "approve", second)
    await slack.wait_for(lambda: len(x.tweets) == 2)
    assert len(slack.messages(STAFF_CHANNEL)) == 2 and len(x.tweets) == 2
