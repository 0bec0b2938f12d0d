"""The status page in a real browser (Debian's Chromium, driven by Playwright): login, list, live, phone."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from adapters import SPECS
from relay.config import ConfigError, load_config, settings_from_env
from relay.startup import startup_warnings
from tests.conftest import LEADER, Relay, bot_env, config_text, preview_id
from tests.fakes import FakeSlack, FakeX

SECRET = "status-secret-0123456789abcdef"
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


async def signed_in(browser: Browser, relay: Relay, width: int = 1280, height: int = 800) -> Page:
    page = await browser.new_page(viewport={"width": width, "height": height})
    await page.goto(f"{relay.url}/status")
    await page.fill("input[name=secret]", SECRET)
    await page.click("button")
    await page.wait_for_url(f"{relay.url}/status")
    return page


async def sent(relay: Relay, text: str) -> str:
    broadcast = preview_id(await relay.command(LEADER, text))
    await relay.click(LEADER, "approve", broadcast)
    await relay.final_report()
    return broadcast


async def test_without_the_secret_nobody_gets_in(start_relay, browser: Browser) -> None:
    relay = await start_relay(RELAY_STATUS_SECRET=SECRET)
    await sent(relay, "Private until signed in")
    page = await browser.new_page()
    await page.goto(f"{relay.url}/status")
    assert page.url.endswith("/status/login")
    await page.fill("input[name=secret]", "guess-guess-guess-guess")
    await page.click("button")
    assert "That is not the secret." in await page.content()
    assert "Private until signed in" not in await page.content()
    async with relay.http.get(f"{relay.url}/status/list") as listing:
        assert listing.status == 401


async def test_the_page_is_off_without_a_configured_secret(start_relay) -> None:
    relay = await start_relay()
    async with relay.http.get(f"{relay.url}/status") as answer:
        assert answer.status == 404 and "set RELAY_STATUS_SECRET" in await answer.text()


def test_a_short_secret_is_refused_at_start(tmp_path: Path, slack: FakeSlack, x: FakeX) -> None:
    settings = settings_from_env({**bot_env(tmp_path, slack, x, config_text()), "RELAY_STATUS_SECRET": "hunter2"})
    with pytest.raises(ConfigError, match="RELAY_STATUS_SECRET is shorter than 16 characters"):
        startup_warnings(settings, load_config(settings, SPECS))


async def test_the_list_shows_broadcasts_and_changes_live(start_relay, browser: Browser) -> None:
    relay = await start_relay(RELAY_STATUS_SECRET=SECRET)
    first = await sent(relay, "First <b>not bold</b>")
    page = await signed_in(browser, relay)
    article = page.locator(f"#{first}")
    assert "2 of 2 delivered." in await article.inner_text()
    assert "First <b>not bold</b>" in await article.inner_text(), "text is escaped, not rendered as HTML"
    assert await article.locator("a", has_text="view").count() == 2
    await page.evaluate("window.notReloaded = true")

    second = await sent(relay, "Second, while the page is open")
    await page.locator(f"#{second}").wait_for()
    await page.wait_for_function(f"document.getElementById('{second}').innerText.includes('2 of 2 delivered.')")
    assert await page.evaluate("window.notReloaded") is True, "updated in place, without a reload"


async def test_it_fits_a_phone(start_relay, browser: Browser, tmp_path: Path) -> None:
    relay = await start_relay(RELAY_STATUS_SECRET=SECRET)
    await sent(relay, "A long word: " + "supercalifragilistic" * 6 + " and https://example.com/" + "p" * 120)
    page = await signed_in(browser, relay, width=390, height=844)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scrolling"
    shot = tmp_path / "status-phone.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5_000
