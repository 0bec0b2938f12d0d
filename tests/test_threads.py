"""Threads end to end: the bot's own server, fed signed Slack requests, posting to a fake Threads API."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator

import pytest

from adapters.threads import ThreadsAccount
from relay import threads_text
from relay.destination import Part, Sent
from tests.conftest import LEADER, Relay, preview_id
from tests.fakes import FakeThreads, Fault

CONFIG = """
[policy]
leaders = ["slack:U0LEAD"]
default_audience = "threads"
replies = "{replies}"

[destinations.company-threads]
kind = "threads"

[audiences]
threads = ["company-threads"]
"""

LONG = " ".join(
    f"Point {i}: we are investing in the people and the tools that serve our customers 🚀." for i in range(14)
)


@pytest.fixture
async def threads() -> AsyncIterator[FakeThreads]:
    async with FakeThreads(processing=0.3) as fake:
        yield fake


async def start(start_relay, threads: FakeThreads, replies: str = "open") -> Relay:  # type: ignore[no-untyped-def]
    return await start_relay(
        CONFIG.format(replies=replies), THREADS_ACCESS_TOKEN=threads.token, THREADS_API_URL=threads.api_url
    )


async def send(relay: Relay, text: str) -> str:
    ack = await relay.command(LEADER, text)
    await relay.click(LEADER, "approve", preview_id(ack))
    return await relay.final_report()


async def test_a_long_broadcast_is_a_reply_thread_published_once_ready_with_its_link(start_relay, threads) -> None:
    relay = await start(start_relay, threads)
    ack = await relay.command(LEADER, LONG)
    assert "/500 chars" in json.dumps(ack)
    await relay.click(LEADER, "approve", preview_id(ack))
    report = await relay.final_report()
    assert "1 of 1 delivered." in report
    posts = threads.posts
    assert len(posts) > 2 and all(threads_text.length(post.text) <= 500 for post in posts)
    assert [post.reply_to for post in posts] == [None] + [post.id for post in posts[:-1]]
    assert " ".join(re.sub(r" \(\d+/\d+\)$", "", post.text) for post in posts) == LONG
    # Each container was waited for: no publish was refused as not ready, none made twice.
    assert len(threads.calls_to("POST /:id/threads_publish")) == len(posts) == len(threads.containers)
    assert threads.permalink(posts[0]) in report or threads.permalink(posts[-1]) in report


@pytest.mark.parametrize(
    ("replies", "control", "note"),
    [
        ("none", "mentioned_only", "only accounts mentioned in the post can reply"),
        ("restricted", "accounts_you_follow", "only accounts this account follows can reply"),
        ("open", "everyone", "anyone can reply"),
    ],
)
async def test_one_way_mode_is_threads_reply_control(start_relay, threads, replies, control, note) -> None:
    relay = await start(start_relay, threads, replies=replies)
    ack = await relay.command(LEADER, LONG)
    assert f"Replies: {note}" in json.dumps(ack)
    await relay.click(LEADER, "approve", preview_id(ack))
    await relay.final_report()
    assert {call.params["reply_control"] for call in threads.calls_to("POST /:id/threads")} == {control}
    assert {post.reply_control for post in threads.posts} == {control}


async def test_retract_deletes_every_part_replies_first(start_relay, threads) -> None:
    relay = await start(start_relay, threads)
    broadcast = preview_id(await relay.command(LEADER, LONG))
    await relay.click(LEADER, "approve", broadcast)
    await relay.final_report()
    posted = [post.id for post in threads.posts]
    await relay.command(LEADER, f"retract {broadcast}")
    report = await relay.slack.wait_for(
        lambda: next((m["text"] for m in relay.slack.messages(f"D{LEADER}") if m["text"].endswith("deleted.")), None)
    )
    assert "1 of 1 deleted." in report
    assert not threads.posts and [post.id for post in threads.deleted] == posted[::-1]


async def test_retract_with_the_days_deletions_spent_says_so_and_deletes_nothing(start_relay, threads) -> None:
    relay = await start(start_relay, threads)
    broadcast = preview_id(await relay.command(LEADER, "Hard to take back"))
    await relay.click(LEADER, "approve", broadcast)
    await relay.final_report()
    threads.use_allowance(deletes=100)
    await relay.command(LEADER, f"retract {broadcast}")
    report = await relay.slack.wait_for(
        lambda: next((m for m in relay.slack.messages(f"D{LEADER}") if m["text"].endswith("deleted.")), None)
    )
    assert "Threads' daily limit of deletions is reached: 100 of 100 in the last 24 hours" in json.dumps(report)
    assert len(threads.posts) == 1 and not threads.calls_to("DELETE /:id")


async def test_a_lost_publish_answer_is_looked_for_and_never_doubled(start_relay, threads) -> None:
    threads.faults.add("POST /:id/threads_publish", Fault.drop_after())
    relay = await start(start_relay, threads)
    assert "1 of 1 delivered." in await send(relay, "Said once on Threads")
    assert [post.text for post in threads.posts] == ["Said once on Threads"]
    assert len(threads.calls_to("POST /:id/threads")) == 1, "the container was kept, not made again"


async def test_a_lost_reply_answer_is_found_among_the_replies(start_relay, threads) -> None:
    threads.faults.add("POST /:id/threads_publish", Fault.drop_after(), when=lambda params: len(threads.posts) == 1)
    # and this process is taken to have forgotten the container (as another instance would not know it)
    unknown = {"error": {"message": "Unsupported get request.", "type": "GraphMethodException", "code": 100}}
    threads.faults.add("GET /:id", Fault.status(400, unknown), when=lambda params: params.get("fields") == "status")
    relay = await start(start_relay, threads)
    assert "1 of 1 delivered." in await send(relay, LONG)
    texts = [post.text for post in threads.posts]
    assert len(texts) == len(set(texts)) > 2, "every part once"
    assert threads.calls_to("GET /:id/replies"), "the lost reply was looked for among the account's replies"


async def test_a_spent_daily_allowance_is_refused_in_the_preview_and_shown(start_relay, threads) -> None:
    threads.use_allowance(posts=250)
    relay = await start(start_relay, threads)
    ack = json.dumps(await relay.command(LEADER, "Over the limit"))
    assert "Threads' daily limit is reached: 250 of 250 posts in the last 24 hours" in ack
    assert not threads.calls_to("POST /:id/threads")


async def test_an_allowance_spent_after_the_preview_is_reported_and_nothing_is_posted(start_relay, threads) -> None:
    threads.use_allowance(posts=200)
    relay = await start(start_relay, threads)
    ack = await relay.command(LEADER, "Nearly at the limit")
    assert "200 of 250 posts and 0 of 1,000 replies used in the last 24 hours" in json.dumps(ack)
    threads.use_allowance(posts=50)
    await relay.click(LEADER, "approve", preview_id(ack))
    report = await relay.final_report()
    assert "Threads' daily limit is reached: 250 of 250 posts in the last 24 hours" in report
    assert not threads.posts and not threads.calls_to("POST /:id/threads")


async def test_an_expired_token_says_how_to_renew_it(start_relay, threads) -> None:
    relay = await start(start_relay, threads)
    threads.token_expired = True
    report = await send(relay, "Expired")
    assert "Threads says the access token has expired: renew THREADS_ACCESS_TOKEN" in report
    assert not threads.posts


async def test_a_revoked_token_says_so_and_nothing_is_posted(start_relay, threads) -> None:
    threads.faults.add("GET /:id/threads_publishing_limit", FakeThreads.token_error(), times=None)
    relay = await start(start_relay, threads)
    report = await send(relay, "Revoked")
    assert "Threads says it rejected the access token: renew THREADS_ACCESS_TOKEN" in report
    assert not threads.calls_to("POST /:id/threads")


async def test_throttling_is_waited_out_and_posts_once(start_relay, threads) -> None:
    threads.faults.add("POST /:id/threads", threads.rate_limited_for(1))
    relay = await start(start_relay, threads)
    assert "1 of 1 delivered." in await send(relay, "After a pause")
    assert len(threads.posts) == 1 and len(threads.calls_to("POST /:id/threads")) == 2


async def test_another_instance_finds_a_published_part_by_the_accounts_recent_posts_and_replies(threads) -> None:
    """What an instance that never saw the container does after a lost answer: look, and not post again.
    Built as a leader's own account is: from a token, the API's address and the account's user id."""
    current = {"token": threads.token}

    async def token() -> str:  # what a store of connected accounts answers: the token as last refreshed
        return current["token"]

    first = ThreadsAccount("ceo-threads", threads.token, threads.api_url, user_id=threads.user_id)
    other = ThreadsAccount("ceo-threads", token, threads.api_url, user_id=threads.user_id)
    threads.processing = 0.0
    try:
        root = Part("Root post (1/2)", 0, 2, "b1-1-0", None, created_at=time.time())
        sent = await first.publish(root)
        assert isinstance(sent, Sent) and sent.link == threads.permalink(threads.posts[0])
        assert await other.find(root, since=time.time() - 60) == sent
        reply = Part("Second part (2/2)", 1, 2, "b1-1-1", sent.remote_id, root=sent.remote_id)
        assert await other.find(reply, since=time.time() - 60) is None
        landed = await first.publish(reply)
        assert isinstance(landed, Sent)
        assert await other.find(reply, since=time.time() - 60) == landed
        elsewhere = Part("Second part (2/2)", 1, 2, "b1-1-1", "17000000000000000", root=sent.remote_id)
        assert await other.find(elsewhere, since=time.time() - 60) is None, "the same words under another post"
        assert len(threads.posts) == 2
        threads.token = current["token"] = "refreshed-token"
        assert await other.find(root, since=time.time() - 60) == sent, "the refreshed token, from the next call on"
    finally:
        await first.close()
        await other.close()


SERVICE_ERROR = {"error": {"message": "An unexpected error has occurred.", "type": "OAuthException", "code": 2}}


@pytest.mark.parametrize(
    "endpoint",
    ["GET /:id/threads_publishing_limit", "POST /:id/threads", "GET /:id", "POST /:id/threads_publish"],
)
@pytest.mark.parametrize("fault", [Fault.drop_after(), Fault.status(500, SERVICE_ERROR)], ids=["dropped", "500"])
async def test_whichever_step_fails_the_part_is_posted_exactly_once(start_relay, threads, endpoint, fault) -> None:
    threads.processing = 0.0
    relay = await start(start_relay, threads)
    threads.faults.add(endpoint, fault)
    assert "1 of 1 delivered." in await send(relay, "Exactly once")
    assert [post.text for post in threads.posts] == ["Exactly once"]
    assert not threads.faults.pending, "the fault was met"
