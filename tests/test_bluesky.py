"""Bluesky against the real thing: the reference PDS validates every record against the lexicon.

A proxy in front of it injects the faults (lost answers, rate limits) the PDS itself never produces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import LEADER, preview_id
from tests.fakes import Fault
from tests.fakes.proxy import FaultyProxy
from tests.pds_fixture import Pds

HANDLE = "newsroom.test"
POST = "app.bsky.feed.post"


def config(replies: str = "open") -> str:
    return f"""
[policy]
leaders = ["slack:{LEADER}"]
default_audience = "bluesky"
replies = "{replies}"

[destinations.company-bluesky]
kind = "bluesky"
handle = "{HANDLE}"

[audiences]
bluesky = ["company-bluesky"]
"""


@pytest.fixture
async def proxy(pds: Pds) -> AsyncIterator[FaultyProxy]:
    async with FaultyProxy(pds.url) as fake:
        yield fake


async def start(start_relay, pds: Pds, proxy: FaultyProxy, replies: str = "open", password: str | None = None):  # type: ignore[no-untyped-def]
    app_password = password or pds.account(HANDLE).app_password
    return await start_relay(config(replies), BLUESKY_PDS_URL=proxy.url, BLUESKY_APP_PASSWORD=app_password)


async def send(relay, text: str) -> str:  # type: ignore[no-untyped-def]
    await relay.click(LEADER, "approve", preview_id(await relay.command(LEADER, text)))
    return await relay.final_report()


async def record(pds: Pds, collection: str, rkey: str) -> dict[str, Any] | None:
    async with aiohttp.ClientSession() as http:
        params = {"repo": pds.account(HANDLE).did, "collection": collection, "rkey": rkey}
        async with http.get(f"{pds.url}/xrpc/com.atproto.repo.getRecord", params=params) as response:
            return (await response.json())["value"] if response.status == 200 else None


async def records(pds: Pds, collection: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        params = {"repo": pds.account(HANDLE).did, "collection": collection, "limit": "100"}
        async with http.get(f"{pds.url}/xrpc/com.atproto.repo.listRecords", params=params) as response:
            return list((await response.json())["records"])


async def posts_of(report: str) -> list[str]:
    """The record keys of the posts the report links to."""
    return [
        part.split("/post/")[1].split(">")[0].split("|")[0] for part in report.split("https://bsky.app/profile/")[1:]
    ]


async def test_a_post_with_a_link_after_an_emoji_points_at_the_right_bytes(
    start_relay, pds: Pds, proxy: FaultyProxy
) -> None:
    relay = await start(start_relay, pds, proxy)
    report = await send(relay, "🎉 Read https://example.com/q3 and #results")
    assert "1 of 1 delivered." in report
    [rkey] = await posts_of(report)
    post = await record(pds, POST, rkey)
    assert post is not None and post["text"] == "🎉 Read https://example.com/q3 and #results"
    encoded = post["text"].encode()
    spans = {f["features"][0]["$type"].split("#")[1]: f["index"] for f in post["facets"]}
    link, tag = spans["link"], spans["tag"]
    assert encoded[link["byteStart"] : link["byteEnd"]] == b"https://example.com/q3"
    assert encoded[tag["byteStart"] : tag["byteEnd"]] == b"#results"
    assert len(proxy.calls_to("POST /xrpc/com.atproto.server.createSession")) == 1


async def test_a_long_text_becomes_a_reply_thread_the_pds_accepts(start_relay, pds: Pds, proxy: FaultyProxy) -> None:
    relay = await start(start_relay, pds, proxy)
    text = " ".join(
        f"Point {i}: we invest in the people who serve our customers, thread {id(proxy)}." for i in range(9)
    )
    report = await send(relay, text)
    [root_key] = await posts_of(report)  # the report links the first post of the thread
    parts = [r for r in await records(pds, POST) if f"thread {id(proxy)}" in r["value"]["text"]]
    total = len(parts)
    assert total >= 2
    by_number = {r["value"]["text"].rsplit("(", 1)[1].split("/")[0]: r for r in parts}
    root = by_number["1"]
    assert root["uri"].endswith(f"/{root_key}") and "reply" not in root["value"]
    for number in range(2, total + 1):
        reply = by_number[str(number)]["value"]["reply"]
        assert reply["root"]["uri"] == root["uri"]
        assert reply["parent"]["uri"] == by_number[str(number - 1)]["uri"]
    assert len(proxy.calls_to("POST /xrpc/com.atproto.server.createSession")) == 1, "one login for the thread"


async def test_one_way_mode_writes_a_threadgate_and_a_postgate(start_relay, pds: Pds, proxy: FaultyProxy) -> None:
    relay = await start(start_relay, pds, proxy, replies="none")
    ack = await relay.command(LEADER, "Distribution, not conversation")
    assert "nobody can reply or quote it" in str(ack)
    await relay.click(LEADER, "approve", preview_id(ack))
    [rkey] = await posts_of(await relay.final_report())
    gate = await record(pds, "app.bsky.feed.threadgate", rkey)
    postgate = await record(pds, "app.bsky.feed.postgate", rkey)
    assert gate is not None and gate["allow"] == [] and gate["post"].endswith(f"/{POST}/{rkey}")
    assert postgate is not None and postgate["embeddingRules"] == [{"$type": "app.bsky.feed.postgate#disableRule"}]


async def test_restricted_replies_allow_only_followed_accounts(start_relay, pds: Pds, proxy: FaultyProxy) -> None:
    relay = await start(start_relay, pds, proxy, replies="restricted")
    [rkey] = await posts_of(await send(relay, "Followers may answer"))
    gate = await record(pds, "app.bsky.feed.threadgate", rkey)
    assert gate is not None and gate["allow"] == [{"$type": "app.bsky.feed.threadgate#followingRule"}]
    assert await record(pds, "app.bsky.feed.postgate", rkey) is None


async def test_a_lost_answer_is_retried_with_the_same_key_and_posts_once(
    start_relay, pds: Pds, proxy: FaultyProxy
) -> None:
    proxy.faults.add("POST /xrpc/com.atproto.repo.applyWrites", Fault.drop_after())
    relay = await start(start_relay, pds, proxy)
    report = await send(relay, "Exactly once on Bluesky")
    assert "1 of 1 delivered." in report
    first, second = proxy.calls_to("POST /xrpc/com.atproto.repo.applyWrites")
    [rkey] = await posts_of(report)
    assert (await record(pds, POST, rkey) or {}).get("text") == "Exactly once on Bluesky"
    assert first.fault is not None and second.fault is None


async def test_a_rate_limited_write_waits_and_posts_once(start_relay, pds: Pds, proxy: FaultyProxy) -> None:
    proxy.faults.add(
        "POST /xrpc/com.atproto.repo.applyWrites",
        Fault.status(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, {"Retry-After": "1"}),
    )
    relay = await start(start_relay, pds, proxy)
    assert "1 of 1 delivered." in await send(relay, "After the limit")
    first, second = proxy.calls_to("POST /xrpc/com.atproto.repo.applyWrites")
    assert second.at - first.at >= 1.0


async def test_an_expired_session_is_refreshed_not_recreated(start_relay, pds: Pds, proxy: FaultyProxy) -> None:
    proxy.faults.add(
        "POST /xrpc/com.atproto.repo.applyWrites",
        Fault.status(400, {"error": "ExpiredToken", "message": "Token has expired"}),
    )
    relay = await start(start_relay, pds, proxy)
    assert "1 of 1 delivered." in await send(relay, "Fresh token")
    assert len(proxy.calls_to("POST /xrpc/com.atproto.server.refreshSession")) == 1
    assert len(proxy.calls_to("POST /xrpc/com.atproto.server.createSession")) == 1


async def test_a_wrong_app_password_says_which_variable_to_set(start_relay, pds: Pds, proxy: FaultyProxy) -> None:
    relay = await start(start_relay, pds, proxy, password="aaaa-bbbb-cccc-dddd")
    report = await send(relay, "Locked out")
    assert "create a new app password and set BLUESKY_APP_PASSWORD" in report
