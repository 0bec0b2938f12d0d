"""Hostile and malformed input through Slack and Teams: each gets a clear answer, nothing is posted or lost.

Table-driven: every row is one input a leader (or anyone holding the URL) could send, and the words the
answer must contain. "Nothing posted" means no staff channel, no tweet, no Teams channel post; "nothing
lost" means a message that was previewed is kept as a draft (it shows in `status`), and one that was
refused left nothing behind. Each row is tallied for the published figures.
"""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import LEADER, SIGNING_SECRET, STAFF_CHANNEL, TEAMS_ENV, Relay, preview_id, teams_config
from tests.fakes import FakeSlack, FakeX
from tests.fakes.teams import FakeConnector
from tests.proof import tally
from tests.slack_requests import TEAM, action_body, command_body, signed_headers
from tests.teams_activities import ANNOUNCEMENTS, CEO, TeamsClient, action, message, personal
from tests.test_teams_flow import card_id, card_text

INPUTS = "hostile or malformed inputs tried"
WARNED = "will not notify anyone"  # a broadcast mention in Slack, shown as a warning on the preview
TEAMS_MESSAGE_MAX = 28_000  # bytes: Teams refuses bigger bot messages (learn.microsoft.com, "Format your bot messages")

# (what the leader types after /broadcast, what the answer must say): a preview, or a specific refusal.
SLACK_TEXTS = [
    # too long, or nothing left once invisible characters go
    ("a" * 40_001, "40,001 characters; a broadcast can carry at most 40,000"),
    ("word " * 2000, "at most 10 are allowed in a thread"),
    ("\u200b\u200c\u200d\u2060", "The message is empty"),
    ("\ufeff\u200e\u200f", "The message is empty"),
    ("\x00\x01\x02", "The message is empty"),
    ("\x1b[31mred alert\x1b[0m", "[31mred alert[0m"),  # terminal escapes lose their ESC, nothing more
    ("a\x00b\x7fc", "abc"),
    ("line\r\nbreaks\rand\ttabs", "breaks"),
    # right-to-left overrides and isolates are kept, and shown as they will be sent
    ("\u202eevil override", "\u202eevil override"),
    ("invoice\u2067gnp.exe\u2069", "invoice\u2067gnp.exe\u2069"),
    # broadcast mentions, in every spelling Slack sends or a person types
    ("<!channel> hello", WARNED),
    ("<!channel|channel> hello", WARNED),
    ("<!here> hello", WARNED),
    ("<!here|here> hello", WARNED),
    ("<!everyone> hello", WARNED),
    ("@channel hello", WARNED),
    ("@HERE hello", WARNED),
    ("@Everyone hello", WARNED),
    # user-group mentions notify as widely
    ("<!subteam^S0ENG|@engineering> hello", "@engineering will not notify anyone"),
    ("<!subteam^S0ENG> hello", "@group will not notify anyone"),
    # malformed mrkdwn and links
    ("*unclosed bold and _italic", "*unclosed bold and _italic"),
    ("<https://example.com|", "<https://example.com|"),
    ("<>", "Preview of broadcast"),
    ("```code block never closed", "code block never closed"),
    ("> quote\n> more", "quote\\nmore"),
    ("<https://evil.example|https://bank.example>", "https://bank.example (https://evil.example)"),
    ("<javascript:alert(1)|click me>", "click me (javascript:alert(1))"),
    # HTML and script tags: Slack escapes what a person types; X and the others get it as plain text
    ("&lt;script&gt;alert(1)&lt;/script&gt;", "<script>alert(1)</script>"),
    ("<script>alert(1)</script>", "scriptalert(1)/script"),
    ("<img src=x onerror=alert(1)>", "img src=x onerror=alert(1)"),
    ("&lt;b&gt; &amp;amp;", "<b> &amp;"),
    # text that looks like SQL, format strings or template injection is just text
    ("'; DROP TABLE broadcasts; --", "'; DROP TABLE broadcasts; --"),
    ("Robert'); DELETE FROM deliveries;--", "Robert'); DELETE FROM deliveries;--"),
    ("%s %n %x {0} ${jndi:ldap://x}", "%s %n %x {0} ${jndi:ldap://x}"),
    # emoji joiner sequences and CJK are counted the way X counts them
    ("👩‍👩‍👧‍👦🏳️‍🌈🇺🇦" * 50, "Part 1/2"),
    ("日本語のテキスト。" * 60, "Part 1/4"),
    ("emoji \U0001f600 end", "emoji \U0001f600 end"),
    # huge and malformed URLs
    # past 4,096 characters X no longer sees a link (twitter-text's MAX_URL_LENGTH): text, threaded
    ("https://example.com/" + "a" * 5000, "Part 1/5"),
    ("https://example.com/?q=" + "a" * 39_000, "at most 10 are allowed in a thread"),
    ("http://", "http://"),
    ("http://[::1:80/broken", "http://[::1:80/broken"),
    ("<https://exa mple.com|spaced>", "spaced (https://exa mple.com)"),
    ("mailto:someone@example.com", "mailto:someone@example.com"),
]


