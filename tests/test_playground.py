"""The bot in Microsoft's own Teams client: the Microsoft 365 Agents Playground (npm, installed by
tests/msteams/install.sh), with the tenant and people of teams/playground.yml, driven in Debian's Chromium as
a person drives it. What is asserted is what its page shows: the messages and Adaptive Cards as its renderer
draws them, and the post in the team's channel. The Playground is Microsoft's stand-in for Teams and its
Bot Connector both, so no fake of ours is in the loop.

Kept on this machine: the Playground has no host option and listens on every interface, so it runs under
tests/msteams/loopback.js (every server on 127.0.0.1, no connection elsewhere); the page's requests for
Microsoft's web fonts are refused in the browser."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Locator, Page, Route, expect

from tests.bot_process import ROOT, BotProcess, free_port

MSTEAMS = ROOT / "tests" / "msteams"
CLI = MSTEAMS / "node_modules" / "@microsoft" / "m365agentsplayground" / "cli.js"
PEOPLE = ROOT / "teams" / "playground.yml"
TEXT = PEOPLE.read_text()
RELAY = (ROOT / "teams" / "playground.toml").read_text()


def _field(pattern: str) -> str:
    found = re.search(pattern, TEXT, re.MULTILINE)
    assert found, f"teams/playground.yml has no {pattern}"
    return found[1]


TENANT = _field(r"^tenantId: (\S+)$")
ME = _field(r"^currentUser:\n(?:  .*\n)*?  aadObjectId: (\S+)$")  # Alex Wilber, who the page signs in as
OTHER = _field(r"^users:\n(?:  .*\n)*?    aadObjectId: (\S+)$")  # Megan Bowen, whom the page cannot be
GENERAL = _field(r"^team:\n  id: (\S+)$")  # a team's General channel has the team's id
ANNOUNCEMENTS = _field(r"^  channels:\n    - id: (\S+)$")
assert f'"teams:{ME}"' in RELAY and f'"{ANNOUNCEMENTS}"' in RELAY, "teams/playground.toml names the same people"
LOCAL = re.compile(r"^(https?|wss?)://(127\.0\.0\.1|localhost)[:/]")
ZONE = "Europe/Paris"  # the person's clock, in the page and in the Playground, which tells the bot
WAIT = 15_000  # ms for what the page shows to appear: the machine is shared by parallel test runs


class Playground:
    """`agentsplayground -e <bot> -c msteams` as the README runs it, on a port of its own choosing."""

    def __init__(self, endpoint: str, folder: Path) -> None:
        self.endpoint = endpoint
        self.folder = folder
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""
        self.errors = ""

    async def start(self) -> None:
        if not CLI.exists() or shutil.which("node") is None:
            pytest.fail("the Agents Playground is not installed: run tests/msteams/install.sh (needs node)")
        self.process = await asyncio.create_subprocess_exec(
            "node",
            "--require",
            str(MSTEAMS / "loopback.js"),
            str(CLI),
            *("-e", self.endpoint, "-c", "msteams", "-p", "0", "--disable-telemetry"),
            cwd=self.folder,
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(self.folder),
                "TEAMSAPPTESTER_BROWSER": "none",  # it would open a browser of its own
                "TZ": ZONE,  # it tells the bot the writer's time zone from its own clock
                # --disable-telemetry stops its events, not the Application Insights SDK's own "statsbeat"
                # (westus-0.in.applicationinsights.azure.com, and the Azure metadata address 169.254.169.254)
                "APPLICATION_INSIGHTS_NO_STATSBEAT": "true",
                "M365_AGENTS_PLAYGROUND_CONFIG_PATH": str(PEOPLE),
                "M365_AGENTS_PLAYGROUND_LOGFILE": str(self.folder / "playground.log"),
            },
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None
        async with asyncio.timeout(30):
            line = (await self.process.stdout.readline()).decode()
        if not (port := re.match(r"Listening on (\d+)", line)):
            await self.process.wait()
            raise AssertionError(f"the Playground did not start: {line}{await self._stderr()}")
        self.url = f"http://127.0.0.1:{port[1]}"

    async def _stderr(self) -> str:
        assert self.process is not None and self.process.stderr is not None
        return (await self.process.stderr.read()).decode()

    async def stop(self) -> None:
        if self.process is None:
            return
        if self.process.returncode is None:
            self.process.terminate()
        self.errors = await self._stderr()
        await self.process.wait()

    def listening(self) -> list[str]:
        """The local addresses its listening TCP sockets are bound to, as `ss -ltn` would show them."""
        assert self.process is not None
        inodes = set()
        for fd in os.listdir(f"/proc/{self.process.pid}/fd"):
            try:
                inodes.add(os.readlink(f"/proc/{self.process.pid}/fd/{fd}").removeprefix("socket:[").rstrip("]"))
            except FileNotFoundError:  # closed since it was listed
                continue
        found = []
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for row in Path(table).read_text().splitlines()[1:]:
                fields = row.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    found.append(fields[1])
        return found


Starter = Callable[..., Awaitable[Page]]


@pytest.fixture
async def session(
    tmp_path: Path,
    browser: Browser,
) -> AsyncIterator[Starter]:
    """Start the bot as README's "Trying it in the Microsoft 365 Agents Playground" does, on
    teams/playground.toml (with `policy` lines added to its [policy]), the Playground in front of it and
    its page, signed in as Alex Wilber, with the bot added to the team: opening a team's channel in the
    Playground adds the bot, which then asks for the team's channels. Afterwards: the Playground never
    tried to leave this machine."""
    playgrounds: list[Playground] = []
    async with AsyncExitStack() as stack:

        async def start(policy: str = "") -> Page:
            (tmp_path / "relay.toml").write_text(RELAY.replace("[policy]\n", f"[policy]\n{policy}\n"))
            bot = BotProcess(
                {
                    "PORT": str(free_port()),
                    "RELAY_CONFIG": str(tmp_path / "relay.toml"),
                    "RELAY_DB": str(tmp_path / "relay.db"),
                    "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__ANONYMOUS_ALLOWED": "true",
                    "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__TENANTID": TENANT,
                }
            )
            stack.push_async_callback(bot.stop)
            await bot.start()
            playground = Playground(f"http://127.0.0.1:{bot.env['PORT']}/api/messages", tmp_path)
            playgrounds.append(playground)
            stack.push_async_callback(playground.stop)
            await playground.start()
            bound = playground.listening()
            assert bound and all(address.startswith("0100007F:") for address in bound), bound  # 127.0.0.1 only

            page = await browser.new_page(viewport={"width": 1400, "height": 1000}, timezone_id=ZONE)
            stack.push_async_callback(page.close)
            page.set_default_timeout(WAIT)
            await page.route("**/*", local_only)
            await page.goto(playground.url)
            await expect(page.get_by_text("Connected.")).to_be_visible(timeout=WAIT)
            await page.get_by_role("treeitem", name="Contoso - General").click()
            await expect(page.get_by_text("getConversations 200")).to_be_visible(timeout=WAIT)
            return page

        yield start
    for playground in playgrounds:
        assert "refused a connection" not in playground.errors, playground.errors


async def local_only(route: Route) -> None:
    """This machine only: the page would fetch Microsoft's web fonts from a CDN."""
    if LOCAL.match(route.request.url):
        await route.continue_()
    else:
        await route.abort()


