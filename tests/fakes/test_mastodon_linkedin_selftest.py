"""Self-checks of the Mastodon and LinkedIn fakes over real HTTP, with aiohttp as the bot uses it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from .faults import Fault
from .linkedin import FakeLinkedIn
from .mastodon import FakeMastodon

pytestmark = pytest.mark.asyncio

Answer = tuple[int, Any, CIMultiDictProxy[str]]
LINKEDIN_HEADERS = {
    "Authorization": "Bearer linkedin-token",
    "LinkedIn-Version": "202611",
    "X-Restli-Protocol-Version": "2.0.0",
}
NOW = datetime(2026, 11, 28, 3, 51, 19, tzinfo=UTC)


async def mastodon_request(
    session: aiohttp.ClientSession,
    mastodon: FakeMastodon,
    method: str,
    path: str,
    *,
    token: str | None = "mastodon-token",
    headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> Answer:
    headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token is not None else {})}
    async with session.request(method, mastodon.url + path, headers=headers, **kwargs) as response:
        return response.status, await response.json(), response.headers


async def linkedin_request(
    session: aiohttp.ClientSession,
    linkedin: FakeLinkedIn,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str | None] | None = None,
    **kwargs: Any,
) -> Answer:
    """Send with the headers LinkedIn requires unless `headers` overrides them; None-valued ones are left out."""
    sent = {name: value for name, value in {**LINKEDIN_HEADERS, **(headers or {})}.items() if value is not None}
    async with session.request(method, linkedin.url + path, headers=sent, **kwargs) as response:
        body = await response.read()
        return response.status, (await response.json() if body else body), response.headers


def post_body(commentary: str, author: str = "urn:li:organization:2414183") -> dict[str, Any]:
    return {
        "author": author,
        "commentary": commentary,
        "visibility": "PUBLIC",
        "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": False,
    }


async def test_mastodon_idempotency_key_survives_a_dropped_answer() -> None:
    async with FakeMastodon() as mastodon, aiohttp.ClientSession() as session:
        mastodon.faults.add("POST /api/v1/statuses", Fault.drop_after())
        hello, key = {"status": "Hello, world"}, {"Idempotency-Key": "b1-part0"}
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await mastodon_request(session, mastodon, "POST", "/api/v1/statuses", json=hello, headers=key)
        status, retried, _ = await mastodon_request(
            session, mastodon, "POST", "/api/v1/statuses", json=hello, headers=key
        )
        form = {"status": "Hello, world", "in_reply_to_id": retried["id"], "visibility": "unlisted"}
        _, reply, _ = await mastodon_request(session, mastodon, "POST", "/api/v1/statuses", data=form)
        orphan = await mastodon_request(
            session, mastodon, "POST", "/api/v1/statuses", json={"status": "re", "in_reply_to_id": "1"}
        )
        _, timeline, _ = await mastodon_request(
            session, mastodon, "GET", f"/api/v1/accounts/{mastodon.account_id}/statuses", params={"limit": "5"}
        )

    assert status == 200
    assert [s.id for s in mastodon.statuses] == [retried["id"], reply["id"]]
    assert mastodon.statuses[0].idempotency_key == "b1-part0"
    assert retried["url"] == f"{mastodon.url}/@relaybot/{retried['id']}"
    assert retried["content"] == "<p>Hello, world</p>"
    assert retried["account"]["acct"] == "relaybot"
    assert retried["created_at"].endswith("Z")
    assert (reply["in_reply_to_id"], reply["visibility"]) == (retried["id"], "unlisted")
    assert int(reply["id"]) > int(retried["id"])
    assert orphan[0] == 404
    assert [s["id"] for s in timeline] == [reply["id"], retried["id"]]
    assert [call.fault for call in mastodon.calls_to("POST /api/v1/statuses")][:2] == [Fault.drop_after(), None]


async def test_mastodon_counts_links_as_23_and_graphemes_against_the_instance_limit() -> None:
    async with FakeMastodon(max_characters=500) as mastodon, aiohttp.ClientSession() as session:
        _, instance, _ = await mastodon_request(session, mastodon, "GET", "/api/v2/instance", token=None)
        long_link = "Read https://example.com/" + "a" * 600
        linked = await mastodon_request(session, mastodon, "POST", "/api/v1/statuses", json={"status": long_link})
        emoji = await mastodon_request(session, mastodon, "POST", "/api/v1/statuses", json={"status": "👍🏽" * 500})
        too_long = await mastodon_request(session, mastodon, "POST", "/api/v1/statuses", json={"status": "a" * 501})

    assert instance["configuration"]["statuses"]["max_characters"] == 500
    assert instance["configuration"]["statuses"]["characters_reserved_per_url"] == 23
    assert instance["domain"] == mastodon.domain
    assert linked[0] == emoji[0] == 200
    assert too_long[:2] == (422, {"error": "Validation failed: Text character limit of 500 exceeded"})
    assert [s.text for s in mastodon.statuses] == [long_link, "👍🏽" * 500]


async def test_mastodon_rate_limit_reset_is_a_date_and_revoked_token_is_refused() -> None:
    async with FakeMastodon() as mastodon, aiohttp.ClientSession() as session:
        mastodon.faults.add("GET /api/v1/accounts/verify_credentials", mastodon.rate_limited(reset_in=30))
        limited = await mastodon_request(session, mastodon, "GET", "/api/v1/accounts/verify_credentials")
        wrong = await mastodon_request(session, mastodon, "GET", "/api/v1/accounts/verify_credentials", token="nope")
        mastodon.token_revoked = True
        revoked = await mastodon_request(session, mastodon, "POST", "/api/v1/statuses", json={"status": "hi"})

    status, body, headers = limited
    assert (status, body) == (429, {"error": "Too many requests"})
    assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("300", "0")
    reset = datetime.strptime(headers["X-RateLimit-Reset"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert 0 < (reset - datetime.now(UTC)).total_seconds() <= 30
    assert wrong[:2] == (401, {"error": "The access token is invalid"})
    assert revoked[:2] == (401, {"error": "The access token was revoked"})
    assert mastodon.statuses == []


async def test_linkedin_post_answers_201_with_the_urn_in_a_header_and_lists_newest_first() -> None:
    async with FakeLinkedIn(clock=lambda: NOW) as linkedin, aiohttp.ClientSession() as session:
        first = await linkedin_request(session, linkedin, "POST", "/rest/posts", json=post_body("First"))
        second = await linkedin_request(session, linkedin, "POST", "/rest/posts", json=post_body("Second"))
        query = {"q": "author", "author": linkedin.organization, "count": "10"}
        _, found, _ = await linkedin_request(session, linkedin, "GET", "/rest/posts", params=query)
        deleted = await linkedin_request(session, linkedin, "DELETE", f"/rest/posts/{quote(first[2]['x-restli-id'])}")
        unknown = await linkedin_request(session, linkedin, "DELETE", "/rest/posts/urn%3Ali%3Ashare%3A1")

    status, body, headers = first
    assert (status, body) == (201, b"")
    assert headers["x-restli-id"] == "urn:li:share:7000000000000000001"
    assert [e["id"] for e in found["elements"]] == [second[2]["x-restli-id"], headers["x-restli-id"]]
    assert found["elements"][0]["commentary"] == "Second"
    assert found["elements"][0]["createdAt"] == int(NOW.timestamp() * 1000)
    assert deleted[:2] == (204, b"")
    assert unknown[0] == 404
    assert [p.commentary for p in linkedin.posts] == ["Second"]
    assert [call.params["urn"] for call in linkedin.calls_to("DELETE /rest/posts")] == [
        headers["x-restli-id"],
        "urn:li:share:1",
    ]


async def test_linkedin_refuses_missing_or_retired_versions_and_expired_tokens() -> None:
    async with FakeLinkedIn(clock=lambda: NOW) as linkedin, aiohttp.ClientSession() as session:

        async def post(**headers: str | None) -> Answer:
            return await linkedin_request(
                session, linkedin, "POST", "/rest/posts", json=post_body("hi"), headers=headers
            )

        unversioned = await post(**{"LinkedIn-Version": None})
        retired = await post(**{"LinkedIn-Version": "202301"})
        future = await post(**{"LinkedIn-Version": "202612"})
        no_restli = await post(**{"X-Restli-Protocol-Version": None})
        wrong_token = await post(Authorization="Bearer x")
        linkedin.token_expired = True
        expired = await post()

    assert unversioned[0] == 400
    assert unversioned[1]["code"] == "VERSION_MISSING"
    assert "LinkedIn-Version" in unversioned[1]["message"]
    assert retired[:2] == (
        426,
        {"status": 426, "code": "NONEXISTENT_VERSION", "message": "Requested version 202301 is not active"},
    )
    assert future[0] == 426
    assert no_restli[0] == 400
    assert wrong_token[1]["code"] == "INVALID_ACCESS_TOKEN"
    assert expired[:2] == (
        401,
        {
            "status": 401,
            "serviceErrorCode": 65601,
            "code": "EXPIRED_ACCESS_TOKEN",
            "message": "The token used in the request has expired",
        },
    )
    assert linkedin.posts == []


async def test_linkedin_duplicate_names_the_post_that_landed_despite_a_dropped_answer() -> None:
    async with FakeLinkedIn() as linkedin, aiohttp.ClientSession() as session:
        linkedin.faults.add("POST /rest/posts", Fault.drop_after())
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await linkedin_request(session, linkedin, "POST", "/rest/posts", json=post_body("Big news"))
        linkedin.faults.add("POST /rest/posts", linkedin.throttled())
        throttled = await linkedin_request(session, linkedin, "POST", "/rest/posts", json=post_body("Big news"))
        duplicate = await linkedin_request(session, linkedin, "POST", "/rest/posts", json=post_body("Big news"))
        stranger = await linkedin_request(
            session, linkedin, "POST", "/rest/posts", json=post_body("Other", author="urn:li:organization:1")
        )

    (landed,) = linkedin.posts
    assert throttled[:2] == (
        429,
        {"status": 429, "message": "Resource level throttle limit for calls to this resource is reached."},
    )
    assert "Retry-After" not in throttled[2]
    assert duplicate[:2] == (
        422,
        {"status": 422, "code": "DUPLICATE_POST", "message": f"Content is a duplicate of {landed.id}"},
    )
    assert stranger[0] == 403
    assert stranger[1]["code"] == "ACCESS_DENIED"


async def test_linkedin_closes_comments_and_flags_unescaped_little_text() -> None:
    async with FakeLinkedIn() as linkedin, aiohttp.ClientSession() as session:
        raw = "Q3 results (record) are in"
        escaped = r"Q3 results \(record\) are in, see {hashtag|\#|news}"
        for text in (raw, escaped):
            await linkedin_request(session, linkedin, "POST", "/rest/posts", json=post_body(text))
        garbled, clean = linkedin.posts
        close = {"patch": {"$set": {"commentsState": "CLOSED"}}}
        path = f"/rest/socialMetadata/{quote(clean.id, safe='')}"
        as_org = {"actor": linkedin.organization}
        partial_update = {"X-RestLi-Method": "PARTIAL_UPDATE"}
        closed = await linkedin_request(
            session, linkedin, "POST", path, json=close, params=as_org, headers=partial_update
        )
        no_actor = await linkedin_request(session, linkedin, "POST", path, json=close, headers=partial_update)
        no_method = await linkedin_request(session, linkedin, "POST", path, json=close, params=as_org)

    assert closed[:2] == (204, b"")
    assert no_actor[0] == no_method[0] == 400
    assert (clean.comments_state, garbled.comments_state) == ("CLOSED", "OPEN")
    assert (garbled.garbled, garbled.shown) == (True, "Q3 results ")
    assert (clean.garbled, clean.shown) == (False, "Q3 results (record) are in, see #news")
    assert linkedin.garbled == [garbled]
    assert [call.params["urn"] for call in linkedin.calls_to("POST /rest/socialMetadata")] == [clean.id] * 3


async def test_mastodon_forgets_an_idempotency_key_after_an_hour() -> None:
    now = [NOW]
    async with FakeMastodon(clock=lambda: now[0]) as mastodon, aiohttp.ClientSession() as session:
        key = {"Idempotency-Key": "b2-part0"}
        _, first, _ = await mastodon_request(
            session, mastodon, "POST", "/api/v1/statuses", json={"status": "one"}, headers=key
        )
        now[0] += timedelta(minutes=59)
        _, same, _ = await mastodon_request(
            session, mastodon, "POST", "/api/v1/statuses", json={"status": "changed"}, headers=key
        )
        now[0] += timedelta(minutes=1)
        _, fresh, _ = await mastodon_request(
            session, mastodon, "POST", "/api/v1/statuses", json={"status": "two"}, headers=key
        )
        await mastodon_request(session, mastodon, "DELETE", f"/api/v1/statuses/{fresh['id']}")
        gone = await mastodon_request(
            session, mastodon, "POST", "/api/v1/statuses", json={"status": "two"}, headers=key
        )

    assert same == first
    assert fresh["id"] != first["id"]
    assert gone[:2] == (404, {"error": "Record not found"})
    assert [s.text for s in mastodon.statuses] == ["one"]
    assert [s.text for s in mastodon.deleted] == ["two"]
