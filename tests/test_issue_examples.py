"""Messages the old counting got wrong, posted through the bot to the fake X and Mastodon, which count as
the networks do: each goes out as a valid thread, and every link arrives whole."""

from __future__ import annotations

import pytest

from relay.twitter_text import extract_urls, mastodon_urls, parse_tweet
from tests.conftest import LEADER, config_text, preview_id, public_config, public_env
from tests.fakes import FakeLinkedIn, FakeMastodon, FakeX, Fault

JAPANESE = "新しい製品の機能と価格について、担当チームから詳しく説明します。" * 18
EXAMPLES = [
    pytest.param(
        f"新製品の<https://example.com/ja/new|詳細>をご覧ください。{JAPANESE}", ["https://example.com/ja/new"], id="cjk"
    ),
    pytest.param(
        "<https://example.com/q3|the Q3 report>'s summary. " + "We grew in every region this quarter. " * 12,
        ["https://example.com/q3"],
        id="label-then-apostrophe",
    ),
    pytest.param("a" * 250 + " https://intranet.corp/" + "x" * 40, [], id="host-without-tld"),
    pytest.param("Thanks to every team " * 12 + "🫱🏼‍🫲🏿🫱🏼‍🫲🏿🫱🏼‍🫲🏿", [], id="handshakes"),
    pytest.param("Welcome @alice@example.com! " + "é" * 480, [], id="remote-mention"),
]


@pytest.mark.parametrize(("message", "links"), EXAMPLES)
async def test_the_issues_examples_go_out_as_valid_threads_with_whole_links(
    start_relay, mastodon: FakeMastodon, linkedin: FakeLinkedIn, x: FakeX, message: str, links: list[str]
) -> None:
    relay = await start_relay(public_config(), **public_env(mastodon, linkedin))
    broadcast = preview_id(await relay.command(LEADER, message))
    await relay.click(LEADER, "approve", broadcast)
    report = await relay.final_report()
    assert "3 of 3 delivered." in report, report
    assert x.tweets and all(parse_tweet(tweet.text).valid for tweet in x.tweets)
    assert [tweet.in_reply_to_id for tweet in x.tweets[1:]] == [tweet.id for tweet in x.tweets[:-1]]
    assert [u.url for t in x.tweets for u in extract_urls(t.text) if u.url in links] == links
    assert [u.url for s in mastodon.statuses for u in mastodon_urls(s.text) if u.url in links] == links


async def test_a_refusal_for_length_is_reported_as_a_length_problem_with_the_count(start_relay, x: FakeX) -> None:
    """X answers 403 for a text too long (as for missing permissions): the report must say which."""
    too_long = {"title": "Forbidden", "detail": "Your Tweet text is too long.", "type": "about:blank", "status": 403}
    x.faults.add("POST /2/tweets", Fault.status(403, too_long))
    relay = await start_relay(config_text())
    broadcast = preview_id(await relay.command(LEADER, "日本語のお知らせ"))
    await relay.click(LEADER, "approve", broadcast)
    report = await relay.final_report()
    assert "X refused the post as too long: 16 of 280 weighted characters" in report
    assert "permission" not in report
