"""Slack channels as a destination: chat.postMessage, with the broadcast marked in message metadata.

The metadata is what makes a lost answer recoverable: when a post may or may not have landed, the
channel's history is searched for a message carrying the part's key before anything is posted again.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.models.metadata import Metadata
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_blocks import MESSAGE_TEXT_BUDGET, split
from relay import uploads
from relay.config import DestinationConfig, Settings, slack_channel_problem
from relay.destination import (
    Ambiguous,
    Counting,
    DestinationSpec,
    FindResult,
    Image,
    ImageLimits,
    Limits,
    Markup,
    Outcome,
    Part,
    Permanent,
    Retry,
    Sent,
    Unprovable,
)
from relay.store import Store
from relay.transport import PerLoop, client_timeout, server_hint, transport_outcome

SPEC = DestinationSpec(
    kind="slack",
    options={"channel": str},
    required=("channel",),
    secrets={"token": "SLACK_BOT_TOKEN"},
    check_options=lambda options: [("channel", p) for p in [slack_channel_problem(options["channel"])] if p],
)

EVENT_TYPE = "relay_broadcast"  # the metadata event type our posts carry; the manifest declares it

# Slack documents ~1 message per second per channel for chat.postMessage, and a workspace-wide limit of
# "several hundred messages per minute" with no figure (docs.slack.dev, "Rate limits"): the pause a 429
# asks for is kept by the whole workspace (relay.pacing). Slack truncates text past 40,000 characters
# (chat.postMessage reference). Calls in flight: enough to post to a hundred channels in about a second.
LIMITS = Limits(
    max_length=40_000,
    counting=Counting.CHARACTERS,
    markup=Markup.MRKDWN,
    concurrency=16,
    min_interval=1.0,
    # Images go in the post as image blocks referring to files the bot uploaded (files.getUploadURLExternal,
    # files.completeUploadExternal), so the post keeps its metadata and can be found, corrected and
    # deleted as before. The image block (docs.slack.dev, "Image block") shows PNG, JPEG and GIF, with alt
    # text up to 2,000 characters; files may be up to 1 GB. With images the text is shown in section
    # blocks, which Slack refuses past about 12,000 characters in all (adapters/slack_blocks.py).
    images=ImageLimits(
        max_count=4,
        max_bytes=1_000_000_000,
        formats=frozenset({"image/jpeg", "image/png", "image/gif"}),
        alt_length=2000,
        max_text=MESSAGE_TEXT_BUDGET,
    ),
)

_BAD_TOKEN = {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
# Slack's own words: these errors mean "it's possible some aspect of the operation succeeded".
_MAYBE_DONE = {"fatal_error", "internal_error"}
_TRY_AGAIN = {"ratelimited", "service_unavailable", "request_timeout"}


def whole_seconds(seconds: float) -> int:
    """slack_sdk takes its timeouts in whole seconds."""
    return max(1, round(seconds))


def web_client(
    settings: Settings,
    retry_handlers: list[Any] | None = None,
    token_variable: str = "SLACK_BOT_TOKEN",
    session: aiohttp.ClientSession | None = None,
) -> AsyncWebClient:
    """A Web API client with a timeout and, by default, no retries of its own: slack_sdk's default
    handler retries dropped connections, which can post a message twice. The outbox retries instead."""
    return AsyncWebClient(
        token=settings.reveal(token_variable) or None,
        base_url=settings.slack_api_url,
        timeout=whole_seconds(settings.http_timeout),
        retry_handlers=retry_handlers or [],
        session=session,
    )


class _Workspace:
    """What every channel posted to with one bot token shares: one client over one connection pool
    (without a session, slack_sdk opens and closes a connection for every call, which at a thousand
    channels is most of the CPU a broadcast costs) and the workspace's address, to write links with."""

    def __init__(self, settings: Settings, token_variable: str) -> None:
        # slack_sdk applies its own timeout only to sessions it makes: this one carries RELAY_HTTP_TIMEOUT.
        session = aiohttp.ClientSession(timeout=client_timeout(settings.http_timeout))
        self.client = web_client(settings, token_variable=token_variable, session=session)
        self._address: str | None = None
        self._asking = asyncio.Lock()  # a thousand channels preparing at once make one auth.test

    async def address(self) -> str | None:
        """The workspace's address (`https://<name>.slack.com/`), asked once; None while Slack cannot say."""
        async with self._asking:
            if self._address is None:
                try:
                    self._address = str((await self.client.auth_test())["url"])
                except Exception:
                    return None
        return self._address

    async def permalink(self, channel: str, ts: str) -> str | None:
        """A message's link, in the form Slack's own permalinks take (`<workspace>/archives/<channel>/p<ts>`):
        one auth.test per workspace instead of a chat.getPermalink (rate-limited per minute) per post."""
        address = self._address or await self.address()
        return f"{address.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}" if address else None

    async def close(self) -> None:
        if self.client.session is not None:
            await self.client.session.close()


