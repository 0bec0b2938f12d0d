"""When networks misbehave: each destination still ends posted once, failed with a reason, or unknown."""

from __future__ import annotations

from tests.conftest import LEADER, STAFF_CHANNEL, preview_id
from tests.fakes import FakeSlack, FakeX, Fault


def to_staff(params: dict) -> bool:  # type: ignore[type-arg]
    return params.get("channel") == STAFF_CHANNEL


async def approve(relay, text: str = "Results are out.", audience: str | None = None) -> str:  # type: ignore[no-untyped-def]
    broadcast = preview_id(await relay.command(LEADER, text))
    if audience:
        await relay.answer(await relay.click(LEADER, "choose_audience", broadcast, selected=audience))
    await relay.click(LEADER, "approve", broadcast)
    return broadcast


def report_history(slack: FakeSlack) -> str:
    """Every version of the leader's live report, as they saw it change."""
    return "\n".join(str(c.params.get("blocks")) for c in slack.calls_to("chat.update"))


async def test_slack_429_is_retried_after_retry_after_then_posted_once(start_relay, slack: FakeSlack) -> None:
    # A pause longer than the report's redraw spacing (1 s), so the leader surely sees it while it lasts.
    slack.faults.add("chat.postMessage", slack.rate_limited(retry_after=3), when=to_staff)
    relay = await start_relay()
    await approve(relay, audience="staff")
    assert "1 of 1 delivered." in await relay.final_report()
    first, second = [c for c in slack.calls_to("chat.postMessage") if to_staff(c.params)]
    assert second.at - first.at >= 3.0, "Retry-After was honoured"
    assert len(slack.messages(STAFF_CHANNEL)) == 1
    assert "retrying (Slack answered 429 ratelimited)" in report_history(slack)


async def test_x_429_waits_for_the_rate_limit_reset_then_posts_once(start_relay, slack: FakeSlack, x: FakeX) -> None:
    limited = x.rate_limited(reset_in=2)
    x.faults.add("POST /2/tweets", limited)
    relay = await start_relay()
    await approve(relay, audience="public")
    assert "1 of 1 delivered." in await relay.final_report()
    _, second = x.calls_to("POST /2/tweets")
    reset = int(dict(limited.headers)["x-rate-limit-reset"])
    assert second.wall >= reset, "no retry before the window X named"
    assert len(x.tweets) == 1


async def test_x_5xx_and_refused_connections_are_retried(start_relay, x: FakeX) -> None:
    x.faults.add("POST /2/tweets", Fault.status(503, {"title": "Service Unavailable"}))
    x.faults.add("POST /2/tweets", Fault.drop_before())
    relay = await start_relay()
    await approve(relay, audience="public")
    assert "1 of 1 delivered." in await relay.final_report(timeout=15)
    assert len(x.calls_to("POST /2/tweets")) == 3 and len(x.tweets) == 1


async def test_x_401_fails_at_once_and_tells_the_leader_what_to_renew(start_relay, slack: FakeSlack, x: FakeX) -> None:
    x.faults.add(
        "POST /2/tweets",
        Fault.status(401, {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}),
    )
    relay = await start_relay()
    await approve(relay)
    report = await relay.final_report()
    assert "1 of 2 delivered." in report
    assert "company-x*: failed. X rejected the credentials: renew X_ACCESS_TOKEN" in report
    assert len(x.calls_to("POST /2/tweets")) == 1, "a permanent error is not retried"
    assert len(slack.messages(STAFF_CHANNEL)) == 1


async def test_x_payment_required_and_duplicates_read_clearly(start_relay, x: FakeX) -> None:
    x.faults.add("POST /2/tweets", Fault.status(402, {"title": "Payment Required", "detail": "CreditsDepleted"}))
    relay = await start_relay()
    await approve(relay, audience="public")
    assert "no credits left (402)" in await relay.final_report()


async def test_slack_channel_the_bot_is_not_in_fails_with_the_fix(start_relay, slack: FakeSlack, x: FakeX) -> None:
    slack.channel_errors[STAFF_CHANNEL] = "not_in_channel"
    relay = await start_relay()
    await approve(relay)
    report = await relay.final_report()
    assert f"The bot is not a member of <#{STAFF_CHANNEL}>: invite it there with /invite." in report
    assert len(x.tweets) == 1


