"""The fake Slack refuses what Slack refuses, in Slack's words, and its limits agree with slack_sdk's models."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.models import blocks as sdk
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from . import block_kit
from .slack import FakeSlack


def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.token, base_url=slack.api_url, retry_handlers=[])


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


async def test_a_method_the_manifest_does_not_grant_answers_missing_scope() -> None:
    async with FakeSlack(scopes=frozenset({"chat:write", "commands"})) as slack:
        with pytest.raises(SlackApiError) as refused:
            await client(slack).users_info(user="U0LEAD")
        await client(slack).chat_postMessage(channel="C1", text="allowed")
    answer = refused.value.response
    assert (answer["error"], answer["needed"], answer["provided"]) == (
        "missing_scope",
        "users:read",
        "chat:write,commands",
    )


@pytest.mark.parametrize(
    ("blocks", "error", "where"),
    [
        ([section("x")] * 51, "invalid_blocks", "[json-pointer:/blocks]"),
        ([section("x" * 3001)], "invalid_blocks", "[json-pointer:/blocks/0/text/text]"),
        ([section("")], "invalid_blocks", "[json-pointer:/blocks/0/text/text]"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}], "invalid_blocks", "/blocks/0/text"),
        ([{"type": "context", "elements": [{"type": "mrkdwn", "text": "x"}] * 11}], "invalid_blocks", "/elements]"),
        (
            [
                {
                    "type": "actions",
                    "elements": [
                        {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "x" * 76}}
                    ],
                }
            ],
            "invalid_blocks",
            "/blocks/0/elements/0/text/text",
        ),
        (
            [
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "static_select",
                            "action_id": "a",
                            "options": [{"text": {"type": "plain_text", "text": "x" * 76}, "value": "v"}],
                        }
                    ],
                }
            ],
            "invalid_blocks",
            "/options/0/text/text",
        ),
        ([section("x" * 3000)] * 4 + [section("x")], "msg_blocks_too_long", ""),
    ],
    ids=["51-blocks", "section-3001", "empty-text", "header-151", "context-11", "button-76", "option-76", "12001"],
)
async def test_blocks_past_a_limit_are_refused_as_slack_refuses_them(
    blocks: list[dict[str, Any]], error: str, where: str
) -> None:
    async with FakeSlack() as slack:
        with pytest.raises(SlackApiError) as refused:
            await client(slack).chat_postMessage(channel="C1", text="fallback", blocks=blocks)
    assert refused.value.response["error"] == error
    assert any(where in message for message in refused.value.response["response_metadata"]["messages"])
    assert slack.messages("C1") == [] and slack.refusals[0][:2] == ("chat.postMessage", error)


async def test_a_modal_past_a_limit_is_refused_with_invalid_arguments() -> None:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "x" * 25}, "blocks": [section("hi")]}
    async with FakeSlack() as slack:
        with pytest.raises(SlackApiError) as refused:
            await client(slack).views_open(trigger_id="t.1", view=view)
        view["title"]["text"] = "x" * 24
        await client(slack).views_open(trigger_id="t.2", view=view)
    assert refused.value.response["error"] == "invalid_arguments"
    assert "[json-pointer:/view/title/text]" in refused.value.response["response_metadata"]["messages"][0]


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (block_kit.ID, sdk.Block.block_id_max_length),
        (block_kit.SECTION_TEXT, sdk.SectionBlock.text_max_length),
        (block_kit.SECTION_FIELDS, sdk.SectionBlock.fields_max_length),
        (block_kit.HEADER_TEXT, sdk.HeaderBlock.text_max_length),
        (block_kit.CONTEXT_ELEMENTS, sdk.ContextBlock.elements_max_length),
        (block_kit.ACTIONS_ELEMENTS, sdk.ActionsBlock.elements_max_length),
        (block_kit.BUTTON_TEXT, sdk.ButtonElement.text_max_length),
        (block_kit.BUTTON_VALUE, sdk.ButtonElement.value_max_length),
        (block_kit.ID, sdk.ButtonElement.action_id_max_length),
        (block_kit.PLACEHOLDER, sdk.StaticSelectElement.placeholder_max_length),
        (block_kit.OPTIONS, sdk.StaticSelectElement.options_max_length),
        (block_kit.OPTION_TEXT, sdk.Option.label_max_length),
        (block_kit.OPTION_VALUE, sdk.Option.value_max_length),
        (block_kit.CONFIRM_TITLE, sdk.ConfirmObject.title_max_length),
        (block_kit.CONFIRM_TEXT, sdk.ConfirmObject.text_max_length),
        (block_kit.CONFIRM_BUTTON, sdk.ConfirmObject.confirm_max_length),
        (block_kit.MODAL_TITLE, View.title_max_length),
        (block_kit.MODAL_BLOCKS, View.blocks_max_length),
        (block_kit.PRIVATE_METADATA, View.private_metadata_max_length),
    ],
)
def test_the_fakes_limits_are_the_ones_slack_sdk_declares(ours: int, theirs: int) -> None:
    assert ours == theirs
