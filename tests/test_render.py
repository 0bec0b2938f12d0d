"""What each destination receives: Slack mrkdwn as written, X plain text counted and threaded as X counts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import bluesky, linkedin, mastodon, teams, threads
from adapters.slack import LIMITS as SLACK
from adapters.x import LIMITS as X
from relay import threads_text
from relay.render import InputError, clean, counter_for, render
from relay.twitter_text import parse_tweet, weighted_length


def test_slack_gets_the_markup_as_written() -> None:
    text = "*Bold* _news_ for <#C1|general>, see <https://example.com|the post>"
    rendering = render("all-staff", text, SLACK, allow_broadcast_mentions=False)
    assert rendering.parts == (text,)
    assert rendering.warnings == ()


@pytest.mark.parametrize(
    "spelling", ["<!channel>", "<!here>", "<!everyone>", "@channel", "@here", "<!channel|@channel>"]
)
def test_broadcast_mentions_are_neutralised_for_slack_with_a_warning(spelling: str) -> None:
    rendering = render("all-staff", f"Hello {spelling} all", SLACK, allow_broadcast_mentions=False)
    assert "<!" not in rendering.parts[0]
    assert "\u2060" in rendering.parts[0]
    assert "will not notify anyone in all-staff" in rendering.warnings[0]


def test_broadcast_mentions_pass_where_the_destination_allows_them() -> None:
    rendering = render("all-staff", "Hello @channel and <!here>", SLACK, allow_broadcast_mentions=True)
    assert rendering.parts == ("Hello <!channel> and <!here>",)
    assert rendering.warnings == ()


def test_x_gets_readable_plain_text() -> None:
    text = (
        "*Big news* <!channel>: <https://example.com/q3|our results>, thanks <@U123|alice> in <#C1|general> &amp; `all`"
    )
    rendering = render("company-x", clean(text), X, allow_broadcast_mentions=False)
    assert rendering.parts == ("Big news: our results (https://example.com/q3), thanks alice in #general & all",)
    assert rendering.warnings == ("@channel is left out for company-x: it only means something in Slack.",)


def test_a_long_text_becomes_a_numbered_thread_split_at_sentences() -> None:
    sentences = [f"Sentence number {i} talks about the plan for the quarter ahead." for i in range(12)]
    rendering = render("company-x", " ".join(sentences), X, allow_broadcast_mentions=False)
    total = len(rendering.parts)
    assert total > 1 and rendering.error is None
    for index, part in enumerate(rendering.parts, start=1):
        assert part.endswith(f" ({index}/{total})")
        body = part.rsplit(" (", 1)[0]
        assert body.endswith("."), "a part ends at a sentence boundary"
        assert parse_tweet(part).weighted_length == rendering.lengths[index - 1] <= 280
    rejoined = " ".join(p.rsplit(" (", 1)[0] for p in rendering.parts)
    assert rejoined == " ".join(sentences)


def test_cjk_counts_double_when_splitting() -> None:
    rendering = render("company-x", "日本語の文章です。" * 40, X, allow_broadcast_mentions=False)
    assert all(parse_tweet(p).weighted_length <= 280 for p in rendering.parts)
    assert len(rendering.parts) == 3  # 360 characters weigh 720: three posts


def test_too_many_thread_parts_is_refused_in_the_preview() -> None:
    rendering = render("company-x", "word " * 2000, X, allow_broadcast_mentions=False)
    assert rendering.error is not None and "at most 10" in rendering.error


def test_too_long_for_slack_is_refused_not_truncated() -> None:
    rendering = render("all-staff", "x" * 40_001, SLACK, allow_broadcast_mentions=False)
    assert rendering.error == "Too long for all-staff: 40,001 of 40,000 characters. Shorten the message."


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "\x00\x01"])
def test_empty_text_gets_a_clear_message(text: str) -> None:
    with pytest.raises(InputError, match="The message is empty"):
        clean(text)


def test_over_long_input_gets_a_clear_message() -> None:
    with pytest.raises(InputError, match="41,000 characters; a broadcast can carry at most 40,000"):
        clean("a" * 41_000)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(min_size=1, max_size=40),
            st.sampled_from(
                ["👩‍👩‍👧‍👦", "🇯🇵", "日本", "https://example.com/" + "p" * 40, "مرحبا", "a.co", "\u200f", "é"]
            ),
        ),
        min_size=1,
        max_size=60,
    ).map(" ".join)
)
def test_no_rendered_x_part_ever_exceeds_the_limit(text: str) -> None:
    try:
        cleaned = clean(text)
    except InputError:
        return
    rendering = render("company-x", cleaned, X, allow_broadcast_mentions=False)
    for part in rendering.parts:
        assert weighted_length(part) <= 280
        assert parse_tweet(part).weighted_length <= 280


def test_links_keep_their_underscores_and_asterisks_on_x() -> None:
    rendering = render("company-x", "_Read_ https://example.com/_draft_/a*b* now", X, allow_broadcast_mentions=False)
    assert rendering.parts == ("Read https://example.com/_draft_/a*b* now",)


PUBLIC_LIMITS = {
    "x": X,
    "mastodon": mastodon.LIMITS,
    "bluesky": bluesky.LIMITS,
    "linkedin": linkedin.LIMITS,
    "teams": teams.LIMITS,
    "threads": threads.LIMITS,
}
HOSTILE = st.lists(
    st.one_of(
        st.text(min_size=1, max_size=60),
        st.sampled_from(
            [
                "👩‍👩‍👧‍👦",
                "🇯🇵🇫🇷",
                "日本語の文",
                "https://example.com/" + "p" * 80,
                "مرحبا بالعالم",
                "\u202e",
                "a.co",
                "#tag",
                "(x)*_~",
            ]
        ),
    ),
    min_size=1,
    max_size=120,
).map(" ".join)


@pytest.mark.parametrize("network", sorted(PUBLIC_LIMITS))
@settings(max_examples=60, deadline=None)
@given(text=HOSTILE)
def test_no_part_exceeds_its_networks_limit(network: str, text: str) -> None:
    limits = PUBLIC_LIMITS[network]
    try:
        cleaned = clean(text)
    except InputError:
        return
    rendering = render(network, cleaned, limits, allow_broadcast_mentions=False)
    measure = counter_for(limits)
    if rendering.error is None:
        assert all(measure(part) <= limits.max_length for part in rendering.parts)
        assert len(rendering.parts) <= limits.max_thread_parts


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("Our results", 11),
        ("café 日本", 7),  # a character is a code point, whatever its script
        ("😀", 4),  # an emoji is its UTF-8 bytes (Meta: "Emojis are counted as the number of UTF-8 bytes")
        ("👍🏽", 8),  # with its skin tone
        ("👨‍👩‍👧", 18),  # a family: three emoji and two joiners, one cluster
        ("🇫🇷", 8),  # a flag
        ("1️⃣", 7),  # a keycap
        ("https://example.com/" + "p" * 80, 100),  # links count in full: Threads shortens none
    ],
)
def test_threads_counts_characters_and_emoji_as_their_bytes(text: str, length: int) -> None:
    assert threads_text.length(text) == length


def test_threads_gets_500_by_its_count_as_a_reply_thread() -> None:
    text = " ".join(f"Point {i} 🚀 is about the plan for the quarter ahead of us all." for i in range(20))
    rendering = render("company-threads", text, threads.LIMITS, allow_broadcast_mentions=False)
    assert rendering.error is None and len(rendering.parts) > 2
    assert all(threads_text.length(part) <= 500 for part in rendering.parts)
    assert all(len(part) < threads_text.length(part) for part in rendering.parts), "each rocket counts 4"


def test_threads_spreads_more_than_5_links_over_its_parts() -> None:
    text = " ".join(f"Report {i}: https://example.com/r/{i}" for i in range(8))
    rendering = render("company-threads", text, threads.LIMITS, allow_broadcast_mentions=False)
    assert rendering.error is None and len(rendering.parts) == 2
    assert [threads_text.distinct_links(part) for part in rendering.parts] == [5, 3]
