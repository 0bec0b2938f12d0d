"""The whole bot on loopback: its own aiohttp server, fed signed Slack requests, posting to fake Slack and X."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, async_playwright

from adapters import SPECS
from bot import STORE, SURFACE, build_app
from relay.addresses import Address, Reach
from relay.config import load_config, settings_from_env
from relay.store import Store
from tests.bot_process import free_port
from tests.fakes import FakeLinkedIn, FakeMastodon, FakeSlack, FakeX
from tests.fakes.teams import FakeConnector
from tests.postgres.cluster import Cluster, fresh_database
from tests.proof import COUNTS
from tests.slack_requests import action_body, command_body, signed_headers, view_submission_body
from tests.teams_activities import ANNOUNCEMENTS, APPROVALS, CEO, TEAM, TENANT


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--proof-scale",
        choices=("small", "large"),
        default="small",
        help="size of the crash and fault rounds: small in CI, large for the published figures",
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print what the proof suites counted, the table `docs/RELIABILITY.md` quotes."""
    if COUNTS:
        terminalreporter.section("proof: what was tried, all with nothing lost")
        for what, count in sorted(COUNTS.items()):
            terminalreporter.write_line(f"{count:>8,}  {what}")


# Modules whose tests touch no database, whose database work is only what every other module does too (a
# surface's rendering, a network's rules), or SQLite's own file (its disk, its lock): run once, on SQLite.
# Every other test runs on both backends.
ONE_BACKEND = {
    "test_render",
    "test_report_refresher",
    "test_reference_counts",
    "test_policy",
    "test_schedule_times",
    "test_slack_blocks_fit",
    "test_teams_cards",
    "test_teams_package",
    "test_config",
    "test_deploy_files",
    # What surfaces show and what networks accept: the rendering and the fakes' rules, whatever the database.
    "test_slack_limits",
    "test_teams_fidelity",
    "test_issue_examples",
    "test_bluesky_examples",
    "test_bluesky",
    "test_link_cards",
    "test_public_networks",
    "test_playground",
    "test_socket_mode",
    "test_teams_auth",
    "test_database_faults",
    "test_slow_clients",
    "test_fakes_selftest",
    "test_slack_strict_selftest",
    "test_mastodon_linkedin_selftest",
    "test_threads_selftest",
    "test_threads",
    "test_pds_selftest",
}
BACKENDS = ("sqlite", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        module = metafunc.module.__name__.rpartition(".")[2]
        kinds = BACKENDS
        if module in ONE_BACKEND or metafunc.definition.get_closest_marker("sqlite_only"):
            kinds = ("sqlite",)
        elif metafunc.definition.get_closest_marker("postgres_only"):
            kinds = ("postgres",)
        metafunc.parametrize("backend", kinds, indirect=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The PostgreSQL server the suite uses: RELAY_TEST_DATABASE_URL's, or a throwaway cluster."""
    given = os.environ.get("RELAY_TEST_DATABASE_URL")
    if given:
        yield given
        return
    cluster = Cluster()
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


# The database the bots of the running test use: None for SQLite (`RELAY_DB` in the test's folder), or the
# URL of a PostgreSQL database of its own. Set by the `backend` fixture, read by `bot_env`.
DATABASE: dict[str, str] = {}


@pytest.fixture(autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Which database this test's bots use (see `pytest_generate_tests`)."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        yield kind
        return
    for url in fresh_database(request.getfixturevalue("postgres_server")):
        DATABASE["DATABASE_URL"] = url
        try:
            yield kind
        finally:
            DATABASE.clear()


@pytest.fixture
def proof_scale(request: pytest.FixtureRequest) -> str:
    """`small` (CI) or `large` (`make proof`)."""
    return str(request.config.getoption("--proof-scale"))


SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test"
LEADER, APPROVER, OTHER_APPROVER, STRANGER = "U0LEAD", "U0APPR", "U0APPR2", "U0RANDOM"
STAFF_CHANNEL, APPROVAL_CHANNEL = "C0STAFF", "C0APPROVE"

CONFIG = """
[policy]
leaders = ["slack:U0LEAD"]
approvers = {approvers}
default_audience = "everyone"
{extra_policy}

[destinations.all-staff]
kind = "slack"
channel = "C0STAFF"

[destinations.company-x]
kind = "x"

[audiences]
staff = ["all-staff"]
public = ["company-x"]
everyone = ["all-staff", "company-x"]
"""


def config_text(approvers: list[str] | None = None, extra_policy: str = "") -> str:
    return CONFIG.format(approvers=json.dumps(approvers or []), extra_policy=extra_policy)


def bot_env(tmp_path: Path, slack: FakeSlack, x: FakeX, config: str) -> dict[str, str]:
    """The environment an operator would set, pointing at the fakes."""
    path = tmp_path / "relay.toml"
    path.write_text(config)
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "X_API_KEY": x.credentials.consumer_key,
        "X_API_SECRET": x.credentials.consumer_secret,
        "X_ACCESS_TOKEN": x.credentials.access_token,
        "X_ACCESS_TOKEN_SECRET": x.credentials.access_token_secret,
        "X_API_URL": x.api_url,
        "RELAY_CONFIG": str(path),
        "RELAY_DB": str(tmp_path / "relay.db"),
        **DATABASE,
    }


class Relay:
    """A running bot, driven the way Slack drives it."""

    def __init__(
        self, url: str, slack: FakeSlack, http: aiohttp.ClientSession, server: TestServer | None = None
    ) -> None:
        self.url = url
        self.slack = slack
        self.http = http
        self.server = server  # when started in this process: its app, and a way to stop it
        self._responses = 0

    async def post_signed(self, body: str, headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
        response = await self.http.post(
            f"{self.url}/slack/events", data=body, headers=headers or signed_headers(SIGNING_SECRET, body)
        )
        await response.read()
        # a person acts on what the bot shows, once it has shown it
        if self.server is not None and (surface := self.server.app.get(SURFACE)) is not None:
            await surface.settle()
        return response

    @property
    def store(self) -> Store:
        """The database of a bot started in this process, for a test to write what a person could not."""
        assert self.server is not None, "started in another process"
        return self.server.app[STORE]

    def new_response_url(self) -> tuple[str, str]:
        self._responses += 1
        key = f"r{self._responses}"
        return key, self.slack.response_url(key)

    async def command(self, user: str, text: str) -> dict[str, Any]:
        """`/broadcast <text>`: returns what Slack would show the user at once (the acknowledgement)."""
        _, url = self.new_response_url()
        response = await self.post_signed(command_body(user, text, url))
        assert response.status == 200, await response.text()
        if response.content_type != "application/json":
            return {"text": await response.text()}
        ack: dict[str, Any] = await response.json()
        self.slack.check_ack(ack)
        return ack

    async def click(
        self,
        user: str,
        action: str,
        broadcast_id: str,
        selected: str | None = None,
        block_id: str | None = None,
        state: dict[str, Any] | None = None,
    ) -> str:
        """Press a button; returns the response_url key where the bot answers this click."""
        key, url = self.new_response_url()
        body = action_body(user, action, broadcast_id, url, block_id=block_id, selected=selected, state=state)
        response = await self.post_signed(body)
        assert response.status == 200, await response.text()
        return key

    async def submit_view(
        self,
        user: str,
        callback_id: str,
        metadata: dict[str, Any],
        message: str,
        audience: str,
        more: dict[str, Any] | None = None,
    ) -> aiohttp.ClientResponse:
        body = view_submission_body(user, callback_id, json.dumps(metadata), message, audience, more=more)
        return await self.post_signed(body)

    async def answer(self, key: str) -> dict[str, Any]:
        """The bot's answer to one interaction, posted to its response_url."""
        return (await self.slack.wait_for(lambda: self.slack.responses.get(key)))[-1]

    async def final_report(self, user: str = LEADER, timeout: float = 10.0) -> str:
        """Wait until the live report in the user's DM says every delivery is final; return its text."""

        def final() -> str | None:
            for message in reversed(self.slack.messages(f"D{user}")):
                text = report_text(message)
                if re.search(r"delivered\.$", message.get("text", "")):
                    return text
            return None

        return await self.slack.wait_for(final, timeout)


def report_text(message: dict[str, Any]) -> str:
    """All the words of a message, blocks included, as a leader would read them."""
    parts = [message.get("text", "")]
    for block in message.get("blocks") or []:
        for field in [block.get("text")] + list(block.get("elements") or []):
            if isinstance(field, dict) and "text" in field:
                text = field["text"]
                parts.append(text if isinstance(text, str) else text.get("text", ""))
    return "\n".join(parts)


def preview_id(ack: dict[str, Any]) -> str:
    match = re.search(r"`(b[0-9a-f]{8})`", json.dumps(ack))
    assert match, f"no broadcast id in {ack}"
    return match.group(1)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """The strict fake Slack: whatever it refused (blocks, a view, a missing scope) fails the test, unless the
    test looked at the refusals and cleared them."""
    async with FakeSlack(token=BOT_TOKEN) as fake:
        yield fake
    assert not fake.refusals, f"Slack would have refused: {fake.refusals}"


@pytest.fixture
async def x() -> AsyncIterator[FakeX]:
    async with FakeX() as fake:
        yield fake


def loopback(address: Address) -> bool:
    """What a test's relay may fetch a link card from: its own pages on loopback, and never the internet
    (a link to https://example.com in a test gets no card, at once)."""
    return address.is_loopback


@pytest.fixture
async def start_relay(tmp_path: Path, slack: FakeSlack, x: FakeX) -> AsyncIterator[Callable[..., Awaitable[Relay]]]:
    """Start the bot (in this process, on its own loopback server) with a given config."""
    servers: list[TestServer] = []
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def start(
        config: str | None = None,
        clock: Callable[[], float] = time.time,
        port: int | None = None,
        link_reach: Reach = loopback,
        public: bool = False,
        **env: str,
    ) -> Relay:
        """`port`: where to listen, for a test that must name the relay's address beforehand (RELAY_PUBLIC_URL);
        `public`: RELAY_PUBLIC_URL is the bot's own loopback address (where networks fetch images)."""
        port = port or free_port()
        own = {"RELAY_PUBLIC_URL": f"http://127.0.0.1:{port}"} if public else {}
        environment = {**bot_env(tmp_path, slack, x, config or config_text()), **own, **env}
        settings = replace(settings_from_env(environment), link_reach=link_reach)
        app = build_app(settings, load_config(settings, SPECS), clock)
        server = TestServer(app, host="127.0.0.1", port=port)
        await server.start_server()
        servers.append(server)
        return Relay(str(server.make_url("")).rstrip("/"), slack, http, server)

    yield start
    for server in servers:
        await server.close()
    await http.close()


# Debian's Chromium, driven by Playwright (the status page, and the networks' sign-in pages).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags this machine's Chromium needs headless and offline (no background calls home).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: run tests/browser/install.sh")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        await launched.close()


TEAMS_ENV = {
    "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__ANONYMOUS_ALLOWED": "true",
    "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__TENANTID": TENANT,
}


def teams_config(approvers: list[str] | None = None, extra_policy: str = "") -> str:
    """Slack, Teams and X destinations; the CEO is one person in Slack (U0LEAD) and in Teams."""
    return f"""
[people]
ceo = ["slack:{LEADER}", "teams:{CEO}"]

[policy]
leaders = ["slack:{LEADER}"]
approvers = {json.dumps(approvers or [])}
default_audience = "everyone"
{extra_policy}

[destinations.all-staff]
kind = "slack"
channel = "{STAFF_CHANNEL}"

[destinations.teams-announcements]
kind = "teams"
channel = "{ANNOUNCEMENTS}"

[destinations.company-x]
kind = "x"

[audiences]
everyone = ["all-staff", "teams-announcements", "company-x"]
teams = ["teams-announcements"]
public = ["company-x"]
"""


@pytest.fixture
async def connector() -> AsyncIterator[FakeConnector]:
    channels = [
        {"id": TEAM, "name": "General"},
        {"id": ANNOUNCEMENTS, "name": "Announcements"},
        {"id": APPROVALS, "name": "Approvals"},
    ]
    async with FakeConnector({TEAM: channels}) as fake:
        yield fake


PUBLIC_CONFIG = """
[policy]
leaders = ["slack:U0LEAD"]
default_audience = "public"
replies = "{replies}"

[destinations.company-mastodon]
kind = "mastodon"

[destinations.company-linkedin]
kind = "linkedin"
organization = "urn:li:organization:2414183"
{linkedin_extra}

[destinations.company-x]
kind = "x"

[audiences]
mastodon = ["company-mastodon"]
linkedin = ["company-linkedin"]
public = ["company-mastodon", "company-linkedin", "company-x"]
"""


def public_config(replies: str = "open", linkedin_extra: str = "") -> str:
    return PUBLIC_CONFIG.format(replies=replies, linkedin_extra=linkedin_extra)


def public_env(mastodon: FakeMastodon, linkedin: FakeLinkedIn) -> dict[str, str]:
    return {
        "MASTODON_URL": mastodon.url,
        "MASTODON_ACCESS_TOKEN": mastodon.token,
        "LINKEDIN_API_URL": linkedin.url,
        "LINKEDIN_ACCESS_TOKEN": linkedin.token,
    }


@pytest.fixture
async def mastodon() -> AsyncIterator[FakeMastodon]:
    async with FakeMastodon() as fake:
        yield fake


@pytest.fixture
async def linkedin() -> AsyncIterator[FakeLinkedIn]:
    async with FakeLinkedIn() as fake:
        yield fake


from tests.pds_fixture import pds  # noqa: E402,F401  (the reference Bluesky PDS, for the tests that ask)
