"""Self-checks of the loopback fakes over real HTTP, with the clients the bot uses."""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from oauthlib.oauth1 import Client as OAuth1Client
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from yarl import URL

from .faults import Fault, FaultKind, FaultPlan
from .oauth1 import OAuth1Credentials
from .slack import FakeSlack
from .x import FakeX

pytestmark = pytest.mark.asyncio

METADATA = {"event_type": "relay_broadcast", "event_payload": {"broadcast_id": "b1"}}


def slack_client(slack: FakeSlack, token: str = "xoxb-test") -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=slack.api_url, retry_handlers=[])


async def test_slack_metadata_round_trips_through_history() -> None:
    async with FakeSlack() as slack:
        client = slack_client(slack)
        posted = await client.chat_postMessage(channel="C0ANN", text="hello", metadata=METADATA)
        with_metadata = await client.conversations_history(channel="C0ANN", include_all_metadata=True)
        plain = await client.conversations_history(channel="C0ANN")

    assert [m["ts"] for m in with_metadata["messages"]] == [posted["ts"]]
    assert with_metadata["messages"][0]["metadata"] == METADATA
    assert "metadata" not in plain["messages"][0]
    assert slack.calls_to("chat.postMessage")[0].params["metadata"] == METADATA


async def test_slack_form_body_dm_and_bad_token() -> None:
    async with FakeSlack() as slack:
        form = {"channel": "U0ALICE", "text": "hi", "metadata": json.dumps(METADATA)}
        posted = await slack_client(slack).api_call("chat.postMessage", data=form)
        with pytest.raises(SlackApiError) as rejected:
            await slack_client(slack, token="xoxb-wrong").auth_test()

    assert posted["channel"] == "DU0ALICE"
    assert slack.messages("DU0ALICE")[0]["metadata"] == METADATA
    assert rejected.value.response["error"] == "invalid_auth"


async def test_slack_rate_limit_is_consumed_once() -> None:
    async with FakeSlack() as slack:
        slack.faults.add("chat.postMessage", slack.rate_limited(retry_after=3))
        client = slack_client(slack)
        with pytest.raises(SlackApiError) as limited:
            await client.chat_postMessage(channel="C1", text="first")
        assert slack.messages("C1") == []
        await client.chat_postMessage(channel="C1", text="second")

    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "3"
    assert limited.value.response["error"] == "ratelimited"
    assert [m["text"] for m in slack.messages("C1")] == ["second"]
    assert slack.faults.pending == []


async def test_slack_drop_after_lands_but_client_sees_disconnect() -> None:
    async with FakeSlack() as slack:
        slack.faults.add("chat.postMessage", Fault.drop_after())
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await slack_client(slack).chat_postMessage(channel="C1", text="landed?")

    assert [m["text"] for m in slack.messages("C1")] == ["landed?"]
    assert slack.calls_to("chat.postMessage")[0].fault == Fault.drop_after()


async def test_slack_predicate_permanent_fault_and_clear() -> None:
    async with FakeSlack() as slack:
        unavailable = Fault.status(503, {"ok": False, "error": "service_unavailable"})
        slack.faults.add(
            "chat.postMessage",
            unavailable,
            times=None,
            when=lambda p: p.get("channel") == "C0STAFF",
        )
        slack.channel_errors["C0GONE"] = "is_archived"
        client = slack_client(slack)
        for _ in range(2):
            with pytest.raises(SlackApiError):
                await client.chat_postMessage(channel="C0STAFF", text="staff")
        await client.chat_postMessage(channel="C0PUBLIC", text="public")
        with pytest.raises(SlackApiError) as archived:
            await client.chat_postMessage(channel="C0GONE", text="gone")
        slack.faults.clear()
        await client.chat_postMessage(channel="C0STAFF", text="staff")

    assert archived.value.response["error"] == "is_archived"
    assert [m["text"] for m in slack.messages("C0STAFF")] == ["staff"]
    assert [m["text"] for m in slack.messages("C0PUBLIC")] == ["public"]


