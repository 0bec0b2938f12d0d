"""Every Slack message and modal the bot builds is one Slack takes, whatever it is given: generated texts,
names, destinations, failures, audiences and broadcasts, checked by the fake Slack's own checker."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import slack_blocks as blocks
from relay.broadcasts import Approval
from relay.config import AUDIENCE_NAME_MAX, AUDIENCES_MAX, DestinationConfig, Policy
from relay.destination import Counting
from relay.model import Broadcast, BroadcastState, Delivery, DeliveryState
from relay.render import Rendering
from relay.reports import Line, Report, Status
from tests.fakes.block_kit import message_problems, too_long, view_problems

FAST = settings(max_examples=40, deadline=None)
# Characters that make Slack text hard to cut: links, mentions, entities, emoji with modifiers, line breaks.
_PIECES = st.sampled_from(
    [
        "word ",
        "<https://example.com/a/long/path|a label> ",
        "<@U0LEAD> ",
        "&amp; ",
        "👩🏽‍💻",
        ":tada: ",
        "\n",
        "é",
        "x" * 50,
    ]
)


def _text(pieces: list[str], times: int) -> str:
    """The pieces `times` over, in at most 40,000 characters of whole repetitions: cut anywhere, the text
    itself could end in half a link, which no split could keep whole."""
    once = "".join(pieces)
    return (once * min(times, max(1, 40_000 // max(1, len(once))))).strip() or "x"


PIECES = st.lists(_PIECES, min_size=1, max_size=30)
TEXT = st.builds(_text, PIECES, st.integers(1, 600))
NAME = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=120)
AUDIENCE = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=AUDIENCE_NAME_MAX)


def fits(message: list[dict[str, Any]] | None) -> None:
    """What chat.postMessage would take: no invalid_blocks, no msg_blocks_too_long."""
    assert message_problems(message) == []
    assert not too_long(message)


def broadcast(text: str, audience: str = "everyone", state: BroadcastState = BroadcastState.DRAFT) -> Broadcast:
    return Broadcast("b0123abcd", "slack:U0LEAD", text, audience, state, 1.8e9, 1.8e9 + 3600, None, "slack", {}, {})


POLICY = Policy(frozenset({"slack:U0LEAD"}), frozenset(), "everyone", None, __import__("datetime").timedelta(1))


@st.composite
def destinations(draw: st.DrawFn) -> tuple[list[Rendering], dict[str, DestinationConfig], str]:
    """Up to 300 destinations of any kinds, with their renderings of one text (a few failing or warned)."""
    text = draw(TEXT)
    names = draw(st.lists(NAME, min_size=1, max_size=300, unique=True))
    kinds = draw(
        st.lists(st.sampled_from(["slack", "x", "mastodon", "teams"]), min_size=len(names), max_size=len(names))
    )
    configs, renderings = {}, []
    for n, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        options = {"channel": f"C{n:08d}"} if kind in ("slack", "teams") else {}
        configs[name] = DestinationConfig(name, kind, draw(st.booleans()), False, options)
        parts = (text,) if kind in ("slack", "teams") else tuple(text[i : i + 500] for i in range(0, len(text), 500))
        error = draw(st.none() | st.text(min_size=1, max_size=600))
        warnings = tuple(draw(st.lists(st.text(min_size=1, max_size=300), max_size=3)))
        renderings.append(
            Rendering(
                name,
                () if error else parts,
                tuple(map(len, parts)),
                40_000,
                Counting.CHARACTERS,
                warnings,
                error,
                draw(st.none() | st.just("only people the account follows")),
            )
        )
    return renderings, configs, text


@FAST
@given(destinations(), st.lists(AUDIENCE, min_size=1, max_size=AUDIENCES_MAX, unique=True), st.booleans())
def test_every_preview_fits(
    drawn: tuple[list[Rendering], dict[str, DestinationConfig], str], audiences: list[str], four_eyes: bool
) -> None:
    renderings, configs, text = drawn
    fits(blocks.preview(broadcast(text, audiences[0]), renderings, configs, audiences, four_eyes))


@FAST
@given(destinations(), st.sampled_from([BroadcastState.PENDING, BroadcastState.EDIT_PENDING]), AUDIENCE)
def test_every_approval_request_fits(
    drawn: tuple[list[Rendering], dict[str, DestinationConfig], str], state: BroadcastState, audience: str
) -> None:
    renderings, configs, text = drawn
    fits(blocks.approval_request(broadcast(text, audience, state), renderings, configs, POLICY))


LINE = st.builds(
    Line,
    NAME,
    st.sampled_from(list(Status)),
    st.text(max_size=1000),
    st.none() | st.just("https://test.slack.com/archives/C1/p1"),
    st.none() | st.floats(1.8e9, 1.9e9),
)


@FAST
@given(TEXT, AUDIENCE, st.lists(LINE, max_size=500), st.lists(st.text(min_size=1, max_size=100), max_size=30))
def test_every_live_report_fits(text: str, audience: str, lines: list[Line], tallies: list[str]) -> None:
    now = Report("8 of 300 delivered, in progress…", lines, [(Status.POSTED, t) for t in tallies])
    _, shown = blocks.report(broadcast(text, audience, BroadcastState.APPROVED), now)
    fits(shown)


def delivery(n: int, name: str, state: DeliveryState, error: str | None) -> Delivery:
    return Delivery(
        n, "b0123abcd", name, "post", "slack", False, ("t",), (), None, state, 1, False, None, None, None, error
    )


DELIVERY = st.tuples(NAME, st.sampled_from(list(DeliveryState)), st.none() | st.text(max_size=1000))


@FAST
@given(st.lists(st.tuples(TEXT, AUDIENCE, st.lists(DELIVERY, max_size=300)), min_size=1, max_size=20), st.booleans())
def test_every_status_and_history_fits(
    shown: list[tuple[str, str, list[tuple[str, DeliveryState, str | None]]]], detailed: bool
) -> None:
    rows = [
        (broadcast(text, audience), [delivery(n, *each) for n, each in enumerate(deliveries)])
        for text, audience, deliveries in shown
    ]
    fits(blocks.history(rows, detailed)["blocks"])


@FAST
@given(TEXT)
def test_every_correction_answer_fits(text: str) -> None:
    done = blocks.corrected(Approval(broadcast(text, state=BroadcastState.APPROVED), True))
    fits(done["blocks"])
    fits(blocks.too_long_to_correct(broadcast(text))["blocks"])


@FAST
@given(st.lists(AUDIENCE, min_size=1, max_size=AUDIENCES_MAX, unique=True), st.text(max_size=blocks.INPUT_MAX))
def test_every_composer_fits(audiences: list[str], text: str) -> None:
    metadata = {"broadcast_id": "b0123abcd", "response_url": "https://hooks.slack.com/actions/T0/1/" + "x" * 60}
    assert view_problems(blocks.composer(audiences, audiences[-1], metadata, text, "edit")) == []


def test_a_text_longer_than_the_form_is_refused_rather_than_cut() -> None:
    with pytest.raises(ValueError, match="does not fit Slack's form"):
        blocks.composer(["everyone"], "everyone", {}, "x" * (blocks.INPUT_MAX + 1))


@FAST
@given(PIECES, st.integers(1, 600), st.one_of(st.integers(20, 200), st.integers(2003, 3000)))
def test_a_split_loses_nothing_and_cuts_no_link_mention_entity_or_emoji(
    chosen: list[str], times: int, size: int
) -> None:
    text = _text(chosen, times)  # built here: Hypothesis shows the pieces of a failing case, not 40,000 characters
    pieces = blocks.split(text, size)
    assert "".join("".join(pieces).split()) == "".join(text.split()), "nothing lost but white space between pieces"
    assert all(len(piece) <= size for piece in pieces)
    for piece in pieces:
        if size > 2002:  # a link or mention longer than a piece is all that may be cut (a section holds 3,000)
            assert piece.count("<") == piece.count(">"), "a link or mention is whole in one piece"
        assert not piece.endswith(("&", "&a", "&am", "&amp")) and not piece.startswith(("amp;", "mp;", "p;"))
        assert not piece.startswith(("\u200d", "\U0001f3fd")), "an emoji keeps its joiners and modifiers"
