"""The local reference PDS behaves as the Bluesky adapter will need: pinned here over plain HTTP with aiohttp.

These also record what the PDS does NOT check (open unions, facet byte ranges), which the adapter must check itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from tests.pds_fixture import Pds, PdsAccount

POST = "app.bsky.feed.post"
LINK = "app.bsky.richtext.facet#link"
_B32 = "234567abcdefghijklmnopqrstuvwxyz"
_last_tid = 0


def new_tid() -> str:
    """A fresh TID (the record key kind posts and gates use), as a client picking its own rkey would make."""
    global _last_tid
    value = max(time.time_ns() // 1000 << 10, _last_tid + 1)
    _last_tid = value
    return "".join(_B32[(value >> (5 * i)) & 31] for i in reversed(range(13)))


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def post_with_link(prefix: str = "Big news 🎉 read ", link: str = "https://example.com/news?id=1") -> dict[str, Any]:
    text = f"{prefix}{link} now"
    start = len(prefix.encode())  # byte offsets into the UTF-8 text, not character offsets
    facet = {
        "index": {"byteStart": start, "byteEnd": start + len(link.encode())},
        "features": [{"$type": LINK, "uri": link}],
    }
    return {"$type": POST, "text": text, "facets": [facet], "langs": ["en"], "createdAt": now()}


class Xrpc:
    def __init__(self, http: aiohttp.ClientSession, pds: Pds) -> None:
        self.http, self.base = http, f"{pds.url}/xrpc/"
        self.token: str | None = None

    async def call(
        self, nsid: str, body: dict[str, Any] | None = None, token: str | None = None, post: bool = False, **params: str
    ) -> tuple[int, Any]:
        """GET with params, or POST (with a JSON body if given); token "" sends none, None the logged-in one."""
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        method = "POST" if post or body is not None else "GET"
        async with self.http.request(method, self.base + nsid, json=body, params=params, headers=headers) as r:
            return r.status, await r.json(content_type=None)

    async def login(self, account: PdsAccount) -> dict[str, Any]:
        status, session = await self.call(
            "com.atproto.server.createSession", {"identifier": account.handle, "password": account.app_password}
        )
        assert status == 200, session
        self.token = session["accessJwt"]
        return dict(session)

    async def create(self, repo: str, record: dict[str, Any], rkey: str | None = None) -> tuple[int, Any]:
        body = {"repo": repo, "collection": record["$type"], "record": record} | ({"rkey": rkey} if rkey else {})
        return await self.call("com.atproto.repo.createRecord", body)

    async def get(self, repo: str, collection: str, rkey: str) -> tuple[int, Any]:
        return await self.call("com.atproto.repo.getRecord", repo=repo, collection=collection, rkey=rkey)


@pytest.fixture
async def xrpc(pds: Pds) -> AsyncIterator[Xrpc]:
    async with aiohttp.ClientSession() as http:
        yield Xrpc(http, pds)


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def expired_copy(token: str, secret: str) -> str:
    """The same access token, expired: re-signed with the dev PDS's HS256 secret."""
    header, _, _ = token.split(".")
    claims = jwt_claims(token) | {"iat": int(time.time()) - 7300, "exp": int(time.time()) - 100}
    signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64url(hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest())}"


async def test_app_password_session_and_bearer_auth(pds: Pds, xrpc: Xrpc) -> None:
    account = pds.account("newsroom.test")
    status, body = await xrpc.create(account.did, post_with_link())
    assert (status, body["error"]) == (401, "AuthMissing")

    session = await xrpc.login(account)
    assert {"accessJwt", "refreshJwt", "did", "handle", "active"} <= session.keys()
    assert (session["did"], session["handle"], session["active"]) == (account.did, account.handle, True)
    assert jwt_claims(session["accessJwt"])["scope"] == "com.atproto.appPass"

    status, body = await xrpc.call(
        "com.atproto.server.createSession", {"identifier": account.handle, "password": "wrong"}, token=""
    )
    assert (status, body["error"]) == (401, "AuthenticationRequired")
    # an app-password session cannot mint app passwords
    status, body = await xrpc.call("com.atproto.server.createAppPassword", {"name": "nope"})
    assert (status, body["error"]) == (400, "InvalidToken")
    # nor write to another account's repo
    status, body = await xrpc.create(pds.account("ceo.test").did, post_with_link())
    assert (status, body["error"]) == (401, "AuthenticationRequired")


