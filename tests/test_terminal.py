"""A newcomer's first minutes: the bot on a fresh clone, and the terminal entry point."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import DATABASE, LEADER, config_text, preview_id
from tests.fakes import FakeSlack, FakeX, Fault
from tests.proof import tally
from tests.test_abuse import INPUTS
from tests.test_database_faults import namespaces as namespaces  # the fixture: skips where mounts are refused
from tests.test_database_faults import read_only_mount
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
    env = {"RELAY_CONFIG": str(tmp_path / "relay.toml"), "RELAY_DB": str(tmp_path / "relay.db"), **DATABASE}
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


def test_preview_in_the_terminal_says_where_bluesky_s_linked_words_lead(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(
        'dry_run = true\n[policy]\nleaders = ["slack:U0123ABC"]\ndefault_audience = "public"\n'
        '[destinations.company-bluesky]\nkind = "bluesky"\nhandle = "company.bsky.social"\n'
        '[audiences]\npublic = ["company-bluesky"]\n'
    )
    result = relay_cli("preview", "<https://example.com/q3|the Q3 report>'s summary", env={"RELAY_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert "the Q3 report's summary\n-- “the Q3 report” links to https://example.com/q3" in result.stdout


def test_preview_in_the_terminal_shows_a_teams_channel(tmp_path: Path) -> None:
    """`relay preview` builds the destinations without an event loop: a Teams channel must not need one."""
    config = tmp_path / "relay.toml"
    config.write_text(
        'dry_run = true\n[policy]\nleaders = ["slack:U0123ABC"]\ndefault_audience = "staff"\n'
        '[destinations.team]\nkind = "teams"\nchannel = "19:abc@thread.tacv2"\n[audiences]\nstaff = ["team"]\n'
    )
    result = relay_cli("preview", "Hello, team.", env={"RELAY_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert "== team: Teams channel 19:abc@thread.tacv2" in result.stdout and "Hello, team." in result.stdout


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
    env = {**cli_env(tmp_path), **TEAMS_ENV}
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


ESCAPES = "\x1b[2J\x1b[1;1H\x1b]0;owned\x07Everything is fine\u202e"


async def test_list_shows_what_a_network_wrote_without_running_its_escape_sequences(
    start_relay, slack: FakeSlack, x: FakeX, tmp_path: Path
) -> None:
    x.faults.add("POST /2/tweets", Fault.status(403, {"title": "Forbidden", "status": 403, "detail": ESCAPES}))
    relay = await start_relay()
    broadcast = preview_id(await relay.command(LEADER, "Text with a bell\x07 and an escape\x1b[31m"))
    await relay.click(LEADER, "approve", broadcast)
    await relay.final_report()
    result = relay_cli("list", env=cli_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "- company-x        failed. X refused the post:" in result.stdout
    assert not [c for c in result.stdout if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) < 0xA0 or c == "\u202e"]
    assert "\\x1b[2J\\x1b[1;1H\\x1b]0;owned\\x07Everything is fine\\u202e" in result.stdout, "shown, not run"
    tally(INPUTS)


def bot_and_check(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], ...]:
    """The bot started, and `relay check` run, on the same environment: they must agree."""
    bot = subprocess.run(
        [sys.executable, str(ROOT / "bot.py")],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PORT": str(free_port()), **env},
        capture_output=True,
        text=True,
        timeout=20,
    )
    return bot, relay_cli("check", env=env)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"SLACK_SIGNING_SECRET": ""}, "SLACK_SIGNING_SECRET must be set to receive /broadcast"),
        ({"RELAY_STATUS_SECRET": "hunter2"}, "RELAY_STATUS_SECRET is shorter than 16 characters"),
        (
            {"RELAY_DB": "/proc/no-such-folder/relay.db", "DATABASE_URL": ""},
            "cannot use the database /proc/no-such-folder/relay.db",
        ),
        (
            {"DATABASE_URL": "postgresql://relay:pg-secret-word@127.0.0.1:9/relay"},
            "cannot use the database postgresql://127.0.0.1:9/relay",
        ),
        ({"X_API_URL": "not-a-url"}, "X_API_URL is not a web address: its scheme is missing"),
        ({"SLACK_API_URL": "htp:/slack"}, "SLACK_API_URL is not a web address: its scheme is 'htp:'"),
    ],
    ids=["no-signing-secret", "short-status-secret", "unusable-database", "unreachable-postgres", "x-url", "slack-url"],
)
def test_check_refuses_exactly_where_the_bot_refuses_to_start(
    tmp_path: Path, change: dict[str, str], said: str
) -> None:
    (tmp_path / "relay.toml").write_text(config_text())
    env = {k: v for k, v in {**cli_env(tmp_path), **change}.items() if v}
    bot, check = bot_and_check(tmp_path, env)
    assert bot.returncode == 2 and said in bot.stderr, bot.stderr
    assert check.returncode == 2 and said in check.stderr, (check.stdout, check.stderr)
    assert "Traceback" not in bot.stderr + check.stderr
    assert "relay ready" not in bot.stderr
    assert "pg-secret-word" not in bot.stderr + check.stdout + check.stderr, "a database password is never shown"


def test_check_passes_where_the_bot_starts(tmp_path: Path) -> None:
    (tmp_path / "relay.toml").write_text(config_text())
    check = relay_cli("check", env=cli_env(tmp_path))
    assert check.returncode == 0 and "OK, 2 destinations" in check.stdout, check.stderr


@pytest.mark.sqlite_only
async def test_list_and_audit_read_a_read_only_copy_without_any_secret(
    namespaces: None, start_relay, tmp_path: Path
) -> None:
    relay = await start_relay()
    broadcast = preview_id(await relay.command(LEADER, "Read by an auditor"))
    await relay.click(LEADER, "approve", broadcast)
    await relay.final_report()
    assert relay.server is not None
    await relay.server.close()
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(tmp_path / "relay.db", copy / "relay.db")
    env = {"RELAY_DB": str(copy / "relay.db"), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)}
    for command in ("list", "audit"):
        result = subprocess.run(
            [*read_only_mount(copy), sys.executable, "-m", "relay", command],
            cwd=ROOT / "tests",
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert broadcast in result.stdout, result.stdout
    assert sorted(p.name for p in copy.iterdir()) == ["relay.db"], "nothing written beside the copy"
    tally(INPUTS)