def slack_can_show(answer: dict[str, Any]) -> None:
    """Slack refuses a message over its Block Kit limits, and the leader would see nothing."""
    blocks = answer.get("blocks") or []
    assert len(blocks) <= 50
    for block in blocks:
        for field in [block.get("text")] + list(block.get("elements") or []):
            if isinstance(field, dict) and isinstance(field.get("text"), str):
                assert len(field["text"]) <= 3000


async def kept_drafts(relay: Relay) -> str:
    """What `/broadcast status` lists: the drafts the relay kept."""
    return json.dumps(await relay.command(LEADER, "status"), ensure_ascii=False)


@pytest.mark.parametrize(("text", "expected"), SLACK_TEXTS, ids=[f"slack{i}" for i in range(len(SLACK_TEXTS))])
async def test_hostile_text_gets_a_clear_answer_and_nothing_is_posted(
    start_relay, slack: FakeSlack, x: FakeX, text: str, expected: str
) -> None:
    tally(INPUTS)
    relay = await start_relay()
    ack = await relay.command(LEADER, text)
    assert expected in json.dumps(ack, ensure_ascii=False)
    slack_can_show(ack)
    if "Preview of broadcast" in ack.get("text", ""):
        assert f"`{preview_id(ack)}" in await kept_drafts(relay), "the draft is kept"
    else:
        assert ack["response_type"] == "ephemeral" and "No broadcasts yet." in await kept_drafts(relay)
    assert not slack.messages(STAFF_CHANNEL) and not x.calls


@pytest.mark.parametrize("text", ["", "   ", "\t\n", "\u00a0", "\u3000"], ids=["empty", "spaces", "tab", "nbsp", "cjk"])
async def test_a_blank_command_opens_the_composer_and_records_nothing(
    start_relay, slack: FakeSlack, x: FakeX, text: str
) -> None:
    tally(INPUTS)
    relay = await start_relay()
    await relay.command(LEADER, text)
    [opened] = slack.calls_to("views.open")
    view = opened.params["view"]
    assert (json.loads(view) if isinstance(view, str) else view)["callback_id"] == "compose"
    assert "No broadcasts yet." in await kept_drafts(relay)
    assert not slack.messages(STAFF_CHANNEL) and not x.calls


@pytest.mark.parametrize(
    ("message", "audience", "expected"),
    [
        ("Town hall", "investors", "There is no audience called 'investors'. Choose one of: staff, public, everyone."),
        ("\u200b", "staff", "The message is empty"),
        ("   ", "staff", "The message is empty"),
    ],
    ids=["unknown-audience", "zero-width", "blank"],
)
async def test_a_hostile_composer_submission_is_refused_in_the_form(
    start_relay, slack: FakeSlack, x: FakeX, message: str, audience: str, expected: str
) -> None:
    tally(INPUTS)
    relay = await start_relay()
    response = await relay.submit_view(LEADER, "compose", {}, message, audience)
    answer = await response.json()
    assert answer["response_action"] == "errors" and expected in answer["errors"]["message"]
    assert "No broadcasts yet." in await kept_drafts(relay)
    assert not slack.messages(STAFF_CHANNEL) and not x.calls


