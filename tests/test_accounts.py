"""Leaders connect their own accounts from chat: `/broadcast accounts`, the network's sign-in in a real browser
(Chromium, through the real redirects), the tokens sealed in the database, Disconnect.

The networks are the fakes (tests/fakes/oauth2.py behind each): they refuse a wrong PKCE verifier, a code used
twice, a redirect URI the app did not register."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from cryptography.fernet import Fernet
from playwright.async_api import Browser

from adapters import SPECS
from bot import ACCOUNTS, RENEWALS
from relay.accounts import STATE_LIFETIME
from relay.config import ConfigError, load_config, settings_from_env
from relay.vault import Unsealable, Vault
from tests.bot_process import ROOT, free_port
from tests.conftest import (
    APPROVER,
    DATABASE,
    LEADER,
    SIGNING_SECRET,
    STRANGER,
    TEAMS_ENV,
    Relay,
    config_text,
    preview_id,
    report_text,
    teams_config,
)
from tests.fakes import FakeLinkedIn, FakeMastodon, FakeThreads, FakeX
from tests.fakes.slack import FakeSlack
from tests.fakes.teams import FakeConnector
from tests.fakes.threads_sign_in import FakeThreadsSignIn
from tests.pds_fixture import Pds
from tests.slack_requests import command_body, signed_headers, view_submission_body
from tests.teams_activities import CEO as TEAMS_CEO
from tests.teams_activities import TeamsClient, action, message, personal
from tests.test_retract import retracted_report
from tests.test_teams_flow import card_text

KEY = Fernet.generate_key().decode()
OTHER_LEADER = "U0LEAD2"
CEO = {"id": "4200000000000000042", "name": "The CEO", "username": "ceo"}


def accounts_config(approvers: list[str] | None = None) -> str:
    """Two leaders; the default audience reaches the company's Slack and X, and the author's own accounts."""
    text = config_text(approvers).replace(
        'leaders = ["slack:U0LEAD"]', f'leaders = ["slack:U0LEAD", "slack:{OTHER_LEADER}"]'
    )
    text = text.replace('default_audience = "everyone"', 'default_audience = "leadership"')
    return text + 'leadership = { destinations = ["all-staff", "company-x"], own_accounts = true }\n'


async def relay_with_accounts(
    start_relay: Callable[..., Awaitable[Relay]],
    x: FakeX,
    approvers: list[str] | None = None,
    port: int | None = None,
    **env: Any,
) -> Relay:
    port = port or free_port()
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
    return await start_relay(accounts_config(approvers), port=port, **settings)


async def final_report(relay: Relay, broadcast: str, user: str = LEADER) -> str:
    """The live report of `broadcast` once every delivery is final (an earlier broadcast's report does not count)."""

    def final() -> str | None:
        for said in reversed(relay.slack.messages(f"D{user}")):
            if broadcast in said.get("text", "") and re.search(r"delivered\.$", said["text"]):
                return report_text(said)
        return None

    return await relay.slack.wait_for(final, 10.0)


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


async def test_a_replayed_accounts_command_is_refused_and_makes_no_sign_in_link(
    start_relay: Callable[..., Awaitable[Relay]], x: FakeX, slack: FakeSlack
) -> None:
    """Its answer carries fresh sign-in links: a copy gets neither them nor a new link kept for it."""
    relay = await relay_with_accounts(start_relay, x)
    body = command_body(LEADER, "accounts", slack.response_url("accounts"))
    headers = signed_headers(SIGNING_SECRET, body)
    first = await relay.post_signed(body, headers)
    assert first.status == 200 and "Connect X" in buttons(await first.json())
    kept = await relay.store.call(lambda conn: conn.execute("SELECT count(*) FROM oauth_states").fetchone()[0])
    second = await relay.post_signed(body, headers)
    assert second.status == 401 and await second.json() == {"error": "replayed request"}
    assert await relay.store.call(lambda conn: conn.execute("SELECT count(*) FROM oauth_states").fetchone()[0]) == kept


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


async def callback_for(relay: Relay, browser: Browser, x: FakeX, user: str = LEADER) -> tuple[Any, str]:
    """A sign-in opened in one browser (bound to it), authorized at the network; the network's redirect back
    to the relay, not yet followed: (that browser's context, the callback URL)."""
    link = await sign_in_link(relay, user, "X")
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(link)  # the relay binds this browser, and sends it to X's sign-in page
    form = {
        name: await field.get_attribute("value")
        for field in await page.query_selector_all("input")
        for name in [await field.get_attribute("name")]
    }
    async with relay.http.post(page.url.split("?")[0], data={**form, "decision": "allow"}, allow_redirects=False) as r:
        assert r.status == 302, await r.text()
        return context, r.headers["Location"]


async def answer_page(context: Any, url: str) -> str:
    page = await context.new_page()
    await page.goto(url)
    return str(await page.inner_text("#message"))


async def test_a_callback_is_used_once_in_the_browser_that_started_it(
    start_relay: Callable[..., Awaitable[Relay]], x: FakeX, browser: Browser
) -> None:
    relay = await relay_with_accounts(start_relay, x)
    own, callback = await callback_for(relay, browser, x)
    elsewhere = await browser.new_context()  # someone who got hold of the link
    assert "started in another browser" in await answer_page(elsewhere, callback)
    assert "already used" in await answer_page(own, callback)  # the state went with the first try
    assert x.sign_in.grants == []  # no code was traded
    own, callback = await callback_for(relay, browser, x)
    assert "is connected" in await answer_page(own, callback)
    assert "already used" in await answer_page(own, callback)  # a replay
    forged = callback.replace("state=", "state=forged")
    assert "unknown or was already used" in await answer_page(own, forged)
    assert x.sign_in.grants == ["authorization_code"]
    assert [a.handle for a in await relay.server.app[ACCOUNTS].mine({f"slack:{LEADER}"})] == ["@ceo"]


async def test_a_sign_in_link_opens_once_and_expires(
    start_relay: Callable[..., Awaitable[Relay]], x: FakeX, browser: Browser
) -> None:
    now = [time.time()]
    relay = await relay_with_accounts(start_relay, x, clock=lambda: now[0])
    link = await sign_in_link(relay, LEADER, "X")
    first, second = await browser.new_context(), await browser.new_context()
    await (await first.new_page()).goto(link)
    page = await second.new_page()
    await page.goto(link)
    assert "already opened" in await page.inner_text("#message")
    own, callback = await callback_for(relay, browser, x)
    now[0] += STATE_LIFETIME + 1
    assert "expired" in await answer_page(own, callback)
    assert x.sign_in.grants == []
    late = await sign_in_link(relay, LEADER, "X")
    now[0] += STATE_LIFETIME + 1
    page = await first.new_page()
    await page.goto(late)
    assert "expired" in await page.inner_text("#message")


@pytest.mark.sqlite_only  # the fake alone: no database
async def test_x_refuses_a_code_without_the_right_pkce_verifier(x: FakeX) -> None:
    """What makes PKCE worth having: the fake, like X, trades a code only for the verifier of its challenge."""
    redirect = "http://127.0.0.1:9/oauth/x/callback"
    x.sign_in.register(redirect, "x-client-id", "x-client-secret")
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {
        "response_type": "code",
        "client_id": "x-client-id",
        "redirect_uri": redirect,
        "state": "s",
        "scope": "tweet.read offline.access",
    }
    basic = {"Authorization": "Basic " + base64.b64encode(b"x-client-id:x-client-secret").decode()}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{x.api_url}/i/oauth2/authorize", params=query) as page:
            assert page.status == 400  # no challenge: refused
        codes = []
        for _ in range(2):
            form = {**query, "code_challenge": challenge, "code_challenge_method": "S256", "decision": "allow"}
            async with http.post(f"{x.api_url}/i/oauth2/authorize", data=form, allow_redirects=False) as r:
                codes.append(parse_qs(urlsplit(r.headers["Location"]).query)["code"][0])
        token = f"{x.api_url}/2/oauth2/token"
        trade = {"grant_type": "authorization_code", "redirect_uri": redirect}
        async with http.post(token, data={**trade, "code": codes[0], "code_verifier": "w" * 50}, headers=basic) as r:
            assert r.status == 400 and (await r.json())["error"] == "invalid_grant"
        async with http.post(token, data={**trade, "code": codes[1], "code_verifier": verifier}, headers=basic) as r:
            assert r.status == 200 and "refresh_token" in await r.json()


async def test_disconnect_revokes_at_x_and_only_the_owner_can(
    start_relay: Callable[..., Awaitable[Relay]], x: FakeX, slack: FakeSlack, browser: Browser
) -> None:
    relay = await relay_with_accounts(start_relay, x)
    await connect_in_browser(browser, await sign_in_link(relay, LEADER, "X"))
    accounts = relay.server.app[ACCOUNTS]
    (account,) = await accounts.mine({f"slack:{LEADER}"})
    key = await relay.click(OTHER_LEADER, "disconnect", account.id, block_id=f"account:{account.id}")
    assert "no such account of yours" in (await relay.answer(key))["text"]
    assert await accounts.mine({f"slack:{LEADER}"}) and x.sign_in.revoked == []
    key = await relay.click(LEADER, "disconnect", account.id, block_id=f"account:{account.id}")
    said = await slack.wait_for(
        lambda: [m for m in slack.responses.get(key, []) if "disconnected" in m.get("text", "")]
    )
    assert "X was asked to revoke" in said[0]["text"]
    assert await accounts.mine({f"slack:{LEADER}"}) == []
    assert x.sign_in.revoked == list(x.sign_in.tokens)
    assert "None connected yet" in report_text(await relay.command(LEADER, "accounts"))


async def test_without_a_key_connecting_is_off_and_says_how_to_turn_it_on(
    start_relay: Callable[..., Awaitable[Relay]], x: FakeX
) -> None:
    relay = await relay_with_accounts(start_relay, x, RELAY_SECRET_KEY="")
    shown = await relay.command(LEADER, "accounts")
    assert "python -m relay new-secret-key" in report_text(shown)
    assert not [b for b in buttons(shown) if b.startswith("Connect")]


async def test_only_leaders_have_accounts_here(start_relay: Callable[..., Awaitable[Relay]], x: FakeX) -> None:
    relay = await relay_with_accounts(start_relay, x)
    shown = await relay.command(STRANGER, "accounts")
    assert "Only the leaders" in shown["text"] and not buttons(shown)


def relay_command(relay_env: dict[str, str], *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", *words],
        env={**os.environ, **relay_env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


async def test_a_new_key_reads_old_tokens_and_rotate_key_reseals_them(
    start_relay: Callable[..., Awaitable[Relay]], x: FakeX, browser: Browser, tmp_path: Path
) -> None:
    relay = await relay_with_accounts(start_relay, x)
    await connect_in_browser(browser, await sign_in_link(relay, LEADER, "X"))
    accounts = relay.server.app[ACCOUNTS]
    (account,) = await accounts.mine({f"slack:{LEADER}"})
    await relay.server.close()
    env = {**DATABASE, "RELAY_DB": str(tmp_path / "relay.db"), "RELAY_CONFIG": str(tmp_path / "relay.toml")}

    new = relay_command(env, "new-secret-key")
    assert new.returncode == 0
    newer = new.stdout.strip()
    assert Fernet(newer.encode())  # a key Fernet takes
    refused = relay_command({**env, "RELAY_SECRET_KEY": Fernet.generate_key().decode()}, "rotate-key")
    assert refused.returncode == 2 and "cannot be opened with any key" in refused.stderr
    assert "nothing was changed" in refused.stderr
    bad = relay_command({**env, "RELAY_SECRET_KEY": f"{newer},not-a-key"}, "rotate-key")
    assert bad.returncode == 2 and "key 2 of 2 is not a Fernet key" in bad.stderr and newer not in bad.stderr

    rotated = relay_command({**env, "RELAY_SECRET_KEY": f"{newer},{KEY}"}, "rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    assert "sealed 1 stored tokens" in rotated.stdout
    # Now the new key alone opens them: the relay, restarted with it, revokes the token it holds at X.
    relay = await relay_with_accounts(start_relay, x, RELAY_SECRET_KEY=newer)
    key = await relay.click(LEADER, "disconnect", account.id, block_id=f"account:{account.id}")
    await relay.slack.wait_for(lambda: [m for m in relay.slack.responses.get(key, []) if "disconnected" in m["text"]])
    assert x.sign_in.revoked == list(x.sign_in.tokens)


async def test_a_leader_broadcasts_to_the_company_and_as_themselves(
    start_relay: Callable[..., Awaitable[Relay]], x: FakeX, slack: FakeSlack, browser: Browser
) -> None:
    relay = await relay_with_accounts(start_relay, x)
    await connect_in_browser(browser, await sign_in_link(relay, LEADER, "X"))
    shown = await relay.command(LEADER, "Our strategy for the year, in one line")
    assert "@ceo on X" in report_text(shown) and "company-x" in report_text(shown)
    await relay.click(LEADER, "approve", preview_id(shown))
    report = await final_report(relay, preview_id(shown))
    assert "@ceo on X" in report
    posted = {tweet.author_id: tweet.text for tweet in x.tweets}
    assert posted == {
        x.user_id: "Our strategy for the year, in one line",  # the company's account (OAuth 1.0a)
        CEO["id"]: "Our strategy for the year, in one line",  # the leader's own, with their OAuth 2.0 token
    }
    assert [c.headers["Authorization"].split()[0] for c in x.calls_to("POST /2/tweets")].count("Bearer") == 1
    # Retracting takes it back from the leader's own account too, with the leader's token.
    await relay.click(LEADER, "retract", preview_id(shown), block_id=f"report:{preview_id(shown)}")
    await retracted_report(relay)
    assert x.tweets == [] and {t.author_id for t in x.deleted} == {x.user_id, CEO["id"]}
    assert (
        "Bearer" in x.calls_to("DELETE /2/tweets/{id}")[-1].headers["Authorization"]
        or "Bearer" in (x.calls_to("DELETE /2/tweets/{id}")[0].headers["Authorization"])
    )


async def test_nobody_else_reaches_a_leaders_own_account(
    start_relay: Callable[..., Awaitable[Relay]], x: FakeX, slack: FakeSlack, browser: Browser
) -> None:
    """Another leader's broadcast to the same audience goes to their own accounts (none), never the CEO's; an
    approver's approval sends the author's own accounts only what the author confirmed."""
    relay = await relay_with_accounts(start_relay, x, approvers=[f"slack:{APPROVER}"])
    await connect_in_browser(browser, await sign_in_link(relay, LEADER, "X"))
    other = preview_id(await relay.command(OTHER_LEADER, "Not the CEO speaking"))
    await relay.click(OTHER_LEADER, "approve", other)
    await relay.click(APPROVER, "approve", other)
    await final_report(relay, other, OTHER_LEADER)
    assert [(t.author_id, t.text) for t in x.tweets] == [(x.user_id, "Not the CEO speaking")]
    mine = preview_id(await relay.command(LEADER, "The CEO speaking"))
    await relay.click(LEADER, "approve", mine)  # the author confirms, own accounts included
    await relay.click(APPROVER, "approve", mine)  # the approver approves the company's part
    await final_report(relay, mine)
    assert sorted((t.author_id, t.text) for t in x.tweets) == sorted(
        [(x.user_id, "Not the CEO speaking"), (x.user_id, "The CEO speaking"), (CEO["id"], "The CEO speaking")]
    )


async def test_an_account_connected_after_the_leader_confirmed_is_not_sent_to(
    start_relay: Callable[..., Awaitable[Relay]], x: FakeX, slack: FakeSlack, browser: Browser
) -> None:
    """The leader's Approve confirms the own accounts their preview listed; one connected while the broadcast
    waits for an approver was never in it, and is not posted to."""
    relay = await relay_with_accounts(start_relay, x, approvers=[f"slack:{APPROVER}"])
    mine = preview_id(await relay.command(LEADER, "Confirmed before connecting"))
    await relay.click(LEADER, "approve", mine)  # no own account yet
    await connect_in_browser(browser, await sign_in_link(relay, LEADER, "X"))
    await relay.click(APPROVER, "approve", mine)
    report = await final_report(relay, mine)
    assert "@ceo on X" not in report
    assert [(t.author_id, t.text) for t in x.tweets] == [(x.user_id, "Confirmed before connecting")]


MEMBER = {"sub": "782bbtaQ", "name": "The CEO", "given_name": "The", "family_name": "CEO"}


async def submit(relay: Relay, user: str, callback_id: str, inputs: dict[str, str]) -> dict[str, Any]:
    """A modal submitted; Slack's answer (what the bot acknowledged it with)."""
    response = await relay.post_signed(view_submission_body(user, callback_id, "{}", inputs=inputs))
    assert response.status == 200
    text = await response.text()
    return json.loads(text) if text else {}


async def test_a_leader_connects_linkedin_mastodon_threads_and_bluesky_and_posts_as_themselves(
    start_relay: Callable[..., Awaitable[Relay]],
    x: FakeX,
    slack: FakeSlack,
    linkedin: FakeLinkedIn,
    browser: Browser,
    pds: Pds,
) -> None:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    own_threads = FakeThreads(user_id="1789", username="the.ceo", sign_in=True)
    async with FakeMastodon(token="not-the-leaders", username="ceo") as own_server, own_threads as threads:
        linkedin.sign_in.register(f"{public}/oauth/linkedin/callback", "li-id", "li-secret")
        linkedin.sign_in.user = MEMBER
        assert threads.tokens is not None
        threads.tokens.sign_in.register(f"{public}/oauth/threads/callback", "th-id", "th-secret")
        threads.tokens.sign_in.user = {"id": "1789", "username": "the.ceo"}
        relay = await relay_with_accounts(
            start_relay,
            x,
            port=port,
            LINKEDIN_CLIENT_ID="li-id",
            LINKEDIN_CLIENT_SECRET="li-secret",
            LINKEDIN_SIGN_IN_URL=linkedin.url,
            LINKEDIN_API_URL=linkedin.url,
            THREADS_APP_ID="th-id",
            THREADS_APP_SECRET="th-secret",
            THREADS_SIGN_IN_URL=threads.origin,
            THREADS_API_URL=threads.api_url,
            BLUESKY_PDS_URL=pds.url,
        )
        assert "is connected" in await connect_in_browser(browser, await sign_in_link(relay, LEADER, "LinkedIn"))
        assert "@the.ceo is connected" in await connect_in_browser(
            browser, await sign_in_link(relay, LEADER, "Threads")
        )
        assert threads.exchanges == ["exchange th_exchange_token"]  # the one-hour token traded for a 60-day one

        await relay.click(LEADER, "connect_mastodon", "mastodon", block_id="connect")
        assert any(v.get("callback_id") == "connect_mastodon" for v in slack.views.values())
        refused = await submit(relay, LEADER, "connect_mastodon", {"server": "not a server"})
        assert "not a Mastodon server" in refused["errors"]["server"]
        shown = await submit(relay, LEADER, "connect_mastodon", {"server": own_server.url})
        link = shown["view"]["blocks"][0]["accessory"]["url"]
        assert "@ceo@127.0.0.1" in await connect_in_browser(browser, link)
        assert own_server.apps_registered == 1  # the relay's app, registered on the leader's server
        again = await submit(relay, LEADER, "connect_mastodon", {"server": own_server.url})
        assert "is connected" in await connect_in_browser(browser, again["view"]["blocks"][0]["accessory"]["url"])
        assert own_server.apps_registered == 1  # kept: not registered again for the same server

        account = pds.account("ceo.test")
        wrong = await submit(relay, LEADER, "connect_bluesky", {"handle": "ceo.test", "app_password": "wrong-pass"})
        assert "Bluesky refused" in wrong["errors"]["app_password"]
        assert (
            await submit(
                relay, LEADER, "connect_bluesky", {"handle": "@ceo.test", "app_password": account.app_password}
            )
            == {}
        )

        shown = report_text(await relay.command(LEADER, "accounts"))
        for line in ("*LinkedIn* The CEO", "*Threads* @the.ceo", "*Mastodon* @ceo@", "*Bluesky* @ceo.test"):
            assert line in shown

        text = f"In my own words, everywhere {time.time_ns()}"
        broadcast = preview_id(await relay.command(LEADER, text))
        await relay.click(LEADER, "approve", broadcast)
        report = await final_report(relay, broadcast)
        assert "The CEO on LinkedIn" in report and "@ceo.test on Bluesky" in report and "@the.ceo on Threads" in report
        assert [post.text for post in threads.posts] == [text], "posted with the leader's own Threads token"
        (post,) = linkedin.posts
        assert post.author == f"urn:li:person:{MEMBER['sub']}" and post.commentary == text
        assert [status.text for status in own_server.statuses] == [text]
        async with aiohttp.ClientSession() as http:
            query = {"repo": account.did, "collection": "app.bsky.feed.post", "limit": "10"}
            async with http.get(f"{pds.url}/xrpc/com.atproto.repo.listRecords", params=query) as listed:
                records = (await listed.json())["records"]
        assert text in [record["value"]["text"] for record in records]
        (mastodon,) = [a for a in await relay.server.app[ACCOUNTS].mine({f"slack:{LEADER}"}) if a.network == "mastodon"]
        key = await relay.click(LEADER, "disconnect", mastodon.id, block_id=f"account:{mastodon.id}")
        said = await slack.wait_for(lambda: [m for m in slack.responses.get(key, []) if "disconnected" in m["text"]])
        assert "Mastodon was asked to revoke" in said[0]["text"]
        assert len(own_server.sign_in.revoked) == 1  # the token in use (the first was replaced on reconnecting)


async def test_linkedin_refuses_a_member_token_without_w_member_social(linkedin: FakeLinkedIn) -> None:
    """The fake, like LinkedIn: a member's token posts as that member only, and only with w_member_social."""
    linkedin.sign_in.user = MEMBER
    issued = linkedin.sign_in.issue("li-id", frozenset({"openid", "profile"}), MEMBER)
    headers = {
        "Authorization": f"Bearer {issued['access_token']}",
        "LinkedIn-Version": "202501",
        "X-Restli-Protocol-Version": "2.0.0",
    }
    post = {
        "author": f"urn:li:person:{MEMBER['sub']}",
        "commentary": "hello",
        "visibility": "PUBLIC",
        "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
        "lifecycleState": "PUBLISHED",
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{linkedin.url}/rest/posts", json=post, headers=headers) as answer:
            assert answer.status == 403
        allowed = linkedin.sign_in.issue("li-id", frozenset({"openid", "profile", "w_member_social"}), MEMBER)
        headers["Authorization"] = f"Bearer {allowed['access_token']}"
        async with http.post(
            f"{linkedin.url}/rest/posts", json={**post, "author": linkedin.organization}, headers=headers
        ) as answer:
            assert answer.status == 403  # not the page's to post as
        async with http.post(f"{linkedin.url}/rest/posts", json=post, headers=headers) as answer:
            assert answer.status == 201


def dms(slack: FakeSlack, words: str) -> list[dict[str, Any]]:
    return [m for m in slack.messages(f"D{LEADER}") if words in m.get("text", "")]


async def test_an_x_token_is_renewed_before_it_expires_and_when_x_refuses_it(
    start_relay: Callable[..., Awaitable[Relay]], x: FakeX, slack: FakeSlack, browser: Browser
) -> None:
    now = [time.time()]
    relay = await relay_with_accounts(start_relay, x, clock=lambda: now[0])
    await connect_in_browser(browser, await sign_in_link(relay, LEADER, "X"))
    now[0] += 7200 - 60  # a minute before X's two hours are up
    first = preview_id(await relay.command(LEADER, "First, on a token renewed in time"))
    assert x.sign_in.grants == ["authorization_code", "refresh_token"]  # renewed before it was used
    await relay.click(LEADER, "approve", first)
    await final_report(relay, first)
    bearer = [
        c.headers["Authorization"] for c in x.calls_to("POST /2/tweets") if "Bearer" in c.headers["Authorization"]
    ]
    assert bearer == [f"Bearer {list(x.sign_in.tokens)[-1]}"]  # the renewed token, not the first

    for issued in x.sign_in.tokens.values():  # X stops accepting the token before its time (revoked at X)
        issued.revoked = True
    second = preview_id(await relay.command(LEADER, "Second, after X refused the token"))
    await relay.click(LEADER, "approve", second)
    await final_report(relay, second)
    assert x.sign_in.grants[-1] == "refresh_token"
    assert {t.text for t in x.tweets if t.author_id == CEO["id"]} == {
        "First, on a token renewed in time",
        "Second, after X refused the token",
    }

    for issued in x.sign_in.tokens.values():
        issued.revoked = True
    x.sign_in.refresh_tokens.clear()  # and now the refresh token too: only the leader can fix it
    third = preview_id(await relay.command(LEADER, "Third, nothing left to renew with"))
    await relay.click(LEADER, "approve", third)
    failed = await slack.wait_for(
        lambda: [
            report_text(m)
            for m in slack.messages(f"D{LEADER}")
            if third in m.get("text", "") and "reconnect it" in report_text(m)
        ]
    )
    assert "X refused the sign-in of @ceo: reconnect it with the accounts command" in failed[-1]
    (dm,) = await slack.wait_for(lambda: dms(slack, "must be connected again"))
    assert buttons(dm)["Connect again"]["url"].startswith(relay_public(relay))
    flagged = await relay.command(LEADER, "Fourth, flagged before approval")
    assert "must be connected again" in report_text(flagged)
    key = await relay.click(LEADER, "approve", preview_id(flagged))
    assert "must be connected again" in (await relay.answer(key))["text"]


def relay_public(relay: Relay) -> str:
    return relay.url.replace("localhost", "127.0.0.1")


async def test_the_owner_hears_once_a_week_before_a_linkedin_token_expires(
    start_relay: Callable[..., Awaitable[Relay]], x: FakeX, slack: FakeSlack, linkedin: FakeLinkedIn, browser: Browser
) -> None:
    now = [time.time()]
    port = free_port()
    linkedin.sign_in.register(f"http://127.0.0.1:{port}/oauth/linkedin/callback", "li-id", "li-secret")
    linkedin.sign_in.user = MEMBER
    relay = await relay_with_accounts(
        start_relay,
        x,
        port=port,
        clock=lambda: now[0],
        LINKEDIN_CLIENT_ID="li-id",
        LINKEDIN_CLIENT_SECRET="li-secret",
        LINKEDIN_SIGN_IN_URL=linkedin.url,
        LINKEDIN_API_URL=linkedin.url,
    )
    await connect_in_browser(browser, await sign_in_link(relay, LEADER, "LinkedIn"))
    renewals = relay.server.app[RENEWALS]
    now[0] += 52 * 86400
    assert await renewals.warn_expiring() == 0  # eight days left: not yet
    now[0] += 2 * 86400
    assert await renewals.warn_expiring() == 1
    assert await renewals.warn_expiring() == 0  # once
    (dm,) = await slack.wait_for(lambda: dms(slack, "stops accepting broadcasts"))
    assert "in 6 days" in dm["text"] and "LinkedIn gives no way to renew" in dm["text"]
    assert "/oauth/linkedin/start" in buttons(dm)["Connect again"]["url"]
    assert "The CEO on LinkedIn" in report_text(await relay.command(LEADER, "Still a week to go"))
    now[0] += 7 * 86400
    flagged = await relay.command(LEADER, "Too late now")
    assert "must be connected again (its sign-in has expired)" in report_text(flagged)


@pytest.mark.postgres_only
async def test_two_instances_renew_a_token_once(
    start_relay: Callable[..., Awaitable[Relay]], x: FakeX, browser: Browser
) -> None:
    """X's refresh tokens are single use: two instances renewing at once would lose the account."""
    now = [time.time()]
    first = await relay_with_accounts(start_relay, x, clock=lambda: now[0])
    second = await relay_with_accounts(start_relay, x, clock=lambda: now[0])
    await connect_in_browser(browser, await sign_in_link(first, LEADER, "X"))
    (account,) = await first.server.app[ACCOUNTS].mine({f"slack:{LEADER}"})
    now[0] += 7200 - 60
    renewed = await asyncio.gather(
        *(relay.server.app[RENEWALS].fresh(account) for relay in (first, second, first, second))
    )
    assert x.sign_in.grants == ["authorization_code", "refresh_token"]
    assert all(a is not None and a.broken is None and a.expires_at > now[0] + 3600 for a in renewed)


async def test_a_teams_leader_connects_from_the_teams_bot_and_disconnects(
    start_relay: Callable[..., Awaitable[Relay]], x: FakeX, connector: FakeConnector, browser: Browser
) -> None:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    x.sign_in.register(f"{public}/oauth/x/callback", "x-client-id", "x-client-secret")
    x.sign_in.user = CEO
    relay = await start_relay(
        teams_config(),
        port=port,
        RELAY_SECRET_KEY=KEY,
        RELAY_PUBLIC_URL=public,
        X_CLIENT_ID="x-client-id",
        X_CLIENT_SECRET="x-client-secret",
        X_SIGN_IN_URL=x.api_url,
        **TEAMS_ENV,
    )
    teams = TeamsClient(relay.url, relay.http)
    chat = personal(TEAMS_CEO)["id"]
    status, _ = await teams.send(message(connector.service_url, TEAMS_CEO, "accounts"))
    assert status in (200, 202)
    (card,) = await connector.wait_for(lambda: connector.cards(chat))
    links = {a["title"]: a["url"] for a in card["actions"] if a["type"] == "Action.OpenUrl"}
    assert "Connect Mastodon" in card_text(card) and "Connect Bluesky" in card_text(card)
    assert "is connected" in await connect_in_browser(browser, links["Connect X"])
    said = await connector.wait_for(lambda: [m for m in connector.posted(chat) if "@ceo is connected" in str(m)])
    assert said
    # The same person in Slack ([people]) sees it as theirs.
    assert "*X* @ceo" in report_text(await relay.command(LEADER, "accounts"))
    (account,) = await relay.server.app[ACCOUNTS].mine({f"teams:{TEAMS_CEO}"})
    status, body = await teams.send(
        action(connector.service_url, TEAMS_CEO, "disconnect", {"account": account.id}, "card")
    )
    assert status == 200 and "disconnected" in card_text(body["value"])
    assert x.sign_in.revoked and await relay.server.app[ACCOUNTS].mine({f"teams:{TEAMS_CEO}"}) == []


@pytest.mark.sqlite_only  # the config alone
@pytest.mark.parametrize(
    ("audience", "problem"),
    [
        ('mine = { destinations = [], own_accounts = "yes" }', "audiences.mine.own_accounts: must be true or false"),
        (
            'mine = { destinations = ["company-x"], own = true }',
            "audiences.mine.own: unknown key; known keys: destinations, own_accounts",
        ),
        ("mine = { destinations = [] }", "must be a non-empty list of destination names"),
        ('mine = { destinations = ["nowhere"], own_accounts = true }', "'nowhere' is not a destination"),
    ],
)
def test_a_wrong_own_accounts_audience_is_refused_at_start(tmp_path: Path, audience: str, problem: str) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(config_text() + audience + "\n")
    settings = settings_from_env({"RELAY_CONFIG": str(path), "RELAY_DB": str(tmp_path / "r.db")})
    with pytest.raises(ConfigError, match=re.escape(problem)):
        load_config(settings, SPECS)


@pytest.mark.sqlite_only
def test_an_own_accounts_audience_may_hold_only_them(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(config_text() + "mine = { destinations = [], own_accounts = true }\n")
    env = {"RELAY_CONFIG": str(path), "X_API_KEY": "k", "X_API_SECRET": "s"}
    env |= {"X_ACCESS_TOKEN": "t", "X_ACCESS_TOKEN_SECRET": "u", "SLACK_BOT_TOKEN": "x", "SLACK_SIGNING_SECRET": "y"}
    config = load_config(settings_from_env(env), SPECS)
    assert config.audiences["mine"] == () and config.own_accounts == {"mine"}
    assert "everyone" not in config.own_accounts


async def test_no_token_code_state_or_key_reaches_the_log(
    start_relay: Callable[..., Awaitable[Relay]], x: FakeX, browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    relay = await relay_with_accounts(start_relay, x)
    own, callback = await callback_for(relay, browser, x)
    assert "is connected" in await answer_page(own, callback)
    await relay.command(LEADER, "Said as myself")
    query = parse_qs(urlsplit(callback).query)
    secrets_seen = [query["code"][0], query["state"][0], KEY, *x.sign_in.tokens, *x.sign_in.refresh_tokens]
    # Everything logged at any level, but the test server's own access log (the relay serves with none).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert not [secret for secret in secrets_seen if secret in logged]


async def test_an_unused_threads_token_is_renewed_before_its_60_days_run_out(
    start_relay: Callable[..., Awaitable[Relay]], x: FakeX, browser: Browser
) -> None:
    """Threads renews only a token still valid: one nobody posts with is renewed by the relay's watch."""
    now = [time.time()]
    port = free_port()
    async with FakeThreadsSignIn() as threads:
        threads.sign_in.register(f"http://127.0.0.1:{port}/oauth/threads/callback", "th-id", "th-secret")
        threads.sign_in.user = {"id": "1789", "username": "the.ceo"}
        relay = await relay_with_accounts(
            start_relay,
            x,
            port=port,
            clock=lambda: now[0],
            THREADS_APP_ID="th-id",
            THREADS_APP_SECRET="th-secret",
            THREADS_SIGN_IN_URL=threads.origin,
            THREADS_API_URL=f"{threads.origin}/v1.0",
        )
        await connect_in_browser(browser, await sign_in_link(relay, LEADER, "Threads"))
        accounts, renewals = relay.server.app[ACCOUNTS], relay.server.app[RENEWALS]
        assert await renewals.renew_idle() == 0  # 60 days ahead: nothing to do
        days = 54 * 86400
        now[0] += days
        threads.sign_in.skew += days
        assert await renewals.renew_idle() == 1
        assert threads.calls == ["exchange th_exchange_token", "refresh th_refresh_token"]
        (account,) = await accounts.mine({f"slack:{LEADER}"})
        assert account.expires_at is not None and account.expires_at > now[0] + 59 * 86400
        assert account.broken is None and await renewals.renew_idle() == 0
        assert await renewals.warn_expiring() == 0  # renewable: no warning