_WORKSPACES: PerLoop[str, _Workspace] = PerLoop()


def _workspace(settings: Settings, token_variable: str) -> _Workspace:
    return _WORKSPACES.get(_key(settings, token_variable), lambda: _Workspace(settings, token_variable))


def _key(settings: Settings, token_variable: str) -> str:
    return f"{settings.slack_api_url} {token_variable}"  # one workspace: one API address, one token


def explain(error: str, channel: str = "") -> str:
    """A Slack error code, in words a leader or an operator can act on."""
    where = f"<#{channel}>" if channel else "the channel"
    messages = {
        "channel_not_found": (
            f"Slack cannot find channel {channel}: check its ID in relay.toml, and invite the bot if it is private."
        ),
        "not_in_channel": f"The bot is not a member of {where}: invite it there with /invite.",
        "is_archived": f"{where} is archived: unarchive it or remove it from relay.toml.",
        "msg_too_long": "Slack says the message is too long.",
        "restricted_action": f"Slack does not let the bot post in {where} (posting is restricted there).",
        "restricted_action_read_only_channel": f"{where} is read-only for the bot.",
        "missing_scope": "The Slack app lacks a permission it needs: reinstall it from manifest.json.",
    }
    if error in _BAD_TOKEN:
        return "Slack rejected the bot token: reinstall the app and renew SLACK_BOT_TOKEN."
    return messages.get(error, f"Slack refused it ({error}).")


def api_failure(error: SlackApiError, channel: str = "") -> Outcome:
    """Classify an error answer from the Slack Web API."""
    status = error.response.status_code
    code = str(error.response.get("error", ""))
    if status == 429 or code in _TRY_AGAIN or status >= 500:
        return Retry(f"Slack answered {status} {code}".strip(), server_hint(error.response.headers))
    if code in _MAYBE_DONE:
        return Ambiguous(f"Slack reported {code}; the post may have gone through")
    return Permanent(explain(code, channel))


