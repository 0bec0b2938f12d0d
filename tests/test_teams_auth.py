"""With Teams credentials configured, only activities carrying a valid Bot Framework token get in.

Microsoft's token service and signing keys are out of reach here, so the test plays both: its own RSA key
is served as the Bot Framework's key set on loopback, and the bot's outbound token is a fixed string.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from microsoft_agents.authentication.msal import MsalAuth
from microsoft_agents.hosting.core.authorization import _entra_issuers

from tests.conftest import LEADER, preview_id, teams_config
from tests.fakes.teams import FakeConnector
from tests.proof import tally
from tests.teams_activities import ANNOUNCEMENTS, CEO, TENANT, TeamsClient, installed_in_team, message, personal

APP_ID = "11111111-1111-1111-1111-111111111111"
CREDENTIALS = {
    "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID": APP_ID,
    "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTSECRET": "teams-client-secret",
    "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__TENANTID": TENANT,
}
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def bot_framework_keys(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Serve KEY as the Bot Framework's signing keys, and stand in for Microsoft's token service."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")
    app = web.Application()

    async def keys(request: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk]})

    app.router.add_get("/keys", keys)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    monkeypatch.setitem(
        _entra_issuers.BOTFRAMEWORK_JWKS_URIS, "https://api.botframework.com", f"http://127.0.0.1:{port}/keys"
    )

    async def outbound_token(self: Any, resource_url: str, scopes: list[str], force_refresh: bool = False) -> str:
        return "outbound-token"

    monkeypatch.setattr(MsalAuth, "get_access_token", outbound_token)
    yield
    await runner.cleanup()


def token(key: rsa.RSAPrivateKey = KEY, audience: str = APP_ID, expires_in: int = 600) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://api.botframework.com",
        "aud": audience,
        "iat": now - 10,
        "nbf": now - 10,
        "exp": now + expires_in,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


async def test_a_validly_signed_activity_gets_in_and_the_reply_carries_the_bots_token(
    start_relay, connector: FakeConnector, bot_framework_keys: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    relay = await start_relay(teams_config(), **CREDENTIALS)
    status, _ = await TeamsClient(relay.url, relay.http).send(
        message(connector.service_url, CEO, "help"), token=token()
    )
    assert status == 202
    [reply] = await connector.wait_for(lambda: connector.calls_to("POST reply"))
    assert reply.headers["Authorization"] == "Bearer outbound-token"
    assert "write `broadcast` then your message" in connector.posted(personal(CEO)["id"])[0]["text"]
    assert "teams-client-secret" not in caplog.text and "outbound-token" not in caplog.text


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param(lambda: token(key=OTHER_KEY), id="signed-by-another-key"),
        pytest.param(lambda: token(audience="22222222-2222-2222-2222-222222222222"), id="for-another-app"),
        pytest.param(lambda: token(expires_in=-3600), id="expired"),
        pytest.param(lambda: jwt.encode({"aud": APP_ID}, KEY, algorithm="RS256"), id="no-key-id"),
        pytest.param(lambda: "garbage", id="garbage"),
    ],
)
async def test_a_wrongly_signed_activity_gets_401_and_does_nothing(
    start_relay, connector: FakeConnector, bot_framework_keys: None, forged
) -> None:
    tally("security checks (forged, replayed, unauthorized)")
    relay = await start_relay(teams_config(), **CREDENTIALS)
    status, _ = await TeamsClient(relay.url, relay.http).send(
        message(connector.service_url, CEO, "broadcast Forged"), token=forged()
    )
    assert status == 401
    assert not connector.calls


async def test_a_broadcast_to_a_teams_channel_is_posted_with_the_bots_bot_framework_token(
    start_relay, connector: FakeConnector, bot_framework_keys: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, list[str]]] = []

    async def outbound_token(self: Any, resource_url: str, scopes: list[str], force_refresh: bool = False) -> str:
        asked.append((resource_url, scopes))
        return "outbound-token"

    monkeypatch.setattr(MsalAuth, "get_access_token", outbound_token)
    relay = await start_relay(teams_config(), **CREDENTIALS)
    status, _ = await TeamsClient(relay.url, relay.http).send(installed_in_team(connector.service_url), token=token())
    assert status in (200, 202)
    await connector.wait_for(lambda: connector.calls_to("GET channels"))
    broadcast = preview_id(await relay.command(LEADER, "Posted as the bot."))
    await relay.click(LEADER, "approve", broadcast)
    [post] = await connector.wait_for(lambda: connector.calls_to("POST activities"))
    assert post.conversation == ANNOUNCEMENTS and post.body["text"] == "Posted as the bot."
    assert post.headers["Authorization"] == "Bearer outbound-token"
    assert ("https://api.botframework.com", ["https://api.botframework.com/.default"]) in asked
