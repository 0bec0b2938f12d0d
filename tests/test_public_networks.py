"""Public networks: each gets its own rendering, its reply policy, and clear failures."""

from __future__ import annotations

import json
from datetime import datetime

from tests.conftest import LEADER, config_text, preview_id, public_config, public_env
from tests.fakes import FakeLinkedIn, FakeMastodon, FakeX, Fault


async def test_x_reply_policy_is_shown_in_the_preview_and_sent(start_relay, x: FakeX) -> None:
    relay = await start_relay(config_text().replace("[policy]", '[policy]\nreplies = "none"'))
    ack = await relay.command(LEADER, "One way only")
    assert "Replies: nobody can reply" in json.dumps(ack)
    await relay.click(LEADER, "approve", preview_id(ack))
    await relay.final_report()
    [post] = x.calls_to("POST /2/tweets")
    assert post.json["reply_settings"] == "mentionedUsers"


async def test_x_open_replies_send_no_reply_settings(start_relay, x: FakeX) -> None:
    relay = await start_relay()
    await relay.click(LEADER, "approve", preview_id(await relay.command(LEADER, "Talk to us")))
    await relay.final_report()
    [post] = x.calls_to("POST /2/tweets")
    assert "reply_settings" not in post.json


async def start_public(start_relay, mastodon: FakeMastodon, linkedin: FakeLinkedIn, **config: str):  # type: ignore[no-untyped-def]
    return await start_relay(public_config(**config), **public_env(mastodon, linkedin))


async def send(relay, text: str, audience: str = "public") -> str:  # type: ignore[no-untyped-def]
    broadcast = preview_id(await relay.command(LEADER, text))
    if audience != "public":
        await relay.answer(await relay.click(LEADER, "choose_audience", broadcast, selected=audience))
    await relay.click(LEADER, "approve", broadcast)
    return await relay.final_report()


async def test_a_broadcast_reaches_mastodon_linkedin_and_x_once_each(start_relay, mastodon, linkedin, x: FakeX) -> None:
    relay = await start_public(start_relay, mastodon, linkedin)
    report = await send(relay, "Results: *up* 20% (see #q3) <https://example.com/q3|here>")
    assert "3 of 3 delivered." in report
    [status] = mastodon.statuses
    assert status.text == "Results: up 20% (see #q3) here (https://example.com/q3)"
    assert status.idempotency_key and status.visibility == "public"
    [post] = linkedin.posts
    assert post.commentary == r"Results: up 20% \(see \#q3\) here \(https://example.com/q3\)"
    assert not post.garbled and post.shown == "Results: up 20% (see #q3) here (https://example.com/q3)"
    assert len(x.tweets) == 1
    assert f"https://www.linkedin.com/feed/update/{post.id}/" in report


async def test_mastodon_limit_is_the_instances_and_long_text_becomes_a_reply_thread(start_relay, linkedin) -> None:
    async with FakeMastodon(max_characters=120) as small:
        relay = await start_public(start_relay, small, linkedin)
        ack = await relay.command(LEADER, " ".join(f"Sentence {i} is about our plans." for i in range(8)))
        assert "/120 chars" in json.dumps(ack)
        await relay.click(LEADER, "choose_audience", preview_id(ack), selected="mastodon")
        await relay.click(LEADER, "approve", preview_id(ack))
        await relay.final_report()
        statuses = small.statuses
        assert len(statuses) > 1 and all(len(s.text) <= 120 for s in statuses)
        assert [s.in_reply_to_id for s in statuses[1:]] == [s.id for s in statuses[:-1]]


async def test_mastodon_lost_answer_is_resent_with_the_same_key_and_posts_once(start_relay, mastodon, linkedin) -> None:
    mastodon.faults.add("POST /api/v1/statuses", Fault.drop_after())
    relay = await start_public(start_relay, mastodon, linkedin)
    assert "1 of 1 delivered." in await send(relay, "Said once", audience="mastodon")
    first, second = mastodon.calls_to("POST /api/v1/statuses")
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert len(mastodon.statuses) == 1


async def test_mastodon_rate_limit_waits_for_its_reset_date(start_relay, mastodon, linkedin) -> None:
    limited = mastodon.rate_limited(reset_in=2)
    mastodon.faults.add("POST /api/v1/statuses", limited)
    relay = await start_public(start_relay, mastodon, linkedin)
    assert "1 of 1 delivered." in await send(relay, "Patience", audience="mastodon")
    _, second = mastodon.calls_to("POST /api/v1/statuses")
    reset = datetime.fromisoformat(dict(limited.headers)["X-RateLimit-Reset"].replace("Z", "+00:00")).timestamp()
    assert second.wall >= reset - 0.01
    assert len(mastodon.statuses) == 1