@pytest.mark.parametrize(
    ("action_id", "target", "selected", "expected"),
    [
        ("choose_audience", "draft", "investors", "There is no audience called 'investors'"),
        ("approve", "b0000dead", None, "There is no broadcast b0000dead."),
        ("approve", "'; DROP TABLE broadcasts; --", None, "There is no broadcast '; DROP TABLE broadcasts; --."),
        ("retract", "b00000000", None, "There is no broadcast b00000000."),
    ],
    ids=["unknown-audience", "unknown-broadcast", "sql-as-id", "retract-unknown"],
)
async def test_a_click_naming_what_does_not_exist_is_answered_and_changes_nothing(
    start_relay, slack: FakeSlack, x: FakeX, action_id: str, target: str, selected: str | None, expected: str
) -> None:
    tally(INPUTS)
    relay = await start_relay()
    draft = preview_id(await relay.command(LEADER, "Real draft"))
    key = await relay.click(LEADER, action_id, draft if target == "draft" else target, selected=selected)
    answer = await relay.answer(key)
    assert expected in answer["text"] and answer["replace_original"] is False
    kept = await kept_drafts(relay)
    assert f"`{draft} · " in kept and "· everyone · draft · Real draft`" in kept, "the real draft is untouched"
    assert not slack.messages(STAFF_CHANNEL) and not x.calls


def _form(payload: Any) -> str:
    return urlencode({"payload": json.dumps(payload)})


SOMEONE = {"id": LEADER, "team_id": TEAM}  # an interaction's user, as Slack names them

# (what arrives at POST /slack/events, validly signed, and the status it gets)
SLACK_REQUESTS: list[tuple[str, Any, int]] = [
    ("truncated-payload", lambda url: action_body(LEADER, "approve", "b0000dead", url)[:-40], 400),
    ("payload-not-json", lambda url: "payload=not%20json", 400),
    ("payload-a-list", lambda url: _form([1, 2, 3]), 400),
    ("payload-without-user", lambda url: _form({"type": "block_actions", "actions": [{}]}), 400),
    ("click-without-actions", lambda url: _form({"type": "block_actions", "user": SOMEONE, "actions": []}), 400),
    ("submission-without-view", lambda url: _form({"type": "view_submission", "user": SOMEONE}), 400),
    ("command-without-user", lambda url: command_body(LEADER, "hi", url).replace("user_id=U0LEAD", "user_id="), 400),
    (
        "payload-without-team",
        lambda url: _form({"type": "block_actions", "user": {"id": LEADER}, "actions": [{}]}),
        400,
    ),
    ("unknown-payload-type", lambda url: _form({"type": "nonsense", "user": SOMEONE}), 404),
    ("unknown-command", lambda url: command_body(LEADER, "hi", url).replace("%2Fbroadcast", "%2Fother"), 404),
    ("empty-body", lambda url: "", 404),
]


@pytest.mark.parametrize(("body", "status"), [r[1:] for r in SLACK_REQUESTS], ids=[r[0] for r in SLACK_REQUESTS])
async def test_a_signed_but_malformed_slack_request_gets_4xx_and_changes_nothing(
    start_relay, slack: FakeSlack, x: FakeX, body: Any, status: int
) -> None:
    tally(INPUTS)
    relay = await start_relay()
    answer = await relay.post_signed(body(slack.response_url("r")))
    assert answer.status == status, await answer.text()
    assert not slack.responses and "No broadcasts yet." in await kept_drafts(relay)
    assert not slack.messages(STAFF_CHANNEL) and not x.calls


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", json.dumps({"command": "/broadcast", "text": "hi", "user_id": LEADER})),
        ("text/plain", "command=%2Fbroadcast&text=hi&user_id=U0LEAD"),
        ("multipart/form-data; boundary=x", '--x\r\nContent-Disposition: form-data; name="text"\r\n\r\nhi\r\n--x--'),
        ("application/xml", "<command>/broadcast</command>"),
    ],
    ids=["json", "text", "multipart", "xml"],
)
async def test_a_signed_request_of_the_wrong_content_type_gets_415(
    start_relay, slack: FakeSlack, x: FakeX, content_type: str, body: str
) -> None:
    tally(INPUTS)
    relay = await start_relay()
    answer = await relay.post_signed(body, {**signed_headers(SIGNING_SECRET, body), "Content-Type": content_type})
    assert answer.status == 415 and "application/x-www-form-urlencoded" in await answer.text()
    assert "No broadcasts yet." in await kept_drafts(relay)
    assert not slack.messages(STAFF_CHANNEL) and not x.calls


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"command=%2Fbroadcast&user_id=U0LEAD&text=\xff\xfe", 400), (b"text=" + b"a" * 2_000_000, 413)],
    ids=["not-utf8", "oversized"],
)
async def test_a_body_slack_would_never_send_gets_4xx(
    start_relay, slack: FakeSlack, x: FakeX, body: bytes, status: int
) -> None:
    tally(INPUTS)
    relay = await start_relay()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with relay.http.post(f"{relay.url}/slack/events", data=io.BytesIO(body), headers=headers) as answer:
        assert answer.status == status
    assert "No broadcasts yet." in await kept_drafts(relay)
    assert not slack.messages(STAFF_CHANNEL) and not x.calls


