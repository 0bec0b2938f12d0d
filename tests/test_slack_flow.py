"""A leader's broadcast from Slack, end to end: command, preview, approval, delivery, live report."""

from __future__ import annotations

import json
import time

from tests.conftest import (
    APPROVAL_CHANNEL,
    APPROVER,
    LEADER,
    OTHER_APPROVER,
    STAFF_CHANNEL,
    STRANGER,
    config_text,
    preview_id,
    report_text,
)
from tests.fakes import FakeSlack, FakeX
from tests.slack_requests import command_body, signed_headers


async def test_leader_broadcasts_to_staff_and_x_once_each_and_sees_links(
    start_relay, slack: FakeSlack, x: FakeX
) -> None:
    relay = await start_relay()
    started = time.monotonic()
    ack = await relay.command(LEADER, "*Q3 results* are out: <https://example.com/q3|read them>.")
    assert time.monotonic() - started < 3, "Slack's deadline is 3 seconds"
    shown = json.dumps(ack)
    assert ack["response_type"] == "ephemeral"
    assert "*Q3 results* are out: <https://example.com/q3|read them>." in shown  # Slack: as written
    assert "Q3 results are out: read them (https://example.com/q3)." in shown  # X: plain text
    assert "all-staff" in shown and "company-x" in shown and "/280 weighted chars" in shown
    assert not slack.messages(STAFF_CHANNEL) and not x.tweets, "nothing is sent before approval"

    key = await relay.click(LEADER, "approve", preview_id(ack))
    report = await relay.final_report()
    assert "2 of 2 delivered." in report
    [staff_post] = slack.messages(STAFF_CHANNEL)
    assert staff_post["text"] == "*Q3 results* are out: <https://example.com/q3|read them>."
    [tweet] = x.tweets
    assert tweet.text == "Q3 results are out: read them (https://example.com/q3)."
    assert f"https://x.com/i/web/status/{tweet.id}" in report
    assert f"archives/{STAFF_CHANNEL}/p" in report
    answer = await relay.answer(key)
    assert answer["replace_original"] is True and "approved" in answer["text"] and "Live report" in answer["text"]


async def test_help_explains_usage(start_relay) -> None:
    relay = await start_relay()
    ack = await relay.command(LEADER, "help")
    assert "/broadcast <message>" in ack["text"] and "Nothing is sent until you approve" in ack["text"]


async def test_empty_command_opens_the_composer_and_its_submit_shows_the_preview(start_relay, slack: FakeSlack) -> None:
    relay = await start_relay()
    await relay.command(LEADER, "")
    [opened] = await slack.wait_for(lambda: slack.calls_to("views.open"))
    view = opened.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == "compose"
    metadata = json.loads(view["private_metadata"])
    response = await relay.submit_view(LEADER, "compose", metadata, "Town hall at 3pm", "staff")
    assert response.status == 200
    key = metadata["response_url"].rsplit("/", 1)[1]
    preview = await relay.answer(key)
    assert "Town hall at 3pm" in json.dumps(preview) and "to *staff*" in json.dumps(preview)


async def test_composer_with_empty_text_is_refused_in_the_form(start_relay) -> None:
    relay = await start_relay()
    response = await relay.submit_view(LEADER, "compose", {}, "   ", "staff")
    body = await response.json()
    assert body["response_action"] == "errors" and "The message is empty" in body["errors"]["message"]


async def test_empty_or_whitespace_text_opens_composer_not_a_broadcast(start_relay, slack: FakeSlack) -> None:
    relay = await start_relay()
    await relay.command(LEADER, "   ")
    assert len(slack.calls_to("views.open")) == 1


async def test_over_long_text_gets_a_clear_message(start_relay) -> None:
    relay = await start_relay()
    ack = await relay.command(LEADER, "a" * 40_001)
    assert "40,001 characters; a broadcast can carry at most 40,000" in ack["text"]


async def test_an_unauthorized_user_is_refused_and_nothing_happens(start_relay, slack: FakeSlack, x: FakeX) -> None:
    relay = await start_relay()
    ack = await relay.command(STRANGER, "Free pizza for everyone!")
    assert ack["text"].startswith("Only the leaders listed")
    assert ack.get("response_type") == "ephemeral"
    assert not [c for c in slack.calls if c.method.startswith("chat.")] and not x.calls


async def test_unauthorized_clicker_cannot_approve_a_leaders_preview(start_relay, slack: FakeSlack, x: FakeX) -> None:
    relay = await start_relay()
    broadcast = preview_id(await relay.command(LEADER, "Big news"))
    key = await relay.click(STRANGER, "approve", broadcast)
    answer = await relay.answer(key)
    assert "Only the person who wrote this broadcast" in answer["text"] and answer["replace_original"] is False
    assert not slack.messages(STAFF_CHANNEL) and not x.calls
    await relay.click(LEADER, "approve", broadcast)  # still pending: its author can send it
    assert "2 of 2 delivered." in await relay.final_report()


