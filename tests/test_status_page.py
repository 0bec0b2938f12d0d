"""The status page in a real browser (Debian's Chromium, driven by Playwright): login, list, live, phone;
and over plain HTTP, what an attacker would try: links a network returned, guessing, forged posts, stolen or
malformed cookies."""

from __future__ import annotations

import io
import re
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, Page

from adapters import SPECS
from relay import audit
from relay.config import ConfigError, load_config, settings_from_env
from relay.startup import startup_warnings
from tests.conftest import LEADER, Relay, bot_env, config_text, preview_id
from tests.fakes import FakeSlack, FakeX, Fault
from tests.fakes.slack import BOT_ID, BOT_USER_ID, TEAM_ID
from tests.proof import tally
from tests.test_abuse import INPUTS
from tests.test_security import SECURITY

SECRET = "status-secret-0123456789abcdef"


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


RAN = "javascript:document.body.dataset.ran='yes'//"


async def test_a_javascript_link_from_a_network_is_not_a_link_and_could_not_run(
    start_relay, browser: Browser, slack: FakeSlack
) -> None:
    """Slack's auth.test gives the workspace address that permalinks are built from; a hostile or broken
    answer makes the post's link `javascript:…`. The page shows no such link, and its CSP would not run one."""
    answer = {"ok": True, "url": RAN, "team": "Test", "user": "relaybot", "team_id": TEAM_ID}
    slack.faults.add("auth.test", Fault.status(200, {**answer, "user_id": BOT_USER_ID, "bot_id": BOT_ID}), times=None)
    relay = await start_relay(RELAY_STATUS_SECRET=SECRET)
    broadcast = await sent(relay, "A post whose link a network chose")
    page = await signed_in(browser, relay)
    article = page.locator(f"#{broadcast}")
    assert "2 of 2 delivered." in await article.inner_text()
    links = [await a.get_attribute("href") for a in await article.locator("a").all()]
    assert len(links) == 1 and links[0].startswith("http"), f"only X's http(s) link is shown: {links}"
    # Were a javascript: link ever on the page (a bug elsewhere), the policy would still not run it.
    await page.evaluate(
        "([id, href]) => { const a = document.createElement('a'); a.href = href; a.id = 'planted';"
        " a.textContent = 'view'; document.getElementById(id).append(a); }",
        [broadcast, RAN],
    )
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))
    await page.click("#planted")
    await page.wait_for_function("() => true")
    assert await page.evaluate("document.body.dataset.ran") is None, "the script did not run"
    assert any("Content Security Policy" in text for text in violations), violations
    tally(SECURITY, 2)


async def sign_in(relay: Relay, secret: str = SECRET, **headers: str) -> aiohttp.ClientResponse:
    async with relay.http.post(
        f"{relay.url}/status/login",
        data={"secret": secret},
        headers={"Origin": relay.url, **headers},
        allow_redirects=False,
    ) as answer:
        await answer.read()
        return answer


async def listing(relay: Relay, cookie: str) -> int:
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
        http.get(f"{relay.url}/status/list", headers={"Cookie": f"relay_status={cookie}"}) as answer,
    ):
        return answer.status


def token(answer: aiohttp.ClientResponse) -> str:
    return answer.cookies["relay_status"].value


async def test_every_answer_forbids_sniffing_caching_framing_and_inline_script(start_relay) -> None:
    relay = await start_relay(RELAY_STATUS_SECRET=SECRET)
    cookie = token(await sign_in(relay))
    answers = []
    for method, path, headers in (
        ("GET", "/status/login", {}),
        ("GET", "/status", {}),
        ("GET", "/status", {"Cookie": f"relay_status={cookie}"}),
        ("GET", "/status/list", {}),
        ("GET", "/status/list", {"Cookie": f"relay_status={cookie}"}),
        ("POST", "/status/login", {"Origin": relay.url}),
        ("POST", "/status/logout", {"Origin": "https://elsewhere.example"}),
        ("GET", "/healthz", {}),
        ("GET", "/no-such-page", {}),
        ("POST", "/slack/events", {}),
    ):
        async with (
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
            http.request(method, relay.url + path, headers=headers, allow_redirects=False) as answer,
        ):
            await answer.read()
            answers.append((method, path, answer.status, answer.headers))
    for method, path, status, headers in answers:
        where = f"{method} {path} ({status})"
        assert headers.get("X-Content-Type-Options") == "nosniff", where
        assert headers.get("Cache-Control") == "no-store", where
        policy = headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy, where
        assert "default-src 'none'" in policy, where
    page = next(headers for _, path, status, headers in answers if path == "/status" and status == 200)
    assert re.search(r"script-src 'nonce-[\w-]{16,}'", page["Content-Security-Policy"])
    tally(SECURITY, len(answers))


async def test_the_cookie_is_secure_when_a_proxy_says_the_browser_used_https(start_relay) -> None:
    relay = await start_relay(RELAY_STATUS_SECRET=SECRET)
    direct = await sign_in(relay)
    assert direct.status == 303 and not direct.cookies["relay_status"]["secure"], "plain http on loopback"
    for header in ({"X-Forwarded-Proto": "https"}, {"Forwarded": 'for=203.0.113.7;proto=https;host="relay.example"'}):
        proxied = await sign_in(relay, **header)
        assert proxied.status == 303 and proxied.cookies["relay_status"]["secure"], header
        assert proxied.cookies["relay_status"]["httponly"] and proxied.cookies["relay_status"]["samesite"] == "Strict"
    tally(SECURITY, 3)