async def say(page: Page, text: str) -> None:
    """Type into the chat's own message box (not a card's) and press Enter, as a person sends a message."""
    box = page.locator("[data-lexical-editor=true]").last
    await box.click()
    await page.keyboard.type(text)
    await page.keyboard.press("Enter")


def bot_says(page: Page, text: str) -> Locator:
    """A message from the bot as the Playground shows it (text or card), by what it reads."""
    return page.locator(".fai-OutputCard").filter(has_text=text)


async def named(card: Locator) -> str:
    """The broadcast id a card names."""
    found = re.search(r"broadcast (b[0-9a-f]{8})", await card.inner_text())
    assert found, await card.inner_text()
    return found[1]


async def test_a_leader_broadcasts_to_a_teams_channel_from_the_playground(session: Starter) -> None:
    page = await session()
    await page.get_by_text("Personal Chat").click()
    await say(page, "help")
    usage = bot_says(page, "How to broadcast")
    await expect(usage).to_contain_text("write broadcast then your message", timeout=WAIT)
    assert "&lt;" not in await usage.inner_text()

    await say(page, "broadcast Results are out: <https://example.com/q3|the Q3 report>")
    preview = bot_says(page, "Preview of broadcast")
    await expect(preview).to_contain_text("to staff (1 destination)", timeout=WAIT)
    link = preview.get_by_role("link", name="the Q3 report")
    await expect(link).to_have_attribute("href", "https://example.com/q3", timeout=WAIT)
    broadcast = await named(preview)

    await preview.get_by_role("button", name="Approve and send…").click()
    await preview.get_by_role("button", name="Approve and send", exact=True).click()
    report = bot_says(page, f"Broadcast {broadcast} to staff:")
    await expect(report).to_contain_text("1 of 1 delivered.", timeout=WAIT)
    await expect(report).to_contain_text("teams-announcements: posted", timeout=WAIT)
    await expect(report.get_by_role("link", name="the Q3 report")).to_have_attribute("href", "https://example.com/q3")
    await expect(report).not_to_contain_text("<https://")  # the text as written, not in the relay's markup

    await page.get_by_role("treeitem", name="Contoso - Announcements").click()
    post = page.locator("p").filter(has_text="Results are out")
    await expect(post).to_have_text("Results are out: the Q3 report", timeout=WAIT)
    link = post.get_by_role("link", name="the Q3 report")
    await expect(link).to_have_attribute("href", "https://example.com/q3", timeout=WAIT)

    await page.get_by_text("Personal Chat").click()
    await say(page, "broadcast")
    composer = bot_says(page, "New broadcast")
    await composer.get_by_role("textbox", name="Message").fill("Office closed on Friday")
    await composer.get_by_role("button", name="Preview").click()
    second = bot_says(page, "Office closed on Friday")
    await expect(second).to_contain_text("Preview of broadcast", timeout=WAIT)
    later = await named(second)
    day = datetime.now(ZoneInfo(ZONE)).date() + timedelta(days=7)
    await second.get_by_role("button", name="Schedule…").click()
    await second.get_by_placeholder("Select a date...").click()
    if day.month != datetime.now(ZoneInfo(ZONE)).month:
        await page.get_by_title("Next month", exact=False).click()
    await page.get_by_role("button", name=f"{day.day}, {day:%B}, {day.year}", exact=True).click()
    await second.get_by_role("combobox").last.click()  # the time
    await page.get_by_role("option", name="9:00 AM", exact=True).click()
    await second.get_by_role("button", name="Approve and send then").click()
    scheduled = f"scheduled for {day:%a, %b} {day.day}, {day.year} 9:00 AM"  # on the writer's own clock
    await expect(bot_says(page, f"Broadcast {later} to staff: {scheduled}")).to_be_visible(timeout=WAIT)

    await say(page, "status")
    status = bot_says(page, f"{broadcast} · ")
    await expect(status).to_contain_text("staff · 1 of 1 delivered. · Results are out: the Q3 report", timeout=WAIT)
    await expect(status).to_contain_text("teams-announcements: posted", timeout=WAIT)
    await expect(status).to_contain_text(f"{later} · ", timeout=WAIT)
    await expect(status).to_contain_text(f"teams-announcements: {scheduled}", timeout=WAIT)

    await say(page, f"broadcast cancel {later}")
    await expect(bot_says(page, f"Broadcast {later} was cancelled")).to_be_visible(timeout=WAIT)

    # The Playground cannot delete a message (it answers 501, "not implemented yet"): the bot says so once.
    await report.get_by_role("button", name="Retract everywhere…").click()
    await report.get_by_role("button", name="Retract", exact=True).click()
    await expect(report).to_contain_text("retracted: 0 of 1 deleted.", timeout=WAIT)
    await expect(report).to_contain_text("could not be deleted. Teams cannot do this here (501)", timeout=WAIT)


