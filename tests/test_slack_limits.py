"""What a real workspace refuses, found against the strict fake Slack: scopes, Block Kit's limits, the
blocks' total text, the form's length, and who belongs to the workspace on Enterprise Grid."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest

from adapters import SPECS
from relay.config import ConfigError, load_config, settings_from_env
from tests.conftest import APPROVER, LEADER, STAFF_CHANNEL, Relay, config_text, preview_id, report_text
from tests.fakes import FakeSlack, FakeX
from tests.fakes.block_kit import message_problems
from tests.fakes.slack import METHOD_SCOPES, _needed, manifest_scopes
from tests.slack_requests import action_body
from tests.test_correct import sent
from tests.test_pacing import broadcast, channels
from tests.test_pacing import config as many_channels
from tests.test_schedule import BEFORE_DST, Clock, schedule

ROOT = Path(__file__).resolve().parent.parent
_CALL = re.compile(r"\.(auth|chat|conversations|users|views|apps)_(\w+)\(")


def web_api_methods() -> set[str]:
    """Every Slack Web API method the bot's code calls, read from its slack_sdk client calls."""
    found = set()
    for path in [*sorted((ROOT / "adapters").glob("*.py")), ROOT / "bot.py"]:
        for family, name in _CALL.findall(path.read_text(encoding="utf-8")):
            head, *rest = name.split("_")
            found.add(f"{family}.{head}{''.join(word.title() for word in rest)}")
    return found


def test_the_manifest_grants_every_scope_the_code_uses() -> None:
    methods = web_api_methods()
    assert {"chat.postMessage", "users.info", "conversations.history"} <= methods, "the scan finds the calls"
    granted = manifest_scopes()
    for method in sorted(methods):
        assert method in METHOD_SCOPES, f"{method}: add its scopes (Slack's method reference) to the fake"
        # a destination is a public or a private channel; the live report lives in the leader's DM
        for channel in ("C0PUBLIC", "G0PRIVATE", "D0DIRECT"):
            needed = _needed(method, {"channel": channel, "users": "U0LEAD"})
            assert needed is None or needed in granted, f"{method} needs {needed}: add it to manifest.json"


async def test_a_new_york_leaders_nine_oclock_is_nine_in_new_york(start_relay, slack: FakeSlack) -> None:
    slack.users[LEADER] = {"id": LEADER, "name": "lead", "tz": "America/New_York", "is_bot": False}
    relay = await start_relay(clock=Clock(BEFORE_DST))
    _, answer = await schedule(relay, "Monday news")
    assert "Scheduled for Mon 29 Mar 2027 09:00 EDT." in answer


async def test_a_time_zone_slack_will_not_give_is_said_and_nothing_is_scheduled(
    start_relay, slack: FakeSlack, x: FakeX
) -> None:
    slack.scopes = slack.scopes - {"users:read"}  # an app installed from the old manifest
    relay = await start_relay(clock=Clock(BEFORE_DST))
    _, answer = await schedule(relay, "Monday news")
    assert "Nothing was scheduled: Slack did not tell the relay your time zone" in answer
    assert "reinstall it from manifest.json" in answer
    assert "· draft ·" in json.dumps(await relay.command(LEADER, "history"), ensure_ascii=False), "not scheduled"
    assert {(method, error) for method, error, _ in slack.refusals} == {("users.info", "missing_scope")}
    slack.refusals.clear()
    assert not slack.messages(STAFF_CHANNEL) and not x.calls


FOUR = """
[policy]
leaders = ["slack:U0LEAD"]
approvers = ["slack:U0APPR"]
default_audience = "four"

[destinations.all-staff]
kind = "slack"
channel = "C0STAFF"

[destinations.engineering]
kind = "slack"
channel = "C0ENG"

[destinations.sales]
kind = "slack"
channel = "C0SALES"

[destinations.support]
kind = "slack"
channel = "C0SUPPORT"

[audiences]
four = ["all-staff", "engineering", "sales", "support"]
"""


