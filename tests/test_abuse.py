"""Hostile and malformed input through Slack and Teams: each gets a clear answer, nothing is posted or lost."""

from __future__ import annotations

import io
import json

import pytest

from tests.conftest import LEADER, STAFF_CHANNEL, TEAMS_ENV, preview_id, teams_config
from tests.fakes import FakeSlack, FakeX
from tests.slack_requests import action_body, command_body, signed_headers
from tests.teams_activities import CEO, TeamsClient, message

SIGNING = "test-signing-secret-0123456789"

# (what the leader types, what the answer must say): a preview, or a specific refusal.
TEXTS = [
    ("a" * 40_001, "a broadcast can carry at most 40,000"),
    ("\u200b\u200c\u200d\u2060", "The message is empty"),
    ("\x00\x01\x02", "The message is empty"),
    ("\u202eevil override", "evil override"),
    ("<!channel> hello", "will not notify anyone"),
    ("<!here|here> hello", "will not notify anyone"),
    ("<!everyone> hello", "will not notify anyone"),
    ("@channel hello", "will not notify anyone"),
    ("@HERE hello", "will not notify anyone"),
    ("@everyone hello", "will not notify anyone"),
    ("<!subteam^S0ENG|@engineering> hello", "will not notify anyone"),
    ("*unclosed bold and _italic", "unclosed bold"),
    ("<https://example.com|", "example.com"),
    ("<>", "Preview"),
    ("<script>alert(1)</script>", "Preview"),
    ("<img src=x onerror=alert(1)>", "Preview"),
    ("'; DROP TABLE broadcasts; --", "DROP TABLE"),
    ("Robert'); DELETE FROM deliveries;--", "DELETE FROM"),
    ("👩‍👩‍👧‍👦🏳️‍🌈🇺🇦" * 50, "Preview"),
    ("日本語のテキスト。" * 60, "Part 1/4"),
    ("https://example.com/" + "a" * 5000, "Preview"),
    ("http://", "Preview"),
    ("http://[::1:80/broken", "Preview"),
    ("mailto:someone@example.com", "Preview"),
    ("%s %n %x {0} ${jndi:ldap://x}", "jndi"),
    ("line\r\nbreaks\rand\ttabs", "breaks"),
    ("&lt;b&gt; &amp;amp;", "Preview"),
    ("```code block never closed", "Preview"),
    ("> quote\n> more", "quote"),
    ("emoji \U0001f600 end", "end"),
    ("word " * 2000, "at most 10 are allowed in a thread"),
]


@pytest.mark.parametrize(("text", "expected"), TEXTS, ids=[f"text{i}" for i in range(len(TEXTS))])
async def test_hostile_text_gets_a_clear_answer_and_nothing_is_posted(
    start_relay, slack: FakeSlack, x: FakeX, text: str, expected: str
) -> None:
    relay = await start_relay()
    answer = json.dumps(await relay.command(LEADER, text), ensure_ascii=False)
    assert expected in answer
    assert not slack.messages(STAFF_CHANNEL) and not x.calls


async def test_forged_and_broken_slack_requests_are_refused_without_effect(
    start_relay, slack: FakeSlack, x: FakeX
) -> None:
    relay = await start_relay()
    broadcast = preview_id(await relay.command(LEADER, "Real draft"))
    cases = []
    # an audience that does not exist, and a broadcast that does not exist, from a signed click
    cases.append(await relay.click(LEADER, "choose_audience", broadcast, selected="investors"))
    cases.append(await relay.click(LEADER, "approve", "b0000dead"))
    answers = [(await relay.answer(key))["text"] for key in cases]
    assert "There is no audience called 'investors'" in answers[0]
    assert answers[1] == "There is no broadcast b0000dead."
    # a truncated payload, JSON instead of a form, an unsigned body, a replayed old signature, an oversized body
    truncated = action_body(LEADER, "approve", broadcast, slack.response_url("t"))[:-40]
    statuses = [
        (await relay.post_signed(truncated)).status,
        (
            await relay.post_signed(
                json.dumps({"type": "block_actions"}),
                {**signed_headers(SIGNING, "{}"), "Content-Type": "application/json"},
            )
        ).status,
        (
            await relay.post_signed(
                command_body(LEADER, "x", "u"), {"Content-Type": "application/x-www-form-urlencoded"}
            )
        ).status,
        (
            await relay.post_signed(
                body := command_body(LEADER, "old", "u"), signed_headers(SIGNING, body, timestamp=1_600_000_000)
            )
        ).status,
    ]
    big = "a" * 2_000_000
    headers = signed_headers(SIGNING, big)
    async with relay.http.post(
        f"{relay.url}/slack/events", data=io.BytesIO(big.encode()), headers=headers
    ) as oversized:
        statuses.append(oversized.status)
    assert all(400 <= status < 500 for status in statuses), statuses
    assert not slack.messages(STAFF_CHANNEL) and not x.calls


@pytest.mark.parametrize(
    "body",
    [
        "{}",
        "not json",
        json.dumps({"type": "message"}),
        json.dumps({"type": "message", "text": "broadcast hi", "conversation": {"id": "a:1"}}),
        json.dumps([1, 2, 3]),
    ],
)
async def test_malformed_teams_activities_get_4xx_and_change_nothing(
    start_relay, connector, x: FakeX, body: str
) -> None:
    relay = await start_relay(teams_config(), **TEAMS_ENV)
    async with relay.http.post(
        f"{relay.url}/api/messages", data=body, headers={"Content-Type": "application/json"}
    ) as answer:
        assert 400 <= answer.status < 500
    assert not connector.calls and not x.calls


async def test_hostile_text_from_teams_is_previewed_not_posted(start_relay, connector, x: FakeX) -> None:
    relay = await start_relay(teams_config(), **TEAMS_ENV)
    teams = TeamsClient(relay.url, relay.http)
    status, _ = await teams.send(message(connector.service_url, CEO, "broadcast <script>alert(1)</script> <!channel>"))
    assert status in (200, 202)
    await connector.wait_for(lambda: connector.calls)
    assert not x.calls
