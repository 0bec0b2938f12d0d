"""A newcomer's first minutes: the bot on a fresh clone, and the terminal entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.conftest import LEADER, preview_id
from tests.fakes import FakeSlack
from tests.test_restart import ROOT, BotProcess, free_port


def relay_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m relay …` with the repository importable, from a folder with no relay.toml."""
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        cwd=ROOT / "tests",
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def cli_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a bot the test started, for the terminal to read the same config and database."""
    env = {"RELAY_CONFIG": str(tmp_path / "relay.toml"), "RELAY_DB": str(tmp_path / "relay.db")}
    names = (
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "X_API_KEY",
        "X_API_SECRET",
        "X_ACCESS_TOKEN",
        "X_ACCESS_TOKEN_SECRET",
    )
    return env | {name: "set" for name in names}


async def test_a_fresh_clone_starts_dry_on_the_bundled_example_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    process = BotProcess({"PORT": str(port), "RELAY_DB": str(tmp_path / "relay.db")}, cwd=tmp_path)
    await process.start()
    try:
        async with aiohttp.ClientSession() as http:
            health = await http.get(f"http://127.0.0.1:{port}/healthz")
            assert await health.json() == {"status": "ok", "dry_run": True, "slack": False}
            slack = await http.post(f"http://127.0.0.1:{port}/slack/events", data="x")
            assert slack.status == 503
    finally:
        await process.stop()
    log = "".join(process.log)
    assert "DRY RUN: nothing will be posted. Using the bundled example config (relay.example.toml)" in log
    assert "remove `dry_run = true`" in log and "SLACK_BOT_TOKEN" in log


def test_preview_in_the_terminal_shows_each_destination() -> None:
    result = relay_cli("preview", "*Big news* <!channel>: we ship today.", "--audience", "everyone", env={})
    assert result.returncode == 0, result.stderr
    assert "== all-staff: Slack channel C0STAFF" in result.stdout
    assert "*Big news* @\u2060channel: we ship today." in result.stdout
    assert "== company-x" in result.stdout and "Big news: we ship today." in result.stdout
    assert "[dry run]" in result.stdout


def test_preview_of_an_unknown_audience_or_empty_text_says_why() -> None:
    unknown = relay_cli("preview", "Hello", "--audience", "investors", env={})
    assert unknown.returncode == 1 and "There is no audience called 'investors'" in unknown.stderr
    empty = relay_cli("preview", "   ", env={})
    assert empty.returncode == 1 and "The message is empty" in empty.stderr


async def test_list_shows_broadcasts_and_their_deliveries(start_relay, slack: FakeSlack, tmp_path: Path) -> None:
    relay = await start_relay()
    broadcast = preview_id(await relay.command(LEADER, "Listed in the terminal"))
    await relay.click(LEADER, "approve", broadcast)
    await relay.final_report()
    result = relay_cli("list", env=cli_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"{broadcast}" in result.stdout and "approved" in result.stdout
    assert "- all-staff        posted  https://test.slack.com/archives/C0STAFF/p" in result.stdout
    assert "- company-x        posted  https://x.com/i/web/status/" in result.stdout


async def test_check_names_teams_channels_the_bot_cannot_reach_yet(start_relay, connector, tmp_path: Path) -> None:
    from tests.conftest import TEAMS_ENV, teams_config
    from tests.teams_activities import ANNOUNCEMENTS, TeamsClient, installed_in_team

    relay = await start_relay(teams_config().replace(ANNOUNCEMENTS, "19:elsewhere@thread.tacv2"), **TEAMS_ENV)
    await TeamsClient(relay.url, relay.http).send(installed_in_team(connector.service_url))
    env = {"RELAY_CONFIG": str(tmp_path / "relay.toml"), "RELAY_DB": str(tmp_path / "relay.db"), **TEAMS_ENV}
    env |= {
        k: "set"
        for k in (
            "SLACK_BOT_TOKEN",
            "SLACK_SIGNING_SECRET",
            "X_API_KEY",
            "X_API_SECRET",
            "X_ACCESS_TOKEN",
            "X_ACCESS_TOKEN_SECRET",
        )
    }
    result = relay_cli("check", env=env)
    assert result.returncode == 1
    assert (
        "!! destination teams-announcements: The bot cannot post in Teams channel 19:elsewhere@thread.tacv2"
        in result.stdout
    )
    assert "It is in: Company." in result.stdout
