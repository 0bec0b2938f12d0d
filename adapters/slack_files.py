"""Images a leader attached in Slack's composer (its file_input), fetched with the bot token.

A file's `url_private` is readable only with a token of the workspace that has `files:read`; without one
Slack answers with a redirect to its sign-in page, never the bytes, so anything but a 200 is refused.
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import explain
from relay.images import MAX_ATTACHED_BYTES, Attachment
from relay.render import InputError
from relay.transport import read_at_most


def chosen(view: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The files picked in the composer (or those of the message its shortcut was used on, named in its
    metadata), and the alt text given for each, in order (one line each)."""
    values = view["state"]["values"]
    files = ((values.get("images") or {}).get("images") or {}).get("files") or []
    files = files or json.loads(view.get("private_metadata") or "{}").get("files") or []
    alt = ((values.get("alt") or {}).get("alt") or {}).get("value") or ""
    return list(files), [line.strip() for line in alt.splitlines()]


def images_of(message: dict[str, Any]) -> list[dict[str, str]]:
    """The images a Slack message carries (its files of an image type), as the composer lists them."""
    files = message.get("files") or []
    return [
        {"id": str(f["id"]), "name": str(f.get("name") or f["id"])}
        for f in files
        if str(f.get("mimetype", "")).startswith("image/")
    ]


async def attachments(client: AsyncWebClient, view: dict[str, Any]) -> list[Attachment]:
    """Each picked file's bytes with its alt text; refused with words the leader can act on."""
    files, alts = chosen(view)
    if len(alts) > len(files) and any(alts[len(files) :]):
        raise InputError(f"There are {len(alts)} lines of alt text for {len(files)} images: give one line per image.")
    fetched = []
    for number, picked in enumerate(files, start=1):
        try:
            info = (await client.files_info(file=str(picked["id"])))["file"]
        except SlackApiError as error:
            why = explain(str(error.response.get("error")))
            raise InputError(f"Slack would not give the bot image {number}: {why}") from error
        if int(info.get("size") or 0) > MAX_ATTACHED_BYTES:
            raise InputError(f"Image {number} ({info.get('name')}) is too large: attach images of at most 30 MB.")
        session = client.session
        assert session is not None
        headers = {"Authorization": f"Bearer {client.token}"}
        async with session.get(str(info["url_private"]), headers=headers, allow_redirects=False) as answer:
            if answer.status != 200:
                raise InputError(f"Slack would not give the bot image {number} ({answer.status}): reinstall the app.")
            data = await read_at_most(answer.content, MAX_ATTACHED_BYTES + 1)
        alt = alts[number - 1] if number <= len(alts) else ""
        fetched.append(Attachment(data, alt, str(info.get("name") or "")))
    return fetched
