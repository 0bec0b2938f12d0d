"""Images a leader pasted or attached in their 1:1 chat with the Teams bot, fetched as Teams allows.

A pasted image arrives as an attachment of an `image/*` type whose `contentUrl` is on the Bot Connector
(`…/v3/attachments/{id}/views/original`) and answers only with the bot's own token; the message's HTML copy
names it again in an `<img>` that is not for bots to fetch. A file attached in a personal chat arrives as a
`file.download.info` attachment whose `downloadUrl` is pre-signed: the bot's token must not go there.
(learn.microsoft.com, "Send and receive inline images" and "Send and receive files using bot".)
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp
from microsoft_agents.activity import Activity, Attachment

from adapters.teams import TeamsConnection
from relay.images import MAX_ATTACHED_BYTES, MAX_IMAGES
from relay.images import Attachment as Attached
from relay.render import InputError

FILE_DOWNLOAD = "application/vnd.microsoft.teams.file.download.info"
_IGNORED = ("text/html",)  # the message's own formatted text
_IMAGE_FILES = ("jpg", "jpeg", "png", "gif", "webp")
_ONLY_IMAGES = "A broadcast carries images only (JPEG, PNG, GIF or WebP)"


def _source(attachment: Attachment, service_url: str) -> tuple[str, str, bool]:
    """Where an attachment's bytes are, its name, and whether the bot's token is asked for there."""
    kind = attachment.content_type
    name = attachment.name or "pasted image"
    if kind.startswith("image/") and attachment.content_url:
        on_connector = urlsplit(attachment.content_url).netloc == urlsplit(service_url).netloc
        return attachment.content_url, name, on_connector
    content = attachment.content if isinstance(attachment.content, dict) else {}
    if kind == FILE_DOWNLOAD and content.get("downloadUrl"):
        if str(content.get("fileType", "")).lower() not in _IMAGE_FILES:
            raise InputError(f"{name} is not an image. {_ONLY_IMAGES}: send the message again without it.")
        return str(content["downloadUrl"]), name, False
    raise InputError(f"{name} ({kind}) is not an image. {_ONLY_IMAGES}: send the message again without it.")


def sent(activity: Activity) -> list[Attachment]:
    """What the person sent with the message, but its own text."""
    return [a for a in activity.attachments or [] if a.content_type not in _IGNORED]


async def attachments(connection: TeamsConnection, activity: Activity) -> list[Attached]:
    """The images sent with the message, in order, without alt text (Teams has none: the preview asks);
    refused with words the leader can act on before anything is fetched or stored."""
    given = sent(activity)
    if len(given) > MAX_IMAGES:
        raise InputError(f"A broadcast carries at most {MAX_IMAGES} images; {len(given)} are attached.")
    service = activity.service_url or ""
    sources = [_source(attachment, service) for attachment in given]
    fetched = []
    for number, (url, name, with_token) in enumerate(sources, start=1):
        try:
            status, data = await connection.download(url, service, MAX_ATTACHED_BYTES + 1, with_token)
        except (TimeoutError, aiohttp.ClientError) as error:
            raise InputError(f"Teams did not hand over image {number} ({name}) in time: send it again.") from error
        if status != 200:
            raise InputError(f"Teams would not hand over image {number} ({name}): it answered {status}. Send it again.")
        fetched.append(Attached(data, "", name))
    return fetched
