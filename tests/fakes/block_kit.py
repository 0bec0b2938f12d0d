"""What Slack refuses in Block Kit, as data, with one checker that the fake Slack and the tests share.

Every figure is Slack's published limit (docs.slack.dev/reference/block-kit/…, page named by each), and
`test_fakes_selftest` checks them against the `*_max_length` that `slack_sdk.models` declares for the same
fields. slack_sdk's models validate one object at a time and never recurse, so the walk is ours; a limit
neither states (the blocks' total text) names where it comes from.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# docs.slack.dev/reference/block-kit/blocks: "up to 50 blocks in each message, and 100 blocks in modals or Home tabs".
MESSAGE_BLOCKS = 50
MODAL_BLOCKS = 100
# Slack refuses chat.postMessage / chat.update whose blocks carry more than about 12,000 characters of text
# with `msg_blocks_too_long`: undocumented for section blocks, stated by Slack staff as "12,000 text characters
# with a buffer for block containers" (github.com/slackapi/bolt-js issues 2509 and 2867; 2867 saw a refusal at
# 11,341 characters summed this way, so builders keep well under it).
BLOCKS_TEXT = 12_000

ID = 255  # block_id, action_id, callback_id (block and element reference pages)
SECTION_TEXT = 3000  # section-block: text
SECTION_FIELDS, SECTION_FIELD_TEXT = 10, 2000  # section-block: fields
HEADER_TEXT = 150  # header-block: text
CONTEXT_ELEMENTS = 10  # context-block: elements
TEXT_OBJECT = 3000  # composition-objects/text-object: text (context elements are text objects)
ACTIONS_ELEMENTS = 25  # actions-block: elements
INPUT_LABEL, INPUT_HINT = 2000, 2000  # input-block: label, hint
BUTTON_TEXT, BUTTON_VALUE, BUTTON_URL = 75, 2000, 3000  # block-elements/button-element
PLACEHOLDER = 150  # select menus, date and time pickers, plain-text input: placeholder
OPTIONS = 100  # block-elements/select-menu-element: options
OPTION_TEXT, OPTION_VALUE = 75, 150  # composition-objects/option-object: text, value
CONFIRM_TITLE, CONFIRM_TEXT, CONFIRM_BUTTON = 100, 300, 30  # composition-objects/confirmation-dialog-object
INPUT_MAX_LENGTH = 3000  # block-elements/plain-text-input-element: max_length "between 1 and 3000, inclusive"
MODAL_TITLE, MODAL_BUTTON = 24, 24  # surfaces/modals (view object): title, submit, close
PRIVATE_METADATA = 3000  # view object: private_metadata
IMAGE_ALT_TEXT, IMAGE_URL = 2000, 3000  # image-block: alt_text, image_url
FILE_INPUT_MAX_FILES = 10  # block-elements/file-input-element: max_files "between 1 and 10"

Problem = str  # Slack's wording: "<what> [json-pointer:<where>]"


def _too_long(value: Any, limit: int, where: str) -> Iterator[Problem]:
    if isinstance(value, str) and len(value) > limit:
        yield f"must be less than {limit + 1} characters [json-pointer:{where}]"


def _text(obj: Any, limit: int, where: str, plain_only: bool = False) -> Iterator[Problem]:
    kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        yield f"must be a {'plain_text' if plain_only else 'text'} object [json-pointer:{where}]"
        return
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        yield f"must be more than 0 characters [json-pointer:{where}/text]"
        return
    yield from _too_long(text, limit, f"{where}/text")


def _confirm(obj: Any, where: str) -> Iterator[Problem]:
    yield from _text(obj.get("title"), CONFIRM_TITLE, f"{where}/title", plain_only=True)
    yield from _text(obj.get("text"), CONFIRM_TEXT, f"{where}/text")
    yield from _text(obj.get("confirm"), CONFIRM_BUTTON, f"{where}/confirm", plain_only=True)
    yield from _text(obj.get("deny"), CONFIRM_BUTTON, f"{where}/deny", plain_only=True)


def _element(element: Any, where: str) -> Iterator[Problem]:
    if not isinstance(element, dict):
        yield f"must be an object [json-pointer:{where}]"
        return
    kind = element.get("type")
    yield from _too_long(element.get("action_id"), ID, f"{where}/action_id")
    if "placeholder" in element:
        yield from _text(element["placeholder"], PLACEHOLDER, f"{where}/placeholder", plain_only=True)
    if "confirm" in element:
        yield from _confirm(element["confirm"], f"{where}/confirm")
    if kind == "button":
        yield from _text(element.get("text"), BUTTON_TEXT, f"{where}/text", plain_only=True)
        yield from _too_long(element.get("value"), BUTTON_VALUE, f"{where}/value")
        yield from _too_long(element.get("url"), BUTTON_URL, f"{where}/url")
    elif kind == "static_select":
        options = element.get("options")
        if not isinstance(options, list) or not options:
            yield f"must provide at least 1 option [json-pointer:{where}/options]"
            return
        if len(options) > OPTIONS:
            yield f"must provide no more than {OPTIONS} items [json-pointer:{where}/options]"
        for index, option in enumerate(options):
            yield from _text(option.get("text"), OPTION_TEXT, f"{where}/options/{index}/text", plain_only=True)
            yield from _too_long(option.get("value"), OPTION_VALUE, f"{where}/options/{index}/value")
        if "initial_option" in element and element["initial_option"] not in options:
            yield f"initial_option must match one of the options [json-pointer:{where}/initial_option]"
    elif kind == "plain_text_input":
        most = element.get("max_length", INPUT_MAX_LENGTH)
        if not isinstance(most, int) or not 1 <= most <= INPUT_MAX_LENGTH:
            yield f"must be between 1 and {INPUT_MAX_LENGTH} [json-pointer:{where}/max_length]"
            most = INPUT_MAX_LENGTH
        yield from _too_long(element.get("initial_value"), most, f"{where}/initial_value")
    elif kind == "file_input":
        most = element.get("max_files", FILE_INPUT_MAX_FILES)
        if not isinstance(most, int) or not 1 <= most <= FILE_INPUT_MAX_FILES:
            yield f"must be between 1 and {FILE_INPUT_MAX_FILES} [json-pointer:{where}/max_files]"
    elif kind not in ("datepicker", "timepicker"):
        yield f"{kind!r} is not an element this checker knows [json-pointer:{where}/type]"


def _block(block: Any, where: str) -> Iterator[Problem]:
    if not isinstance(block, dict):
        yield f"must be an object [json-pointer:{where}]"
        return
    kind = block.get("type")
    yield from _too_long(block.get("block_id"), ID, f"{where}/block_id")
    if kind == "section":
        if "text" in block or "fields" not in block:
            yield from _text(block.get("text"), SECTION_TEXT, f"{where}/text")
        fields = block.get("fields") or []
        if len(fields) > SECTION_FIELDS:
            yield f"must provide no more than {SECTION_FIELDS} items [json-pointer:{where}/fields]"
        for index, field in enumerate(fields):
            yield from _text(field, SECTION_FIELD_TEXT, f"{where}/fields/{index}")
        if "accessory" in block:
            yield from _element(block["accessory"], f"{where}/accessory")
    elif kind == "header":
        yield from _text(block.get("text"), HEADER_TEXT, f"{where}/text", plain_only=True)
    elif kind == "context":
        elements = block.get("elements") or []
        if not elements or len(elements) > CONTEXT_ELEMENTS:
            yield f"must provide 1 to {CONTEXT_ELEMENTS} items [json-pointer:{where}/elements]"
        for index, element in enumerate(elements):
            yield from _text(element, TEXT_OBJECT, f"{where}/elements/{index}")
    elif kind == "actions":
        elements = block.get("elements") or []
        if not elements or len(elements) > ACTIONS_ELEMENTS:
            yield f"must provide 1 to {ACTIONS_ELEMENTS} items [json-pointer:{where}/elements]"
        for index, element in enumerate(elements):
            yield from _element(element, f"{where}/elements/{index}")
    elif kind == "input":
        yield from _text(block.get("label"), INPUT_LABEL, f"{where}/label", plain_only=True)
        if "hint" in block:
            yield from _text(block["hint"], INPUT_HINT, f"{where}/hint", plain_only=True)
        yield from _element(block.get("element"), f"{where}/element")
    elif kind == "image":
        if not isinstance(block.get("alt_text"), str) or not block["alt_text"]:
            yield f"must provide alt_text [json-pointer:{where}/alt_text]"
        yield from _too_long(block.get("alt_text"), IMAGE_ALT_TEXT, f"{where}/alt_text")
        yield from _too_long(block.get("image_url"), IMAGE_URL, f"{where}/image_url")
        if ("image_url" in block) == ("slack_file" in block):
            yield f"must provide exactly one of image_url or slack_file [json-pointer:{where}]"
    elif kind != "divider":
        yield f"{kind!r} is not a block this checker knows [json-pointer:{where}/type]"


def block_text(value: Any) -> int:
    """Characters of text the blocks carry: every `text` string, however deep (how Slack staff count it)."""
    if isinstance(value, list):
        return sum(block_text(item) for item in value)
    if isinstance(value, dict):
        own = value.get("text")
        if isinstance(own, str):
            return len(own) + sum(block_text(item) for key, item in value.items() if key != "text")
        return sum(block_text(item) for item in value.values())
    return 0


def message_problems(blocks: Any) -> list[Problem]:
    """Why Slack would answer `invalid_blocks` to a message's blocks (empty: it takes them)."""
    if blocks is None:
        return []
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    problems = []
    if len(blocks) > MESSAGE_BLOCKS:
        problems.append(f"no more than {MESSAGE_BLOCKS} items allowed [json-pointer:/blocks]")
    for index, block in enumerate(blocks):
        problems.extend(_block(block, f"/blocks/{index}"))
    return problems


