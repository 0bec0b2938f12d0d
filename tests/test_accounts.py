"""Leaders connect their own accounts from chat: `/broadcast accounts`, the network's sign-in in a real browser
(Chromium, through the real redirects), the tokens sealed in the database, Disconnect.

The networks are the fakes (tests/fakes/oauth2.py behind each): they refuse a wrong PKCE verifier, a code used
twice, a redirect URI the app did not register."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from cryptography.fernet import Fernet
from playwright.async_api import Browser

from relay.vault import Unsealable, Vault
from tests.bot_process import free_port
from tests.conftest import LEADER, Relay, config_text, report_text
from tests.fakes import FakeX
from tests.fakes.slack import FakeSlack

KEY = Fernet.generate_key().decode()
OTHER_LEADER = "U0LEAD2"
CEO = {"id": "4200000000000000042", "name": "The CEO", "username": "ceo"}


def accounts_config() -> str:
    return config_text(extra_policy="").replace(
        'leaders = ["slack:U0LEAD"]', f'leaders = ["slack:U0LEAD", "slack:{OTHER_LEADER}"]'
    )


async def relay_with_accounts(start_relay: Callable[..., Awaitable[Relay]], x: FakeX, **env: str) -> Relay:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    x.sign_in.register(f"{public}/oauth/x/callback", "x-client-id", "x-client-secret")
    x.sign_in.user = CEO
    settings = {
        "RELAY_SECRET_KEY": KEY,
        "RELAY_PUBLIC_URL": public,
        "X_CLIENT_ID": "x-client-id",
        "X_CLIENT_SECRET": "x-client-secret",
        "X_SIGN_IN_URL": x.api_url,
        **env,
    }
    return await start_relay(accounts_config(), port=port, **settings)


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The message's buttons by what they say."""
    found = {}
    for block in message.get("blocks", []):
        for element in [*block.get("elements", []), block.get("accessory") or {}]:
            if element.get("type") == "button":
                found[element["text"]["text"]] = element
    return found


async def sign_in_link(relay: Relay, user: str, network: str) -> str:
    shown = await relay.command(user, "accounts")
    return str(buttons(shown)[f"Connect {network}"]["url"])


async def connect_in_browser(browser: Browser, link: str) -> str:
    """Open the sign-in link, press the network's Authorize, and read the relay's answer page."""
    page = await browser.new_page()
    await page.goto(link)
    await page.click("#allow")
    await page.wait_for_selector("#message")
    text = await page.inner_text("#message")
    await page.close()
    return text


async def test_a_leader_connects_x_and_its_tokens_are_sealed(
    start_relay: Callable[..., Awaitable[Relay]], x: FakeX, slack: FakeSlack, browser: Browser
) -> None:
    relay = await relay_with_accounts(start_relay, x)
    answer = await connect_in_browser(browser, await sign_in_link(relay, LEADER, "X"))
    assert "Your X account @ceo is connected" in answer
    dm = await slack.wait_for(lambda: [m for m in slack.messages(f"D{LEADER}") if "@ceo is connected" in m["text"]])
    assert dm
    shown = await relay.command(LEADER, "accounts")
    assert "*X* @ceo" in report_text(shown)
    assert "Disconnect" in buttons(shown)
    # PKCE was used and checked by the fake; the relay kept the user token and its refresh token, sealed.
    assert x.sign_in.grants == ["authorization_code"]
    issued = list(x.sign_in.tokens)
    raw = await relay.store.call(lambda conn: [tuple(r) for r in conn.execute("SELECT * FROM accounts").fetchall()])
    dump = json.dumps(raw)
    assert not any(token in dump for token in issued)
    assert not any(token in dump for token in x.sign_in.refresh_tokens)
    sealed = await relay.store.call(lambda conn: conn.execute("SELECT sealed FROM accounts").fetchone()["sealed"])
    assert Vault([KEY]).open(sealed)["access_token"] == issued[-1]
    with pytest.raises(Unsealable):
        Vault([Fernet.generate_key().decode()]).open(sealed)