async def test_a_draft_asked_for_in_a_channel_is_shown_only_to_its_author(session: Starter) -> None:
    page = await session(f'approvers = ["teams:{OTHER}"]\nteams_approval_channel = "{GENERAL}"')
    await page.locator("[data-lexical-editor=true]").first.click()  # "Start a new post" in General
    await page.keyboard.type("@Broad")
    await page.get_by_role("listbox", name="Typeahead menu").get_by_text("Broadcast Relay").click()
    await page.keyboard.type(" broadcast Hello from the channel")
    await page.get_by_role("button", name="Post", exact=True).click()
    answer = page.get_by_role("paragraph").filter(has_text="I sent it to you in our chat, where only you can see it.")
    await expect(answer).to_be_visible(timeout=WAIT)
    await expect(page.get_by_text("Preview of broadcast")).to_have_count(0)

    await page.get_by_text("Personal Chat").click()
    draft = bot_says(page, "Preview of broadcast")
    await expect(draft).to_contain_text("Hello from the channel", timeout=WAIT)
    broadcast = await named(draft)
    await draft.get_by_role("button", name="Request approval…").click()
    await draft.get_by_role("button", name="Request approval", exact=True).click()
    await expect(bot_says(page, f"Broadcast {broadcast} is waiting for an approver.")).to_be_visible(timeout=WAIT)

    await page.get_by_role("treeitem", name="Contoso - General").click()
    request = page.locator(".ac-adaptiveCard").filter(has_text=f"asks to broadcast {broadcast}")
    await expect(request).to_contain_text(f"Alex Wilber asks to broadcast {broadcast} to staff", timeout=WAIT)
    await request.get_by_role("button", name="Approve…").click()
    await request.get_by_role("button", name="Approve and send", exact=True).click()
    await expect(page.get_by_text("You cannot approve your own broadcast: another approver must.")).to_be_visible(
        timeout=WAIT
    )