async def test_post_with_link_facet_round_trips(pds: Pds, xrpc: Xrpc) -> None:
    account = pds.account("newsroom.test")
    await xrpc.login(account)
    record = post_with_link()
    facet = record["facets"][0]["index"]
    assert facet["byteStart"] == record["text"].index("https") + 3  # the emoji is 1 character but 4 bytes
    status, created = await xrpc.create(account.did, record)
    assert status == 200, created
    assert created["uri"].startswith(f"at://{account.did}/{POST}/")
    assert created["cid"].startswith("bafyrei")
    assert created["validationStatus"] == "valid"
    assert {"cid", "rev"} <= created["commit"].keys()

    rkey = created["uri"].rsplit("/", 1)[1]
    status, got = await xrpc.get(account.handle, POST, rkey)  # reads need no auth; a handle works as repo
    assert status == 200
    assert (got["uri"], got["cid"], got["value"]) == (created["uri"], created["cid"], record)
    text = got["value"]["text"].encode()
    assert text[facet["byteStart"] : facet["byteEnd"]] == b"https://example.com/news?id=1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"text": "é" * 301, "facets": []}, "grapheme too big (maximum 300, got 301) at $.record.text"),
        ({"text": "a" * 3001, "facets": []}, "string too big (maximum 3000, got 3001) at $.record.text"),
        (
            {"facets": [{"index": {"byteStart": 0, "byteEnd": 3}, "features": [{"$type": LINK}]}]},
            'Missing required key "uri" at $.record.facets[0].features[0]',
        ),
        (
            {"facets": [{"index": {"byteStart": 0, "byteEnd": 3}, "features": [{"uri": "https://example.com"}]}]},
            'includes the "$type" property',
        ),
        (
            {
                "facets": [
                    {
                        "index": {"byteStart": 0, "byteEnd": 3},
                        "features": [{"$type": "app.bsky.richtext.facet#mention", "uri": "https://example.com"}],
                    }
                ]
            },
            'Missing required key "did"',
        ),
        ({"createdAt": None}, 'Missing required key "createdAt" at $.record'),
    ],
    ids=[
        "301-graphemes",
        "3001-bytes",
        "link-without-uri",
        "feature-without-type",
        "mention-shaped-as-link",
        "no-createdAt",
    ],
)
async def test_invalid_post_is_rejected_by_lexicon(pds: Pds, xrpc: Xrpc, change: dict[str, Any], message: str) -> None:
    account = pds.account("newsroom.test")
    await xrpc.login(account)
    record = {k: v for k, v in (post_with_link() | change).items() if v is not None}
    status, body = await xrpc.create(account.did, record)
    assert (status, body["error"]) == (400, "InvalidRequest")
    assert body["message"].startswith("Invalid app.bsky.feed.post record: ")
    assert message in body["message"]


async def test_what_the_lexicon_does_not_catch(pds: Pds, xrpc: Xrpc) -> None:
    """Open unions accept unknown $types, and facet byte ranges are not checked against the text."""
    account = pds.account("newsroom.test")
    await xrpc.login(account)
    unknown_feature = post_with_link()
    unknown_feature["facets"][0]["features"] = [{"$type": "app.bsky.richtext.facet#bogus", "uri": "https://x.y"}]
    out_of_range = post_with_link()
    out_of_range["facets"][0]["index"] = {"byteStart": 500, "byteEnd": 400}
    for record in (unknown_feature, out_of_range, post_with_link() | {"text": "👍🏽" * 300, "facets": []}):
        status, body = await xrpc.create(account.did, record)
        assert (status, body["validationStatus"]) == (200, "valid")