def long_text(size: int) -> str:
    """Sentences that never repeat, `size` characters in all."""
    words = " ".join(f"Point {n} of our quarterly results, with thanks to every team." for n in range(size // 40))
    return words[:size].rstrip()


async def test_a_long_message_to_four_destinations_reaches_the_approvers(
    start_relay, slack: FakeSlack, x: FakeX
) -> None:
    relay = await start_relay(FOUR)
    text = long_text(3000)
    broadcast_id = preview_id(await relay.command(LEADER, text))
    await relay.click(LEADER, "approve", broadcast_id)
    [request] = await slack.wait_for(lambda: slack.messages(f"D{APPROVER}"))
    shown = report_text(request)
    assert all(f"*{name}*" in shown for name in ("all-staff", "engineering", "sales", "support"))
    assert shown.count(text[:200]) == 1, "the text is shown once for the four channels"
    await relay.click(APPROVER, "approve", broadcast_id, block_id=f"approval:{broadcast_id}")
    assert "4 of 4 delivered." in await relay.final_report()
    assert slack.messages(STAFF_CHANNEL)[0]["text"] == text


async def test_a_report_of_many_failures_keeps_up_to_the_end(start_relay, slack: FakeSlack) -> None:
    places = channels(130)
    for place in places[:120]:
        slack.channel_errors[place] = "not_in_channel"
    relay = await start_relay(many_channels(places))
    broadcast_id = await broadcast(relay, "Many places, most of them closed to the bot.")
    report = await relay.final_report(timeout=30)
    assert "10 of 130 delivered." in report
    assert f"/broadcast status {broadcast_id}" in report, "the rest is one command away"
    assert report.count("failed.") < 120 and ":white_check_mark: 10 slack destinations: posted" in report
    status = await relay.command(LEADER, f"status {broadcast_id}")
    assert "not a member of" in json.dumps(status) and "the status page lists every one" in json.dumps(status)


async def test_preview_sections_never_cut_a_link_a_mention_an_entity_or_an_emoji(start_relay, slack: FakeSlack) -> None:
    relay = await start_relay()
    whole = ["<https://example.com/q3|the Q3 report>", "<@U0APPR>", "&amp;", "👩🏽‍💻", ":tada:"]
    for offset in range(2990, 3001, 2):  # the 3,000th character falls inside each of them in turn
        text = "x" * offset + " " + " ".join(whole) + " and more words after it."
        ack = await relay.command(LEADER, text)
        texts = [block.get("text", {}).get("text", "") for block in ack["blocks"]]
        first = next(i for i, shown in enumerate(texts) if shown.startswith("x" * 100))
        sections = texts[first : first + 2]
        assert len(sections) == 2 and "".join(sections) == text, "split, and nothing lost"
        for token in whole:
            assert any(token in section for section in sections), f"{token} was cut"


async def test_correcting_a_post_longer_than_the_form_says_so_and_cuts_nothing(start_relay, slack: FakeSlack) -> None:
    relay = await start_relay(config_text().replace('default_audience = "everyone"', 'default_audience = "staff"'))
    text = long_text(5000)
    broadcast_id = await sent(relay, text)
    key = await relay.click(LEADER, "correct", broadcast_id, block_id=f"report:{broadcast_id}")
    answer = await relay.answer(key)
    assert f"is {len(text):,} characters" in answer["text"]
    assert "cannot be corrected here without cutting it" in answer["text"]
    assert [e["action_id"] for e in answer["blocks"][1]["elements"]] == ["retract"]
    assert not slack.calls_to("views.open"), "no form holding a cut text"


def audiences_config(names: list[str]) -> str:
    listed = "\n".join(f'"{name}" = ["all-staff"]' for name in names)
    return (
        config_text()
        .replace('default_audience = "everyone"', f'default_audience = "{names[0]}"')
        .replace('staff = ["all-staff"]\npublic = ["company-x"]\neveryone = ["all-staff", "company-x"]', listed)
    )


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["a" * 76], f"audiences.{'a' * 76}: the name is 76 characters; Slack's audience menu shows at most 75"),
        ([f"team-{n}" for n in range(101)], "audiences: 101 audiences; Slack's audience menu holds at most 100"),
    ],
    ids=["long-name", "too-many"],
)
def test_audiences_slack_cannot_show_stop_start_up_with_the_fix(
    tmp_path: Path, names: list[str], expected: str
) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(audiences_config(names))
    settings = settings_from_env({"RELAY_CONFIG": str(path), "SLACK_BOT_TOKEN": "x", "SLACK_SIGNING_SECRET": "s"})
    with pytest.raises(ConfigError) as raised:
        load_config(settings, SPECS)
    assert expected in str(raised.value)


async def test_a_hundred_audiences_of_75_characters_fit_the_preview_and_the_composer(
    start_relay, slack: FakeSlack
) -> None:
    names = [f"{n:03d}-" + "a" * 71 for n in range(100)]
    relay = await start_relay(audiences_config(names))
    ack = await relay.command(LEADER, "Hello everyone")
    assert len(ack["blocks"][-2]["elements"][0]["options"]) == 100  # the audience menu, taken by the fake
    await relay.command(LEADER, "")
    [opened] = slack.calls_to("views.open")
    assert not message_problems(opened.params["view"]["blocks"]) and slack.views


# ---- Enterprise Grid and org-wide installs ---------------------------------------------------------------

ORG, ELSEWHERE = "E0ORG", "T0ELSEWHERE"


def as_grid_member(body: str, org_wide: bool) -> str:
    """The click as Slack sends it for someone of the app's organisation whose home workspace is another:
    their `user.team_id` is that workspace; with an org-wide install, the payload's team may be null."""
    payload = json.loads(dict(parse_qsl(body))["payload"])
    payload["user"]["team_id"] = ELSEWHERE
    payload["enterprise"] = {"id": ORG, "name": "Org"}
    payload["is_enterprise_install"] = org_wide
    if org_wide:
        payload["team"] = None
    return urlencode({"payload": json.dumps(payload)})


@pytest.mark.parametrize("org_wide", [False, True], ids=["grid-workspace", "org-wide"])
async def test_an_approver_of_the_same_organisation_is_not_refused_as_another_workspace(
    start_relay, slack: FakeSlack, x: FakeX, org_wide: bool
) -> None:
    slack.enterprise_id = ORG
    relay: Relay = await start_relay(config_text([f"slack:{APPROVER}"]))
    broadcast_id = preview_id(await relay.command(LEADER, "Quarterly update"))
    await relay.click(LEADER, "approve", broadcast_id)
    key, url = relay.new_response_url()
    body = action_body(APPROVER, "approve", broadcast_id, url, block_id=f"approval:{broadcast_id}")
    assert (await relay.post_signed(as_grid_member(body, org_wide))).status == 200
    assert "approved by <@U0APPR>" in (await relay.answer(key))["text"]
    assert "2 of 2 delivered." in await relay.final_report()