class SlackChannel:
    """One Slack channel, posted to with the bot token."""

    limits = LIMITS
    editable = True
    idempotency_window = 0.0  # Slack has no idempotency key; metadata lets `find` look instead

    def __init__(self, config: DestinationConfig, settings: Settings, store: Store) -> None:
        self.name = config.name
        self.channel: str = config.options["channel"]
        self.settings = settings
        self.token_variable = config.env["token"]

    @property
    def client(self) -> AsyncWebClient:
        return _workspace(self.settings, self.token_variable).client

    async def publish(self, part: Part) -> Outcome:
        try:
            pictures = [await self._upload(image) for image in part.images]
        except uploads.Unuploaded as failed:
            return failed.outcome
        try:
            answer = await self.client.chat_postMessage(
                channel=self.channel,
                text=part.text,
                blocks=_with_images(part.text, pictures) if pictures else None,
                metadata=Metadata(event_type=EVENT_TYPE, event_payload={"key": part.key}),
                link_names=False,
            )
        except SlackApiError as error:
            return api_failure(error, self.channel)
        except Exception as error:
            return transport_outcome(error, "Slack")
        ts = str(answer["ts"])
        return Sent(ts, await self._permalink(ts))

    async def _upload(self, image: Image) -> dict[str, Any]:
        """Slack's external upload (files.getUploadURLExternal, the bytes to its URL, then
        files.completeUploadExternal without a channel: the file is the bot's, shown where a block refers
        to it). Answers the image block that shows it."""
        try:
            got = await self.client.files_getUploadURLExternal(
                filename=f"image.{image.extension}", length=len(image.data), alt_txt=image.alt or None
            )
            session = self.client.session
            assert session is not None
            async with session.post(str(got["upload_url"]), data=io.BytesIO(image.data)) as sent:
                if sent.status >= 300:
                    raise uploads.fail(Retry(f"Slack's upload URL answered {sent.status}"), "Slack")
            file_id = str(got["file_id"])
            await self.client.files_completeUploadExternal(files=[{"id": file_id, "title": image.alt or "image"}])
        except SlackApiError as error:
            raise uploads.fail(api_failure(error, self.channel), "Slack") from error
        except uploads.Unuploaded:
            raise
        except Exception as error:
            raise uploads.fail(transport_outcome(error, "Slack"), "Slack") from error
        return {"type": "image", "slack_file": {"id": file_id}, "alt_text": image.alt or "image"}

    async def edit(self, remote_id: str, text: str) -> Outcome:
        """Replace the text; a post that shows images keeps them (its image blocks are sent again)."""
        try:
            found = await self.client.conversations_history(
                channel=self.channel, latest=remote_id, oldest=remote_id, inclusive=True, limit=1
            )
            messages: list[dict[str, Any]] = found.get("messages", [])
            shown = [m for m in messages if m.get("ts") == remote_id]
            pictures = [b for b in (shown[0].get("blocks") or []) if b.get("type") == "image"] if shown else []
            await self.client.chat_update(
                channel=self.channel,
                ts=remote_id,
                text=text,
                blocks=_with_images(text, pictures) if pictures else None,
                link_names=False,
            )
        except SlackApiError as error:
            return api_failure(error, self.channel)
        except Exception as error:
            return transport_outcome(error, "Slack")
        return Sent(remote_id, None)

    async def delete(self, remote_id: str) -> Outcome:
        try:
            await self.client.chat_delete(channel=self.channel, ts=remote_id)
        except SlackApiError as error:
            code = str(error.response.get("error", ""))
            if code == "message_not_found":
                return Sent(remote_id, None)  # already gone
            if code in ("cant_delete_message", "compliance_exports_prevent_deletion"):
                return Permanent(f"Slack does not let the bot delete its message in <#{self.channel}> ({code}).")
            return api_failure(error, self.channel)
        except Exception as error:
            return transport_outcome(error, "Slack")
        return Sent(remote_id, None)

    async def find(self, part: Part, since: float) -> FindResult:
        cursor = None
        try:
            for _ in range(5):  # 1,000 messages since the first attempt is far more than a channel gets
                page = await self.client.conversations_history(
                    channel=self.channel, oldest=f"{since:.6f}", include_all_metadata=True, limit=200, cursor=cursor
                )
                messages: list[dict[str, Any]] = page.get("messages", [])
                for message in messages:
                    metadata = message.get("metadata") or {}
                    payload = metadata.get("event_payload") or {}
                    if metadata.get("event_type") == EVENT_TYPE and payload.get("key") == part.key:
                        return Sent(message["ts"], await self._permalink(message["ts"]))
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    return None
        except SlackApiError as error:
            outcome = api_failure(error, self.channel)
            if isinstance(outcome, Retry):
                return outcome
            return Unprovable(
                f"The post may or may not be in <#{self.channel}>, and Slack would not let the bot check "
                f"({error.response.get('error')}): look there before posting it by hand."
            )
        except Exception as error:
            transport_outcome(error, "Slack")
            return Retry("could not reach Slack to check whether the post landed")
        return Unprovable(f"Too many messages in <#{self.channel}> to check whether it landed.")

    async def _permalink(self, ts: str) -> str | None:
        return await _workspace(self.settings, self.token_variable).permalink(self.channel, ts)

    async def prepare(self) -> None:
        """Learn the workspace's address at start-up, so the first post's link costs no extra round trip."""
        await _workspace(self.settings, self.token_variable).address()

    def replies_note(self) -> str | None:
        return None  # a staff channel: replies are conversation among colleagues

    def pace_key(self) -> str:
        return f"slack:{self.channel}"

    def limit_key(self) -> str:
        return "slack"  # one bot token, one workspace: its rate limits are shared

    def describe(self) -> str:
        return f"Slack channel {self.channel}"

    async def close(self) -> None:
        """Close the shared pool (the first channel to close does it; the app is stopping)."""
        workspace = _WORKSPACES.pop(_key(self.settings, self.token_variable))
        if workspace is not None:
            await workspace.close()


def _with_images(text: str, pictures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A post with images: its text in sections (a message with blocks shows them, not its `text`), then
    the images."""
    sections = [{"type": "section", "text": {"type": "mrkdwn", "text": piece}} for piece in split(text)]
    return [*sections, *pictures]