async def test_mastodon_says_it_cannot_restrict_replies_and_a_revoked_token_reads_clearly(
    start_relay, mastodon, linkedin
) -> None:
    mastodon.token_revoked = True
    relay = await start_public(start_relay, mastodon, linkedin, replies="none")
    ack = await relay.command(LEADER, "Quiet please")
    assert "Mastodon cannot restrict replies" in json.dumps(ack)
    await relay.click(LEADER, "choose_audience", preview_id(ack), selected="mastodon")
    await relay.click(LEADER, "approve", preview_id(ack))
    assert "renew MASTODON_ACCESS_TOKEN" in await relay.final_report()
    assert not mastodon.statuses


async def test_linkedin_closes_comments_in_one_way_mode(start_relay, mastodon, linkedin) -> None:
    relay = await start_public(start_relay, mastodon, linkedin, replies="none")
    ack = await relay.command(LEADER, "Announcement")
    assert "comments are closed (LinkedIn can only open or close them)" in json.dumps(ack)
    await relay.click(LEADER, "choose_audience", preview_id(ack), selected="linkedin")
    await relay.click(LEADER, "approve", preview_id(ack))
    await relay.final_report()
    [post] = linkedin.posts
    assert post.comments_state == "CLOSED"


async def test_linkedin_lost_answer_then_duplicate_counts_as_posted(start_relay, mastodon, linkedin) -> None:
    linkedin.faults.add("POST /rest/posts", Fault.drop_after())
    relay = await start_public(start_relay, mastodon, linkedin)
    report = await send(relay, "Posted once", audience="linkedin")
    [post] = linkedin.posts
    assert "1 of 1 delivered." in report and post.id in report


async def test_linkedin_expired_token_and_retired_version_read_clearly(start_relay, mastodon, linkedin) -> None:
    linkedin.token_expired = True
    relay = await start_public(start_relay, mastodon, linkedin)
    assert "LinkedIn says the token expired: renew LINKEDIN_ACCESS_TOKEN" in await send(
        relay, "Expired", audience="linkedin"
    )


async def test_linkedin_retired_version_names_the_setting(start_relay, mastodon, linkedin) -> None:
    relay = await start_public(start_relay, mastodon, linkedin, linkedin_extra='api_version = "202301"')
    report = await send(relay, "Old API", audience="linkedin")
    assert "LinkedIn has retired API version 202301: set api_version on [destinations.company-linkedin]" in report


async def test_linkedin_over_3000_characters_is_refused_in_the_preview(start_relay, mastodon, linkedin) -> None:
    relay = await start_public(start_relay, mastodon, linkedin)
    ack = await relay.command(LEADER, "(x) " * 700)
    assert "Too long for company-linkedin" in json.dumps(ack)


async def test_x_duplicate_content_reads_clearly(start_relay, x: FakeX) -> None:
    x.add_tweet("Same again")
    relay = await start_relay(config_text())
    await relay.answer(
        await relay.click(
            LEADER, "choose_audience", preview_id(ack := await relay.command(LEADER, "Same again")), selected="public"
        )
    )
    await relay.click(LEADER, "approve", preview_id(ack))
    assert "X rejected it as a duplicate of a recent post from this account." in await relay.final_report()


async def test_two_x_accounts_side_by_side_each_post_once(start_relay, x: FakeX) -> None:
    async with FakeX(access_token="ceo-token", access_token_secret="ceo-secret", username="ceo") as ceo:
        config = config_text().replace(
            "[audiences]",
            '[destinations.ceo-x]\nkind = "x"\naccess_token_env = "CEO_X_TOKEN"\n'
            'access_token_secret_env = "CEO_X_SECRET"\nurl_env = "CEO_X_API_URL"\n\n'
            '[audiences]\nboth = ["company-x", "ceo-x"]',
        )
        relay = await start_relay(config, CEO_X_TOKEN="ceo-token", CEO_X_SECRET="ceo-secret", CEO_X_API_URL=ceo.api_url)
        broadcast = preview_id(await relay.command(LEADER, "From both of us"))
        await relay.answer(await relay.click(LEADER, "choose_audience", broadcast, selected="both"))
        await relay.click(LEADER, "approve", broadcast)
        assert "2 of 2 delivered." in await relay.final_report()
        assert [t.text for t in x.tweets] == ["From both of us"] and [t.text for t in ceo.tweets] == ["From both of us"]
