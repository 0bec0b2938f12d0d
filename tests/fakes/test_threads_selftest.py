"""Self-checks of the Threads fake over real HTTP: it refuses what Threads refuses, in the Graph API's shape."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from .threads import FakeThreads

pytestmark = pytest.mark.asyncio


class Client:
    """Speaks to the fake as Meta's docs show: parameters in the form of a POST, in the query otherwise."""

    def __init__(self, http: aiohttp.ClientSession, fake: FakeThreads, token: str | None = "threads-token") -> None:
        self.http, self.fake, self.token = http, fake, token

    async def call(self, method: str, path: str, **params: str) -> tuple[int, Any]:
        given = {**params, **({"access_token": self.token} if self.token is not None else {})}
        where = f"{self.fake.api_url}/{path}"
        options: dict[str, Any] = {"data": given} if method == "POST" else {"params": given}
        async with self.http.request(method, where, **options) as response:
            return response.status, await response.json()

    async def container(self, text: str, **params: str) -> str:
        status, body = await self.call("POST", "me/threads", media_type="TEXT", text=text, **params)
        assert status == 200, body
        return str(body["id"])

    async def post(self, text: str, **params: str) -> str:
        status, body = await self.call("POST", "me/threads_publish", creation_id=await self.container(text, **params))
        assert status == 200, body
        return str(body["id"])


@pytest.fixture
async def fake() -> AsyncIterator[FakeThreads]:
    async with FakeThreads() as threads:
        yield threads


@pytest.fixture
async def client(fake: FakeThreads) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as http:
        yield Client(http, fake)


def error_of(body: Any) -> tuple[int, int | None]:
    error = body["error"]
    assert {"message", "type", "code", "fbtrace_id"} <= set(error), error
    return error["code"], error.get("error_subcode")


async def test_a_post_is_a_container_published_then_listed_with_its_permalink(
    client: Client, fake: FakeThreads
) -> None:
    container = await client.container("Hello")
    assert (await client.call("GET", container, fields="status"))[1]["status"] == "FINISHED"
    status, body = await client.call("POST", "me/threads_publish", creation_id=container)
    assert status == 200
    post = body["id"]
    assert (await client.call("GET", container, fields="status"))[1]["status"] == "PUBLISHED"
    _, listed = await client.call("GET", "me/threads", fields="id,text,permalink,timestamp")
    assert listed["data"] == [
        {
            "id": post,
            "text": "Hello",
            "permalink": fake.permalink(fake.posts[0]),
            "timestamp": listed["data"][0]["timestamp"],
        }
    ]
    assert listed["data"][0]["timestamp"].endswith("+0000")


async def test_publishing_before_the_container_is_finished_is_refused(client: Client, fake: FakeThreads) -> None:
    fake.processing = 0.3
    container = await client.container("Slow")
    assert (await client.call("GET", container, fields="status,error_message"))[1]["status"] == "IN_PROGRESS"
    status, body = await client.call("POST", "me/threads_publish", creation_id=container)
    assert status == 400 and error_of(body) == (9007, 2207027)
    await asyncio.sleep(0.3)  # the fake's own processing time, which is what is being checked
    assert (await client.call("POST", "me/threads_publish", creation_id=container))[0] == 200
    assert len(fake.posts) == 1


async def test_unknown_published_and_expired_containers_cannot_be_published(client: Client, fake: FakeThreads) -> None:
    assert error_of((await client.call("POST", "me/threads_publish", creation_id="123"))[1]) == (24, 4279009)
    container = await client.container("Once")
    assert (await client.call("POST", "me/threads_publish", creation_id=container))[0] == 200
    assert (await client.call("POST", "me/threads_publish", creation_id=container))[0] == 400
    old = await client.container("Too late")
    fake.expire(old)
    assert (await client.call("GET", old, fields="status"))[1]["status"] == "EXPIRED"
    assert error_of((await client.call("POST", "me/threads_publish", creation_id=old))[1])[0] == 24
    assert [post.text for post in fake.posts] == ["Once"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"text": "a" * 501}, 100),
        ({"text": "😀" * 126}, 100),  # 504 by Threads' count: an emoji is its 4 UTF-8 bytes
        ({"text": " ".join(f"https://example.com/{i}" for i in range(6))}, 100),
        ({"text": "ok", "reply_control": "nobody"}, 100),
        ({"text": "ok", "media_type": "POLL"}, 100),
        ({"text": "ok", "reply_to_id": "999"}, 100),
        ({"text": ""}, 100),
    ],
)
async def test_containers_threads_would_refuse_are_refused(client: Client, params: dict[str, str], code: int) -> None:
    status, body = await client.call("POST", "me/threads", **{"media_type": "TEXT", **params})
    assert status == 400 and error_of(body)[0] == code


async def test_exactly_500_characters_and_5_links_are_taken(client: Client) -> None:
    assert await client.container("a" * 500)
    assert await client.container("😀" * 125)
    assert await client.container(" ".join(f"https://example.com/{i}" for i in range(5)))


async def test_reply_control_and_replies_are_kept(client: Client, fake: FakeThreads) -> None:
    root = await client.post("Root", reply_control="mentioned_only")
    reply = await client.post("Reply", reply_to_id=root, reply_control="mentioned_only")
    _, replies = await client.call("GET", "me/replies", fields="id,text,replied_to")
    assert replies["data"] == [{"id": reply, "text": "Reply", "replied_to": {"id": root}}]
    _, threads = await client.call("GET", "me/threads", fields="id,text")
    assert [post["id"] for post in threads["data"]] == [root]
    assert [post.reply_control for post in fake.posts] == ["mentioned_only", "mentioned_only"]


async def test_a_missing_bad_or_expired_token_is_refused_in_graphs_shape(fake: FakeThreads) -> None:
    async with aiohttp.ClientSession() as http:
        assert error_of((await Client(http, fake, token=None).call("GET", "me/threads"))[1])[0] == 2500
        assert error_of((await Client(http, fake, token="nope").call("GET", "me/threads"))[1])[0] == 190
        fake.token_expired = True
        assert error_of((await Client(http, fake).call("GET", "me/threads"))[1]) == (190, 463)


async def test_the_daily_allowances_are_counted_and_enforced(client: Client, fake: FakeThreads) -> None:
    fake.use_allowance(posts=248, deletes=99)
    first, second = await client.post("The 249th"), await client.post("The 250th")
    status, body = await client.call("POST", "me/threads_publish", creation_id=await client.container("251st"))
    assert status == 400 and error_of(body) == (9, 2207042)
    _, limit = await client.call("GET", "me/threads_publishing_limit", fields="quota_usage,config,delete_quota_usage")
    day = {"quota_total": 250, "quota_duration": 86400}
    assert limit["data"] == [{"quota_usage": 250, "config": day, "delete_quota_usage": 99}]
    assert (await client.call("DELETE", first))[1] == {"success": True, "deleted_id": first}
    status, body = await client.call("DELETE", second)
    assert status == 400 and error_of(body) == (9, 2207042)
    assert [post.id for post in fake.posts] == [second]