async def test_hang_answers_on_release_and_is_dropped_on_close() -> None:
    async with FakeSlack() as slack:
        slack.faults.add("chat.postMessage", Fault.hang(), times=2)
        client = slack_client(slack)
        first = asyncio.create_task(client.chat_postMessage(channel="C1", text="one"))
        await slack.wait_for(lambda: slack.messages("C1"))
        assert not first.done()
        slack.release()
        assert (await first)["ok"]
        second = asyncio.create_task(client.chat_postMessage(channel="C1", text="two"))
        await slack.wait_for(lambda: len(slack.messages("C1")) == 2)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await second


async def test_delay_response_url_and_wait_for_timeout() -> None:
    async with FakeSlack() as slack, aiohttp.ClientSession() as session:
        slack.faults.add("response_url", Fault.delay(0.01))
        async with session.post(slack.response_url("k1"), json={"text": "done"}) as response:
            assert (response.status, await response.text()) == (200, "ok")
        with pytest.raises(AssertionError, match="response_url"):
            await slack.wait_for(lambda: False, timeout=0.05)

    assert slack.responses == {"k1": [{"text": "done"}]}
    assert slack.calls_to("response_url")[0].params == {"key": "k1", "text": "done"}


async def x_request(
    x: FakeX,
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    credentials: OAuth1Credentials | None = None,
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    """Sign like tweepy (oauthlib over the exact URL and query), send JSON with aiohttp."""
    creds = credentials or x.credentials
    signer = OAuth1Client(
        creds.consumer_key,
        client_secret=creds.consumer_secret,
        resource_owner_key=creds.access_token,
        resource_owner_secret=creds.access_token_secret,
    )
    url = URL(x.api_url + path).with_query(sorted((query or {}).items()))
    headers = {"Content-Type": "application/json"} if body is not None else {}
    signed_url, signed_headers, _ = signer.sign(str(url), http_method=method, headers=headers)
    data = json.dumps(body) if body is not None else None
    async with session.request(method, URL(signed_url, encoded=True), data=data, headers=signed_headers) as resp:
        return resp.status, await resp.json(), resp.headers


async def test_x_post_signature_duplicate_length_and_reply_checks() -> None:
    async with FakeX() as x, aiohttp.ClientSession() as session:
        status, created, _ = await x_request(x, session, "POST", "/2/tweets", body={"text": "hello"})
        forged = OAuth1Credentials("x-key", "wrong-secret", "x-token", "x-token-secret")
        unauthorized = await x_request(x, session, "POST", "/2/tweets", body={"text": "new"}, credentials=forged)
        duplicate = await x_request(x, session, "POST", "/2/tweets", body={"text": "hello"})
        too_long = await x_request(x, session, "POST", "/2/tweets", body={"text": "a" * 281})
        orphan_reply = {"text": "re", "reply": {"in_reply_to_tweet_id": "1"}}
        orphan = await x_request(x, session, "POST", "/2/tweets", body=orphan_reply)

    assert status == 201
    assert created["data"] == {
        "id": x.tweets[0].id,
        "text": "hello",
        "edit_history_tweet_ids": [x.tweets[0].id],
    }
    assert unauthorized[0] == 401
    assert unauthorized[1] == {
        "title": "Unauthorized",
        "type": "about:blank",
        "status": 401,
        "detail": "Unauthorized",
    }
    assert [call.authorized for call in x.calls_to("POST /2/tweets")] == [
        True,
        False,
        True,
        True,
        True,
    ]
    assert duplicate[0] == 403
    assert duplicate[1]["detail"] == "You are not allowed to create a Tweet with duplicate content."
    assert too_long[0] == 403
    assert too_long[1]["detail"] == "Your Tweet text is too long."
    assert orphan[0] == 400
    assert [tweet.text for tweet in x.tweets] == ["hello"]


async def test_x_timeline_window_fields_and_forbidden() -> None:
    now = datetime(2026, 11, 28, 3, 51, 19, tzinfo=UTC)
    async with FakeX(clock=lambda: now) as x, aiohttp.ClientSession() as session:
        x.add_tweet("old", created_at=now - timedelta(hours=2))
        root = x.add_tweet("root")
        reply = x.add_tweet("thread", in_reply_to=root.id)
        path = f"/2/users/{x.user_id}/tweets"
        fields = "created_at,conversation_id,in_reply_to_user_id,referenced_tweets"
        query = {
            "max_results": "5",
            "start_time": "2026-11-28T03:00:00Z",
            "tweet.fields": fields,
        }
        status, timeline, _ = await x_request(x, session, "GET", path, query=query)
        empty = await x_request(x, session, "GET", path, query={"start_time": "2026-11-29T00:00:00Z"})
        misspelt = await x_request(x, session, "GET", path, query={"tweet_fields": "created_at"})
        x.timeline_forbidden = True
        forbidden = await x_request(x, session, "GET", path)

    assert status == 200
    assert [t["id"] for t in timeline["data"]] == [reply.id, root.id]
    assert timeline["data"][0] == {
        "id": reply.id,
        "text": "thread",
        "edit_history_tweet_ids": [reply.id],
        "created_at": "2026-11-28T03:51:19.000Z",
        "conversation_id": root.id,
        "in_reply_to_user_id": x.user_id,
        "referenced_tweets": [{"type": "replied_to", "id": root.id}],
    }
    assert timeline["meta"] == {
        "result_count": 2,
        "newest_id": reply.id,
        "oldest_id": root.id,
    }
    assert empty[:2] == (200, {"meta": {"result_count": 0}})
    assert misspelt[0] == 400
    assert forbidden[0] == 403


async def test_x_rate_limit_drop_before_me_and_delete() -> None:
    async with FakeX() as x, aiohttp.ClientSession() as session:
        x.faults.add("GET /2/users/me", x.rate_limited(reset_in=5))
        x.faults.add("POST /2/tweets", Fault.drop_before())
        limited_status, limited, limited_headers = await x_request(x, session, "GET", "/2/users/me")
        me = await x_request(x, session, "GET", "/2/users/me")
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await x_request(x, session, "POST", "/2/tweets", body={"text": "lost"})
        tweet = x.add_tweet("to delete")
        deleted = await x_request(x, session, "DELETE", f"/2/tweets/{tweet.id}")

    assert limited_status == 429
    assert limited["title"] == "Too Many Requests"
    assert limited_headers["x-rate-limit-remaining"] == "0"
    assert int(limited_headers["x-rate-limit-reset"]) >= int(time.time())
    assert me[:2] == (
        200,
        {"data": {"id": x.user_id, "name": "Relay Bot", "username": "relaybot"}},
    )
    assert x.tweets == []
    assert [t.text for t in x.deleted] == ["to delete"]
    assert deleted[1] == {"data": {"deleted": True}}
    assert len(x.calls_to("POST /2/tweets")) == 1


async def test_a_storm_is_drawn_from_its_seed_for_its_count_and_makes_each_fault_as_its_request_comes() -> None:
    made: list[Fault] = []

    def limited() -> Fault:
        made.append(FakeSlack.rate_limited(retry_after=len(made) + 1))
        return made[-1]

    def weather(seed: int) -> list[Fault | None]:
        plan = FaultPlan()
        mix = [(None, 2), (Fault.drop_after(), 1), (limited, 1)]
        plan.storm("chat.postMessage", mix, random.Random(seed), times=20, when=lambda p: p["channel"] == "C1")
        assert plan.take("chat.postMessage", {"channel": "C2"}) is None
        return [plan.take("chat.postMessage", {"channel": "C1"}) for _ in range(25)]

    def kinds(faults: list[Fault | None]) -> list[tuple[FaultKind, int] | None]:
        return [(fault.kind, fault.code) if fault else None for fault in faults]

    first = weather(7)
    assert kinds(weather(7)) == kinds(first), "the same seed, the same weather"
    assert first[20:] == [None] * 5, "over after its count"
    assert None in first and Fault.drop_after() in first
    rate_limited = [fault for fault in first if fault is not None and fault.code == 429]
    assert rate_limited == made[: len(rate_limited)], "each made when its request came"
    assert len({dict(fault.headers)["Retry-After"] for fault in rate_limited}) == len(rate_limited) > 1