def too_long(blocks: Any) -> bool:
    """Whether Slack would answer `msg_blocks_too_long`."""
    return block_text(blocks) > BLOCKS_TEXT


def view_problems(view: Any) -> list[Problem]:
    """Why Slack would answer `invalid_arguments` to views.open / views.update / views.publish."""
    if not isinstance(view, dict):
        return ["must be an object [json-pointer:/view]"]
    problems: list[Problem] = []
    if view.get("type") == "modal":
        problems.extend(_text(view.get("title"), MODAL_TITLE, "/view/title", plain_only=True))
        for button in ("submit", "close"):
            if button in view:
                problems.extend(_text(view[button], MODAL_BUTTON, f"/view/{button}", plain_only=True))
    problems.extend(_too_long(view.get("private_metadata"), PRIVATE_METADATA, "/view/private_metadata"))
    problems.extend(_too_long(view.get("callback_id"), ID, "/view/callback_id"))
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= MODAL_BLOCKS:
        problems.append(f"must provide 1 to {MODAL_BLOCKS} items [json-pointer:/view/blocks]")
        blocks = blocks if isinstance(blocks, list) else []
    for index, block in enumerate(blocks):
        problems.extend(_block(block, f"/view/blocks/{index}"))
    return problems


def refusal(blocks: Any) -> str | None:
    """The error code chat.postMessage answers a message with these blocks, or None when it takes them."""
    if message_problems(blocks):
        return "invalid_blocks"
    return "msg_blocks_too_long" if too_long(blocks) else None