async def test_double_click_sends_once(start_relay, slack: FakeSlack, x: FakeX) -> None:
    relay = await start_relay()
    broadcast = preview_id(await relay.command(LEADER, "Once only"))
    first = await relay.click(LEADER, "approve", broadcast)
    second = await relay.click(LEADER, "approve", broadcast)
    await relay.final_report()
    answers = [await relay.answer(first), await relay.answer(second)]
    assert sum("already approved" in a["text"] for a in answers) == 1
    assert len(slack.messages(STAFF_CHANNEL)) == 1 and len(x.tweets) == 1


async def test_a_retried_slack_request_does_not_send_twice(start_relay, slack: FakeSlack, x: FakeX) -> None:
    relay = await start_relay()
    broadcast = preview_id(await relay.command(LEADER, "Retried by Slack"))
    from tests.slack_requests import action_body

    body = action_body(LEADER, "approve", broadcast, slack.response_url("retry"))
    headers = signed_headers("test-signing-secret-0123456789", body)
    await relay.post_signed(body, headers)
    await relay.post_signed(body, {**headers, "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    await relay.final_report()
    assert len(slack.messages(STAFF_CHANNEL)) == 1 and len(x.tweets) == 1


async def test_cancel_and_audience_choice(start_relay, slack: FakeSlack, x: FakeX) -> None:
    relay = await start_relay()
    broadcast = preview_id(await relay.command(LEADER, "Staff only, after all"))
    key = await relay.click(LEADER, "choose_audience", broadcast, selected="staff")
    preview = json.dumps(await relay.answer(key))
    assert "to *staff* (1 destination)" in preview and "company-x" not in preview
    await relay.click(LEADER, "approve", broadcast)
    assert "1 of 1 delivered." in await relay.final_report()
    assert len(slack.messages(STAFF_CHANNEL)) == 1 and not x.tweets

    cancelled = preview_id(await relay.command(LEADER, "Never mind"))
    key = await relay.click(LEADER, "cancel", cancelled)
    assert "cancelled" in (await relay.answer(key))["text"]
    key = await relay.click(LEADER, "approve", cancelled)
    assert "already cancelled" in (await relay.answer(key))["text"]
    assert len(slack.messages(STAFF_CHANNEL)) == 1


async def test_edit_changes_the_draft_text(start_relay, slack: FakeSlack) -> None:
    relay = await start_relay()
    broadcast = preview_id(await relay.command(LEADER, "Helo world"))
    await relay.click(LEADER, "edit", broadcast)
    [opened] = slack.calls_to("views.open")
    view = opened.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    metadata = json.loads(view["private_metadata"])
    assert metadata["broadcast_id"] == broadcast
    await relay.submit_view(LEADER, "edit", metadata, "Hello world", "staff")
    preview = json.dumps(await relay.answer(metadata["response_url"].rsplit("/", 1)[1]))
    assert "Hello world" in preview and "Helo" not in preview
    await relay.click(LEADER, "approve", broadcast)
    await relay.final_report()
    assert [m["text"] for m in slack.messages(STAFF_CHANNEL)] == ["Hello world"]


async def test_approver_flow_needs_a_second_person(start_relay, slack: FakeSlack, x: FakeX) -> None:
    relay = await start_relay(
        config_text([f"slack:{APPROVER}", f"slack:{LEADER}"], f'approval_channel = "{APPROVAL_CHANNEL}"')
    )
    broadcast = preview_id(await relay.command(LEADER, "Needs four eyes"))
    key = await relay.click(LEADER, "approve", broadcast)
    assert "waiting for an approver" in (await relay.answer(key))["text"]
    [request] = await slack.wait_for(lambda: slack.messages(APPROVAL_CHANNEL))
    assert f"<@{LEADER}> asks to broadcast" in report_text(request)
    assert not slack.messages(STAFF_CHANNEL) and not x.tweets

    key = await relay.click(LEADER, "approve", broadcast, block_id=f"approval:{broadcast}")
    assert "cannot approve your own broadcast" in (await relay.answer(key))["text"]
    key = await relay.click(STRANGER, "approve", broadcast, block_id=f"approval:{broadcast}")
    assert "Only the approvers" in (await relay.answer(key))["text"]
    assert not slack.messages(STAFF_CHANNEL) and not x.tweets

    await relay.click(APPROVER, "approve", broadcast, block_id=f"approval:{broadcast}")
    assert "2 of 2 delivered." in await relay.final_report()
    closed = await slack.wait_for(
        lambda: [c for c in slack.calls_to("chat.update") if c.params.get("channel") == APPROVAL_CHANNEL]
    )
    assert f"approved by <@{APPROVER}>" in closed[-1].params["text"]
    assert len(slack.messages(STAFF_CHANNEL)) == 1 and len(x.tweets) == 1


async def test_two_approvers_clicking_together_send_once(start_relay, slack: FakeSlack, x: FakeX) -> None:
    import asyncio

    relay = await start_relay(config_text([f"slack:{APPROVER}", f"slack:{OTHER_APPROVER}"]))
    broadcast = preview_id(await relay.command(LEADER, "Race"))
    await relay.click(LEADER, "approve", broadcast)
    await slack.wait_for(lambda: slack.messages(f"D{APPROVER}") and slack.messages(f"D{OTHER_APPROVER}"))
    block = f"approval:{broadcast}"
    keys = await asyncio.gather(
        relay.click(APPROVER, "approve", broadcast, block_id=block),
        relay.click(OTHER_APPROVER, "approve", broadcast, block_id=block),
    )
    await relay.final_report()
    answers = [await relay.answer(k) for k in keys]
    assert sum("already approved" in a["text"] for a in answers) == 1
    assert len(slack.messages(STAFF_CHANNEL)) == 1 and len(x.tweets) == 1


async def test_rejection_tells_the_leader_and_sends_nothing(start_relay, slack: FakeSlack, x: FakeX) -> None:
    relay = await start_relay(config_text([f"slack:{APPROVER}"]))
    broadcast = preview_id(await relay.command(LEADER, "Maybe not"))
    await relay.click(LEADER, "approve", broadcast)
    await relay.click(APPROVER, "reject", broadcast, block_id=f"approval:{broadcast}")
    told = await slack.wait_for(lambda: [m for m in slack.messages(f"D{LEADER}") if "rejected" in m.get("text", "")])
    assert f"rejected by <@{APPROVER}>" in told[0]["text"]
    key = await relay.click(APPROVER, "approve", broadcast, block_id=f"approval:{broadcast}")
    assert "already rejected" in (await relay.answer(key))["text"]
    assert not slack.messages(STAFF_CHANNEL) and not x.tweets


async def test_an_expired_broadcast_cannot_be_approved(start_relay, slack: FakeSlack, x: FakeX) -> None:
    relay = await start_relay(config_text(extra_policy="pending_hours = 0.0000001"))
    broadcast = preview_id(await relay.command(LEADER, "Too late"))
    key = await relay.click(LEADER, "approve", broadcast)
    assert "expired" in (await relay.answer(key))["text"]
    assert not slack.messages(STAFF_CHANNEL) and not x.tweets


async def test_bad_signature_and_stale_timestamp_are_refused(start_relay, slack: FakeSlack) -> None:
    relay = await start_relay()
    body = command_body(LEADER, "forged", slack.response_url("f"))
    bad = await relay.post_signed(body, signed_headers("not-the-secret", body))
    stale = await relay.post_signed(
        body, signed_headers("test-signing-secret-0123456789", body, timestamp=int(time.time()) - 600)
    )
    unsigned = await relay.post_signed(body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert (bad.status, stale.status, unsigned.status) == (401, 401, 401)
    assert not [c for c in slack.calls if c.method != "auth.test"]


async def test_healthz(start_relay) -> None:
    relay = await start_relay()
    response = await relay.http.get(f"{relay.url}/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "dry_run": False, "slack": True}


async def test_four_eyes_with_nobody_else_to_approve_is_refused_clearly(start_relay, slack: FakeSlack) -> None:
    relay = await start_relay(config_text([f"slack:{LEADER}"]))
    broadcast = preview_id(await relay.command(LEADER, "Who approves?"))
    key = await relay.click(LEADER, "approve", broadcast)
    assert "add another approver to policy.approvers" in (await relay.answer(key))["text"]
    assert not slack.messages(STAFF_CHANNEL)


async def test_a_dry_run_bot_renders_and_records_but_posts_nothing(start_relay, slack: FakeSlack, x: FakeX) -> None:
    relay = await start_relay("dry_run = true\n" + config_text())
    ack = await relay.command(LEADER, "Practice")
    assert "dry run: recorded, not posted" in json.dumps(ack)
    await relay.click(LEADER, "approve", preview_id(ack))
    report = await relay.final_report()
    assert "2 of 2 delivered." in report and report.count("dry run, recorded and not posted") == 2
    assert not slack.messages(STAFF_CHANNEL) and not x.calls