# ---- Teams -------------------------------------------------------------------------------------------

# (what the leader writes after `broadcast` in a chat with the bot, what the answer must say)
TEAMS_TEXTS = [
    ("a" * 40_001, "40,001 characters; a broadcast can carry at most 40,000"),
    ("\u200b\u200c\u200d\u2060", "The message is empty"),
    ("\x01\x02\x03", "The message is empty"),
    ("\u202eevil override", "\u202eevil override"),
    ("@channel hello", WARNED),
    ("&lt;!here&gt; hello", WARNED),
    ("&lt;!subteam^S0ENG|@engineering&gt; hello", "@engineering will not notify anyone"),
    ("<script>alert(1)</script>hello", "<script>alert(1)</script>hello"),  # not Teams' formatting: text
    ("&lt;script&gt;alert(1)&lt;/script&gt;", "<script>alert(1)</script>"),
    ("'; DROP TABLE broadcasts; --", "'; DROP TABLE broadcasts; --"),
    ("👩‍👩‍👧‍👦🏳️‍🌈" * 20, "👩‍👩‍👧‍👦🏳️‍🌈"),
    ("日本語のテキスト。" * 60, "Part 1/4"),
    ("https://example.com/" + "a" * 5000, "Part 1/5"),
    ("word " * 2000, "at most 10 are allowed in a thread"),
    ("日本語" * 8000, "cut here to fit Teams"),
]


async def teams_answer(connector: FakeConnector, user: str = CEO) -> tuple[str, dict[str, Any]]:
    """The bot's answer in the person's chat: its words (a card's, or a message's), and the message."""
    [answer] = await connector.wait_for(lambda: connector.posted(personal(user)["id"]))
    cards = [a["content"] for a in answer.get("attachments") or []]
    return (card_text(cards[0]) if cards else answer.get("text", "")), answer


@pytest.mark.parametrize(("text", "expected"), TEAMS_TEXTS, ids=[f"teams{i}" for i in range(len(TEAMS_TEXTS))])
async def test_hostile_text_from_teams_gets_a_clear_answer_and_nothing_is_posted(
    start_relay, connector: FakeConnector, slack: FakeSlack, x: FakeX, text: str, expected: str
) -> None:
    tally(INPUTS)
    relay = await start_relay(teams_config(), **TEAMS_ENV)
    teams = TeamsClient(relay.url, relay.http)
    status, _ = await teams.send(message(connector.service_url, CEO, f"broadcast {text}"))
    assert status in (200, 202)
    words, answer = await teams_answer(connector)
    assert expected in words
    assert len(json.dumps(answer, ensure_ascii=False).encode()) <= TEAMS_MESSAGE_MAX, "Teams would refuse to show it"
    if "Preview" in words:
        assert f"`{card_id(words)}" in await kept_drafts(relay), "the draft is kept"
    else:
        assert "No broadcasts yet." in await kept_drafts(relay)
    assert not connector.posted(ANNOUNCEMENTS) and not slack.messages(STAFF_CHANNEL) and not x.calls


