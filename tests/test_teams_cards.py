"""Every Teams card fits what Teams takes, whatever it is drawn from: generated broadcasts, destinations,
failures and histories, each card checked for size and by Microsoft's own Adaptive Cards library."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import teams_cards as cards
from relay.config import DestinationConfig
from relay.destination import Counting
from relay.model import Alike, Broadcast, BroadcastState, Delivery, DeliveryState
from relay.render import MAX_MESSAGE_CHARACTERS, Rendering
from relay.reports import Report
from tests.fakes.adaptive_cards import SCRIPT
from tests.fakes.teams import MESSAGE_MAX_BYTES

ENVELOPE = 2_000  # the activity around a card: ids, service URL, conversation, sender, recipient
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Anything but backticks, which only the writer's own text may carry: the cards' own words must not.
characters = st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"], exclude_characters="`")
words = st.text(alphabet=characters, min_size=1, max_size=60)
long_text = st.one_of(words, st.text(alphabet=characters, min_size=1, max_size=MAX_MESSAGE_CHARACTERS))
names = st.from_regex(r"[a-z][a-z0-9-]{0,74}", fullmatch=True)


def problems(card: dict[str, Any]) -> list[str]:
    """What Microsoft's Adaptive Cards library (tests/msteams) refuses in `card`."""
    answer = subprocess.run(
        ["node", str(SCRIPT)], input=json.dumps(card) + "\n", capture_output=True, text=True, timeout=60
    )
    found: list[str] = json.loads(answer.stdout)
    return found


def assert_teams_takes(card: dict[str, Any]) -> None:
    assert cards.size(card) + ENVELOPE <= MESSAGE_MAX_BYTES, f"{cards.size(card):,} bytes"
    assert not [t for t in _texts(card) if "`" in t], "Adaptive Card markdown does not render backticks"


def _texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["text"]] if node.get("type") == "TextBlock" else []) + [
            t for v in node.values() for t in _texts(v)
        ]
    return [t for item in node for t in _texts(item)] if isinstance(node, list) else []


def broadcast(text: str, state: BroadcastState = BroadcastState.DRAFT, audience: str = "everyone") -> Broadcast:
    return Broadcast("b0123abcd", "teams:x", text, audience, state, 0.0, 1.0, None, "teams", {}, {})


@st.composite
def previews(draw: st.DrawFn) -> tuple[Broadcast, list[Rendering], dict[str, DestinationConfig], list[str]]:
    text = draw(long_text)
    count = draw(st.integers(1, 300))
    kinds = draw(st.lists(st.sampled_from(["slack", "teams", "x", "mastodon"]), min_size=count, max_size=count))
    renderings, destinations = [], {}
    for index, kind in enumerate(kinds):
        name = f"{draw(names)}-{index}"
        destinations[name] = DestinationConfig(name, kind, draw(st.booleans()), False, {})
        parts = (text,) if kind != "x" else tuple(text[i : i + 280] for i in range(0, min(len(text), 2800), 280))
        warnings = tuple(draw(st.lists(words, max_size=2)))
        error = draw(st.one_of(st.none(), words)) if index % 7 == 0 else None
        renderings.append(
            Rendering(name, parts, tuple(len(p) for p in parts), 280, Counting.CHARACTERS, warnings, error)
        )
    audiences = draw(st.lists(names, min_size=1, max_size=100, unique=True))
    return broadcast(text), renderings, destinations, audiences


@SETTINGS
@given(previews(), st.booleans())
def test_every_preview_and_approval_request_fits_teams(drawn: Any, second_person: bool) -> None:
    shown, renderings, destinations, audiences = drawn
    preview = cards.preview(shown, renderings, destinations, audiences, second_person)
    request = cards.approval_request(shown, "A Leader", renderings, destinations)
    assert_teams_takes(preview)
    assert_teams_takes(request)


def delivery(index: int, state: DeliveryState, error: str | None) -> Delivery:
    return Delivery(
        index,
        "b0123abcd",
        f"channel-{index:04}",
        "post",
        "teams",
        False,
        ("hi",),
        (),
        None,
        state,
        1 if error else 0,
        False,
        None,
        None,
        None,
        error,
    )


@st.composite
def deliveries(draw: st.DrawFn) -> list[Delivery]:
    count = draw(st.integers(1, 400))
    states = st.sampled_from([DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.UNKNOWN, DeliveryState.PENDING])
    return [
        delivery(i, draw(states), draw(st.one_of(st.none(), long_text.map(lambda t: t[:2000])))) for i in range(count)
    ]


@SETTINGS
@given(long_text, deliveries(), st.booleans())
def test_every_report_fits_teams(text: str, drawn: list[Delivery], scheduled: bool) -> None:
    shown = broadcast(text, BroadcastState.APPROVED)
    if scheduled:
        shown = Broadcast(**{**shown.__dict__, "send_at": 4_000_000_000.0})
    assert_teams_takes(cards.report(shown, Report.of([Alike(d) for d in drawn]), 0.0))


@SETTINGS
@given(st.lists(st.tuples(long_text, deliveries()), min_size=1, max_size=5), st.booleans())
def test_every_status_and_history_fits_teams(drawn: list[tuple[str, list[Delivery]]], detailed: bool) -> None:
    shown = [(broadcast(text, BroadcastState.APPROVED), each) for text, each in drawn]
    assert_teams_takes(cards.history(shown, detailed))


def test_the_largest_cards_pass_microsofts_adaptive_cards_library() -> None:
    renderings = [
        Rendering(f"c{i}", ("x" * 2000,), (2000,), 25000, Counting.CHARACTERS, ("w",), None) for i in range(31)
    ]
    destinations = {f"c{i}": DestinationConfig(f"c{i}", "teams", False, False, {}) for i in range(31)}
    failures = [delivery(i, DeliveryState.FAILED, "Teams rejected the message (400).") for i in range(200)]
    drawn = [
        cards.preview(broadcast("x" * 2000), renderings, destinations, ["everyone"], True),
        cards.approval_request(broadcast("x" * 2000), "A Leader", renderings, destinations),
        cards.report(broadcast("x" * 2000, BroadcastState.APPROVED), Report.of([Alike(d) for d in failures]), 0.0),
        cards.history([(broadcast("y", BroadcastState.APPROVED), failures)] * 5, True),
        cards.composer(["everyone", "staff"], "everyone"),
    ]
    for card in drawn:
        assert_teams_takes(card)
        assert problems(card) == []