async def test_x_post_whose_answer_was_lost_is_found_not_posted_again(start_relay, x: FakeX) -> None:
    x.faults.add("POST /2/tweets", Fault.drop_after())
    relay = await start_relay()
    await approve(relay, audience="public")
    report = await relay.final_report()
    [tweet] = x.tweets
    assert f"https://x.com/i/web/status/{tweet.id}" in report
    assert len(x.calls_to("POST /2/tweets")) == 1
    assert x.calls_to("GET /2/users/{id}/tweets"), "it looked before posting again"


async def test_x_lost_answer_that_cannot_be_checked_is_unknown_never_reposted(start_relay, x: FakeX) -> None:
    x.faults.add("POST /2/tweets", Fault.drop_after())
    x.timeline_forbidden = True
    relay = await start_relay()
    await approve(relay, audience="public")
    report = await relay.final_report()
    assert "company-x*: unknown, not posted again." in report
    assert "look at the account before posting it by hand" in report
    assert len(x.tweets) == 1 and len(x.calls_to("POST /2/tweets")) == 1


async def test_slack_post_whose_answer_was_lost_is_found_by_its_metadata(start_relay, slack: FakeSlack) -> None:
    slack.faults.add("chat.postMessage", Fault.drop_after(), when=to_staff)
    relay = await start_relay()
    await approve(relay, audience="staff")
    report = await relay.final_report()
    [message] = slack.messages(STAFF_CHANNEL)
    assert "1 of 1 delivered." in report and message["ts"].replace(".", "") in report
    assert len([c for c in slack.calls_to("chat.postMessage") if to_staff(c.params)]) == 1
    assert slack.calls_to("conversations.history")


async def test_a_long_text_goes_out_as_an_x_thread_of_replies(start_relay, x: FakeX) -> None:
    sentences = " ".join(
        f"Point {i}: we are investing in the people and tools that serve our customers." for i in range(9)
    )
    relay = await start_relay()
    await approve(relay, text=sentences, audience="public")
    await relay.final_report()
    tweets = x.tweets
    assert len(tweets) == 3
    assert all(t.text.rsplit(" (", 1)[0].endswith("customers.") for t in tweets), "split at sentence ends"
    assert tweets[0].in_reply_to_id is None
    assert [t.in_reply_to_id for t in tweets[1:]] == [tweets[0].id, tweets[1].id]
    assert all(t.text.endswith(f"({i}/3)") for i, t in enumerate(tweets, start=1))


async def test_a_thread_interrupted_mid_way_resumes_without_repeating_parts(start_relay, x: FakeX) -> None:
    sentences = " ".join(
        f"Point {i}: we are investing in the people and tools that serve our customers." for i in range(9)
    )
    x.faults.add("POST /2/tweets", Fault.drop_after(), when=lambda p: "(2/3)" in p.get("text", ""))
    relay = await start_relay()
    await approve(relay, text=sentences, audience="public")
    await relay.final_report()
    tweets = x.tweets
    assert [t.text[-5:] for t in tweets] == ["(1/3)", "(2/3)", "(3/3)"]
    assert tweets[2].in_reply_to_id == tweets[1].id
    assert len(x.calls_to("POST /2/tweets")) == 3


async def test_x_post_that_times_out_is_looked_for_not_posted_again(start_relay, x: FakeX) -> None:
    x.faults.add("POST /2/tweets", Fault.hang())  # lands, but the answer never comes
    relay = await start_relay(RELAY_HTTP_TIMEOUT="1")
    await approve(relay, audience="public")
    report = await relay.final_report()
    assert "1 of 1 delivered." in report
    assert len(x.tweets) == 1 and len(x.calls_to("POST /2/tweets")) == 1


async def test_slack_post_that_times_out_is_looked_for_not_posted_again(start_relay, slack: FakeSlack) -> None:
    slack.faults.add("chat.postMessage", Fault.hang(), when=to_staff)
    relay = await start_relay(RELAY_HTTP_TIMEOUT="1")
    await approve(relay, audience="staff")
    assert "1 of 1 delivered." in await relay.final_report()
    assert len(slack.messages(STAFF_CHANNEL)) == 1
    assert len([c for c in slack.calls_to("chat.postMessage") if to_staff(c.params)]) == 1