@pytest.mark.parametrize(
    ("verb", "data", "expected"),
    [
        ("audience", {"audience": "investors"}, "There is no audience called 'investors'"),
        ("approve", {"broadcast_id": "b0000dead"}, "There is no broadcast b0000dead."),
        ("edit", {"text": "\u200b"}, "The message is empty"),
        ("launch", {}, "This button is not known to the relay any more."),
    ],
    ids=["unknown-audience", "unknown-broadcast", "empty-edit", "unknown-verb"],
)
async def test_a_teams_card_action_naming_what_does_not_exist_is_answered(
    start_relay, connector: FakeConnector, slack: FakeSlack, x: FakeX, verb: str, data: dict[str, Any], expected: str
) -> None:
    tally(INPUTS)
    relay = await start_relay(teams_config(), **TEAMS_ENV)
    teams = TeamsClient(relay.url, relay.http)
    await teams.send(message(connector.service_url, CEO, "broadcast Real draft"))
    words, card = await teams_answer(connector)
    draft = card_id(words)
    status, body = await teams.send(
        action(connector.service_url, CEO, verb, {"broadcast_id": draft, **data}, card["id"])
    )
    assert status == 200 and expected in json.dumps(body["value"], ensure_ascii=False)
    kept = await kept_drafts(relay)
    assert f"`{draft} · " in kept and "· everyone · draft · Real draft`" in kept, "the real draft is untouched"
    assert not connector.posted(ANNOUNCEMENTS) and not slack.messages(STAFF_CHANNEL) and not x.calls


# (what arrives at POST /api/messages, and its content type)
TEAMS_REQUESTS = [
    ("empty-object", "{}", "application/json"),
    ("not-json", "not json", "application/json"),
    ("no-conversation", json.dumps({"type": "message"}), "application/json"),
    (
        "no-service-url",
        json.dumps({"type": "message", "text": "broadcast hi", "conversation": {"id": "a:1"}}),
        "application/json",
    ),
    ("a-list", json.dumps([1, 2, 3]), "application/json"),
    (
        "from-a-string",
        json.dumps({"type": "message", "serviceUrl": "http://x/", "conversation": {"id": "a"}, "from": "me"}),
        "application/json",
    ),
    ("truncated", '{"type": "message", "text": "broadcast hi", "conver', "application/json"),
    ("form-encoded", "type=message&text=broadcast+hi", "application/x-www-form-urlencoded"),
    ("oversized", json.dumps({"type": "message", "text": "a" * 2_000_000}).encode(), "application/json"),
]


@pytest.mark.parametrize(("body", "content_type"), [r[1:] for r in TEAMS_REQUESTS], ids=[r[0] for r in TEAMS_REQUESTS])
async def test_malformed_teams_activities_get_4xx_and_change_nothing(
    start_relay, connector: FakeConnector, x: FakeX, body: str | bytes, content_type: str
) -> None:
    tally(INPUTS)
    relay = await start_relay(teams_config(), **TEAMS_ENV)
    data = io.BytesIO(body) if isinstance(body, bytes) else body
    async with relay.http.post(
        f"{relay.url}/api/messages", data=data, headers={"Content-Type": content_type}
    ) as answer:
        assert 400 <= answer.status < 500
    assert "No broadcasts yet." in await kept_drafts(relay)
    assert not connector.calls and not x.calls


@pytest.mark.parametrize(("length", "editable"), [(3000, True), (3001, False)], ids=["fits", "too-long"])
async def test_edit_is_offered_only_when_the_edit_form_can_hold_the_whole_text(
    start_relay, connector: FakeConnector, length: int, editable: bool
) -> None:
    """Slack's and Teams' text inputs hold 3,000 characters: a longer text would be cut, the rest lost on save."""
    tally(INPUTS)
    relay = await start_relay(teams_config(), **TEAMS_ENV)
    ack = await relay.command(LEADER, "a" * length)
    buttons = [e.get("action_id") for b in ack["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert ("edit" in buttons) is editable
    await TeamsClient(relay.url, relay.http).send(message(connector.service_url, CEO, "broadcast " + "a" * length))
    _, answer = await teams_answer(connector)
    card = answer["attachments"][0]["content"]
    assert ("Edit" in [a.get("title") for a in card["actions"]]) is editable