async def test_threadgate_and_postgate_share_the_post_rkey(pds: Pds, xrpc: Xrpc) -> None:
    account = pds.account("ceo.test")
    await xrpc.login(account)
    status, post = await xrpc.create(account.did, post_with_link())
    assert status == 200
    rkey = post["uri"].rsplit("/", 1)[1]
    threadgate = {"$type": "app.bsky.feed.threadgate", "post": post["uri"], "allow": [], "createdAt": now()}
    postgate = {
        "$type": "app.bsky.feed.postgate",
        "post": post["uri"],
        "embeddingRules": [{"$type": "app.bsky.feed.postgate#disableRule"}],
        "createdAt": now(),
    }
    for gate in (threadgate, postgate):
        status, body = await xrpc.create(account.did, gate, rkey=rkey)
        assert (status, body["validationStatus"]) == (200, "valid"), body
        assert body["uri"] == f"at://{account.did}/{gate['$type']}/{rkey}"
        status, got = await xrpc.get(account.did, gate["$type"], rkey)
        assert (status, got["value"]) == (200, gate)
    # they are validated too: the rkey must be a TID and "post" an at-uri
    status, body = await xrpc.create(account.did, threadgate, rkey="self")
    assert (status, body["error"]) == (400, "InvalidRequest")
    assert "Invalid record key for app.bsky.feed.threadgate: Invalid TID string" in body["message"]
    status, body = await xrpc.create(account.did, threadgate | {"post": "not-a-uri"}, rkey=new_tid())
    assert (status, body["error"]) == (400, "InvalidRequest")
    assert "Invalid at-uri" in body["message"]


async def test_same_rkey_twice_creates_one_post(pds: Pds, xrpc: Xrpc) -> None:
    account = pds.account("newsroom.test")
    await xrpc.login(account)
    rkey = new_tid()
    first = post_with_link()
    status, created = await xrpc.create(account.did, first, rkey=rkey)
    assert (status, created["uri"]) == (200, f"at://{account.did}/{POST}/{rkey}")
    # a retry with the same rkey fails - as a 500, not a 4xx (the MST says "There is already a value at key")
    status, body = await xrpc.create(account.did, first, rkey=rkey)
    assert (status, body) == (500, {"error": "InternalServerError", "message": "Internal Server Error"})
    status, got = await xrpc.get(account.did, POST, rkey)
    assert (status, got["cid"]) == (200, created["cid"])

    # putRecord with swapRecord null is a clean create-if-absent: same record again is a no-op 200 (no commit),
    # a different record at that rkey a 400 InvalidSwap
    rkey = new_tid()
    put = {"repo": account.did, "collection": POST, "rkey": rkey, "swapRecord": None, "record": first}
    status, made = await xrpc.call("com.atproto.repo.putRecord", put)
    assert (status, made["uri"], "commit" in made) == (200, f"at://{account.did}/{POST}/{rkey}", True)
    status, again = await xrpc.call("com.atproto.repo.putRecord", put)
    assert (status, again["cid"], "commit" in again) == (200, made["cid"], False)
    status, body = await xrpc.call("com.atproto.repo.putRecord", put | {"record": first | {"text": "other"}})
    assert (status, body) == (400, {"error": "InvalidSwap", "message": f"Record was at {made['cid']}"})


async def test_apply_writes_creates_post_and_gates_atomically(pds: Pds, xrpc: Xrpc) -> None:
    account = pds.account("ceo.test")
    await xrpc.login(account)
    rkey = new_tid()
    uri = f"at://{account.did}/{POST}/{rkey}"
    create = "com.atproto.repo.applyWrites#create"
    writes: list[dict[str, Any]] = [
        {"$type": create, "collection": POST, "rkey": rkey, "value": post_with_link()},
        {
            "$type": create,
            "collection": "app.bsky.feed.threadgate",
            "rkey": rkey,
            "value": {"$type": "app.bsky.feed.threadgate", "post": uri, "allow": [], "createdAt": now()},
        },
    ]
    status, body = await xrpc.call("com.atproto.repo.applyWrites", {"repo": account.did, "writes": writes})
    assert status == 200, body
    assert [r["$type"] for r in body["results"]] == ["com.atproto.repo.applyWrites#createResult"] * 2
    assert [r["uri"] for r in body["results"]] == [uri, f"at://{account.did}/app.bsky.feed.threadgate/{rkey}"]
    assert {r["validationStatus"] for r in body["results"]} == {"valid"}

    # one invalid write rejects the whole batch
    rkey = new_tid()
    bad = [writes[0] | {"rkey": rkey}, writes[1] | {"rkey": rkey, "value": writes[1]["value"] | {"post": 42}}]
    status, body = await xrpc.call("com.atproto.repo.applyWrites", {"repo": account.did, "writes": bad})
    assert (status, body["error"]) == (400, "InvalidRequest")
    assert "$.writes[1].record.post" in body["message"]
    status, body = await xrpc.get(account.did, POST, rkey)
    assert (status, body["error"]) == (400, "RecordNotFound")