async def test_sessions_are_random_revoked_at_logout_and_kept_across_a_restart(start_relay, tmp_path: Path) -> None:
    relay = await start_relay(RELAY_STATUS_SECRET=SECRET)
    first, second = token(await sign_in(relay)), token(await sign_in(relay))
    assert first != second, "two sign-ins in one second are two sessions"
    assert SECRET not in first and len(first) >= 43
    assert await listing(relay, first) == 200 and await listing(relay, second) == 200
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        out = await http.post(
            f"{relay.url}/status/logout",
            headers={"Cookie": f"relay_status={first}", "Origin": relay.url},
            allow_redirects=False,
        )
        assert out.status == 303
    assert await listing(relay, first) == 401, "a cookie kept after logout is worth nothing"
    assert relay.server is not None
    await relay.server.close()
    again = await start_relay(RELAY_STATUS_SECRET=SECRET)
    assert await listing(again, second) == 200, "the other session outlives the restart"
    assert await listing(again, first) == 401
    stored = b"".join(f.read_bytes() for f in tmp_path.glob("relay.db*"))
    assert second.encode() not in stored, "the database keeps only a hash of each session"
    tally(SECURITY, 4)


async def test_guessing_is_throttled_per_client_and_in_total_and_each_failure_is_logged_and_audited(
    start_relay, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    relay = await start_relay(RELAY_STATUS_SECRET=SECRET)

    async def attempt(address: str, secret: str) -> aiohttp.ClientResponse:
        connector = aiohttp.TCPConnector(local_addr=(address, 0))
        async with aiohttp.ClientSession(connector=connector) as http:
            answer = await http.post(
                f"{relay.url}/status/login",
                data={"secret": secret},
                headers={"Origin": relay.url},
                allow_redirects=False,
            )
            await answer.read()
            return answer

    assert [(await attempt("127.0.0.1", f"guess-{n}")).status for n in range(5)] == [401] * 5
    throttled = await attempt("127.0.0.1", SECRET)
    assert throttled.status == 429, "even the right secret waits once a client has guessed too often"
    assert 0 < int(throttled.headers["Retry-After"]) <= 60
    assert (await attempt("127.0.0.2", SECRET)).status == 303, "another client is not held up by one"
    for address in ("127.0.0.3", "127.0.0.4", "127.0.0.5"):
        assert [(await attempt(address, "guess")).status for _ in range(5)] == [401] * 5
    assert (await attempt("127.0.0.6", SECRET)).status == 429, "twenty wrong secrets a minute in all, at most"
    logged = [r.getMessage() for r in caplog.records if "a wrong secret from" in r.getMessage()]
    assert len(logged) == 20 and "127.0.0.1" in logged[0] and SECRET not in caplog.text
    trail = await audit.entries(relay.store)
    refused = [e for e in trail if e.action == "sign-in-refused"]
    assert len(refused) == 20 and {e.place for e in refused} == {f"127.0.0.{n}" for n in range(1, 6)} - {"127.0.0.2"}
    assert [e.place for e in trail if e.action == "signed-in"] == ["127.0.0.2"]
    tally(SECURITY, 4)


async def test_a_post_from_another_site_is_refused_and_changes_nothing(start_relay) -> None:
    relay = await start_relay(RELAY_STATUS_SECRET=SECRET)
    session = token(await sign_in(relay))
    for origin in ("https://attacker.example", "null", None, relay.url.replace("127.0.0.1", "localhost")):
        headers = {"Cookie": f"relay_status={session}", **({"Origin": origin} if origin else {})}
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            out = await http.post(f"{relay.url}/status/logout", headers=headers, allow_redirects=False)
            assert out.status == 403, origin
            login = await http.post(
                f"{relay.url}/status/login", data={"secret": SECRET}, headers=headers, allow_redirects=False
            )
            assert login.status == 403 and "relay_status" not in login.cookies, origin
        tally(SECURITY, 2)
    assert await listing(relay, session) == 200, "the forged logouts revoked nothing"


@pytest.mark.parametrize(
    "case",
    ["non-UTF-8 body", "5,000-digit cookie", "non-ASCII digits cookie", "cookie of spaces and quotes", "huge body"],
)
async def test_a_malformed_sign_in_request_gets_4xx_never_500(start_relay, case: str) -> None:
    relay = await start_relay(RELAY_STATUS_SECRET=SECRET)
    form = {"Origin": relay.url, "Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        if case == "non-UTF-8 body":
            answer = await http.post(f"{relay.url}/status/login", data=b"secret=\xff\xfe\xfd", headers=form)
        elif case == "huge body":
            answer = await http.post(
                f"{relay.url}/status/login", data=io.BytesIO(b"secret=" + b"a" * 2_000_000), headers=form
            )
        else:
            cookie = {
                "5,000-digit cookie": "9" * 5000 + "." + "0" * 64,
                "non-ASCII digits cookie": "\u0669" * 11 + ".abc",
                "cookie of spaces and quotes": '" ; ; ="',
            }[case]
            answer = await http.get(
                f"{relay.url}/status/list", headers={"Cookie": f"relay_status={cookie}"}, allow_redirects=False
            )
        assert 400 <= answer.status < 500, (case, answer.status, await answer.text())
    tally(INPUTS)