async def test_put_list_delete(pds: Pds, xrpc: Xrpc) -> None:
    account = pds.account("ceo.test")
    await xrpc.login(account)
    status, created = await xrpc.create(account.did, post_with_link())
    rkey = created["uri"].rsplit("/", 1)[1]
    edited = post_with_link(prefix="Edited 🎉 ")
    status, put = await xrpc.call(
        "com.atproto.repo.putRecord",
        {"repo": account.did, "collection": POST, "rkey": rkey, "swapRecord": created["cid"], "record": edited},
    )
    assert (status, put["uri"]) == (200, created["uri"])
    assert put["cid"] != created["cid"]
    status, listed = await xrpc.call("com.atproto.repo.listRecords", repo=account.did, collection=POST, limit="100")
    assert status == 200
    assert {"uri": put["uri"], "cid": put["cid"], "value": edited} in listed["records"]
    delete = {"repo": account.did, "collection": POST, "rkey": rkey}
    status, body = await xrpc.call("com.atproto.repo.deleteRecord", delete)
    assert (status, set(body)) == (200, {"commit"})
    status, body = await xrpc.call("com.atproto.repo.deleteRecord", delete)
    assert (status, body) == (200, {})  # deleting again is a no-op
    status, body = await xrpc.get(account.did, POST, rkey)
    assert (status, body["error"]) == (400, "RecordNotFound")  # 400, not 404


async def test_expired_access_token_and_refresh(pds: Pds, xrpc: Xrpc) -> None:
    account = pds.account("newsroom.test")
    session = await xrpc.login(account)
    claims = jwt_claims(session["accessJwt"])
    assert claims["exp"] - claims["iat"] == 2 * 3600  # access tokens live 2 h (refresh tokens 90 days)

    expired = expired_copy(session["accessJwt"], pds.jwt_secret)
    record = {"repo": account.did, "collection": POST, "record": post_with_link()}
    status, body = await xrpc.call("com.atproto.repo.createRecord", record, token=expired)
    assert (status, body) == (400, {"error": "ExpiredToken", "message": "Token has expired"})

    status, body = await xrpc.call("com.atproto.server.refreshSession", post=True, token=session["accessJwt"])
    assert (status, body["error"]) == (400, "InvalidToken")  # must be the refresh token
    status, body = await xrpc.call("com.atproto.server.refreshSession", {}, token=session["refreshJwt"])
    assert (status, body["message"]) == (400, "A request body was provided when none was expected")  # even {}
    status, body = await xrpc.call("com.atproto.server.refreshSession", post=True, token=session["refreshJwt"])
    assert status == 200, body
    assert (body["did"], body["handle"]) == (account.did, account.handle)
    assert body["refreshJwt"] != session["refreshJwt"]
    # the used refresh token still works for a 2 h grace period, and gives the same new pair
    status, again = await xrpc.call("com.atproto.server.refreshSession", post=True, token=session["refreshJwt"])
    assert (status, again["accessJwt"], again["refreshJwt"]) == (200, body["accessJwt"], body["refreshJwt"])
    status, body = await xrpc.call("com.atproto.server.getSession", token=body["accessJwt"])
    assert (status, body["did"]) == (200, account.did)
