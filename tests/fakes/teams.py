"""Loopback stand-in for the Bot Connector service Teams gives a bot as `serviceUrl`: records what the
bot sends (new messages, replies, card updates), lists a team's channels, and misbehaves on demand.

It refuses what Teams refuses: a message over Teams' size limit (413 `MessageSizeTooBig`), and an
Adaptive Card that Microsoft's own Adaptive Cards library rejects (checked by `CardChecker`).

A card's Image elements are fetched by their URL, as a Teams client does to show them (from loopback
only: no test reaches the internet), and recorded in `pictures`; Teams takes the message whatever the
fetch gives, and shows a placeholder where it failed, so a test reads `pictures` as a reader would see the
post. `look_again()` fetches them all once more, as a reader opening the channel later."""

from __future__ import annotations

import io
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import aiohttp
import PIL.Image
from aiohttp import web
from yarl import URL

from .adaptive_cards import CardChecker
from .faults import Fault
from .server import LoopbackServer

Payload = dict[str, Any]
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
# "Approximately 28 KB per post" (learn.microsoft.com, "Limits and specifications for Microsoft Teams",
# Chat); past it the Bot Connector answers 413 with this body (microsoft/BotFramework-Services#228).
# Measured here on the request body as sent.
MESSAGE_MAX_BYTES = 28 * 1024
TOO_BIG = {"error": {"code": "MessageSizeTooBig", "message": "Message size too large."}}


@dataclass
class Picture:
    """An image of a card as a Teams client fetched it: `mime` None where it could not be shown."""

    url: str
    alt: str
    status: int  # the HTTP status of the fetch (0: no answer)
    mime: str | None
    data: bytes = field(repr=False, default=b"")


@dataclass
class ConnectorCall:
    """One request: `endpoint` is "POST activities", "POST reply", "PUT activity", "DELETE activity",
    "POST conversations" or "GET channels"."""

    endpoint: str
    conversation: str
    activity_id: str | None
    body: Payload
    headers: Mapping[str, str] = field(repr=False)
    fault: Fault | None = None
    at: float = field(default_factory=time.monotonic, repr=False)


class FakeConnector(LoopbackServer[ConnectorCall]):
    """`serviceUrl` for activities the tests send to the bot."""

    def __init__(self, channels: Mapping[str, list[Payload]] | None = None) -> None:
        super().__init__()
        self.channels = dict(channels or {})  # team id → [{"id": …, "name": …}]
        self.messages: dict[str, dict[str, Payload]] = {}  # conversation → activity id → latest activity
        self._ids = itertools.count(1_700_000_000_001)
        self.cards_checker = CardChecker()
        self.refused: list[tuple[str, Payload]] = []  # (why, body) of every message refused as Teams would
        self.pictures: list[Picture] = []  # every card image fetched, in order
        router = self.app.router
        router.add_post("/v3/conversations", self._create)
        router.add_post("/v3/conversations/{conversation}/activities", self._post)
        router.add_post("/v3/conversations/{conversation}/activities/{activity}", self._post)
        router.add_put("/v3/conversations/{conversation}/activities/{activity}", self._put)
        router.add_delete("/v3/conversations/{conversation}/activities/{activity}", self._delete)
        router.add_get("/v3/teams/{team}/conversations", self._channels)
        # What a person sent the bot: a pasted image on the connector (the bot's token required), and a file
        # attached in a 1:1 chat at its pre-signed download URL (no token: one sent there is recorded).
        self.bot_token: str | None = None  # the token the bot must show for a pasted image; None: any
        self._sent: dict[str, tuple[bytes, str]] = {}
        self.downloads: list[tuple[str, str | None]] = []  # (path, Authorization header) of every fetch
        router.add_get("/v3/attachments/{id}/views/original", self._pasted)
        router.add_get("/personal/{id}/download", self._file)

    async def __aenter__(self) -> Self:
        await self.cards_checker.start()
        try:
            return await super().__aenter__()
        except BaseException:
            await self.cards_checker.close()
            raise

    async def close(self) -> None:
        await super().close()
        await self.cards_checker.close()

    @property
    def service_url(self) -> str:
        """Teams' service URLs end with a slash."""
        return f"{self.origin}/"

    @staticmethod
    def throttled(retry_after: int = 1) -> Fault:
        """Teams' 429: `Retry-After` and a Throttled error body."""
        body = {"error": {"code": "Throttled", "message": "Too many requests"}}
        return Fault.status(429, body, {"Retry-After": str(retry_after)})

    def rate_limited_for(self, seconds: float) -> Fault:
        return self.throttled(math.ceil(seconds))

    def calls_to(self, endpoint: str) -> list[ConnectorCall]:
        return [call for call in self.calls if call.endpoint == endpoint]

    def posted(self, conversation: str) -> list[Payload]:
        """Messages now in a conversation (each in its latest version), oldest first."""
        return list(self.messages.get(conversation, {}).values())

    def cards(self, conversation: str) -> list[Payload]:
        """The Adaptive Cards now in a conversation, oldest first."""
        return [
            attachment["content"]
            for message in self.posted(conversation)
            for attachment in message.get("attachments") or []
            if attachment.get("contentType") == ADAPTIVE_CARD
        ]

    def paste(self, data: bytes, mime: str) -> Payload:
        """An image a person pasted into the compose box, as the bot's activity lists it."""
        key = f"0-weu-d1-{next(self._ids)}"
        self._sent[key] = (data, mime)
        return {"contentType": mime, "contentUrl": f"{self.origin}/v3/attachments/{key}/views/original"}

    def attach(self, data: bytes, name: str, mime: str) -> Payload:
        """A file a person attached in their 1:1 chat with the bot: a `file.download.info` attachment."""
        key = f"file-{next(self._ids)}"
        self._sent[key] = (data, mime)
        return {
            "contentType": "application/vnd.microsoft.teams.file.download.info",
            "name": name,
            "content": {
                "downloadUrl": f"{self.origin}/personal/{key}/download?tempauth=v1.signed",
                "uniqueId": key,
                "fileType": name.rsplit(".", 1)[-1],
            },
        }

    async def _pasted(self, request: web.Request) -> web.StreamResponse:
        given = request.headers.get("Authorization")
        self.downloads.append((request.path, given))
        scheme, _, token = (given or "").partition(" ")
        if scheme != "Bearer" or not token or (self.bot_token is not None and token != self.bot_token):
            return web.json_response({"error": {"code": "Unauthorized", "message": "Authorization denied"}}, status=401)
        return self._bytes(request.match_info["id"])

    async def _file(self, request: web.Request) -> web.StreamResponse:
        self.downloads.append((request.path, request.headers.get("Authorization")))
        if request.query.get("tempauth") != "v1.signed":
            return web.json_response({"error": {"code": "accessDenied"}}, status=401)
        return self._bytes(request.match_info["id"])

    def _bytes(self, key: str) -> web.StreamResponse:
        if key not in self._sent:
            return web.json_response({"error": {"code": "NotFound"}}, status=404)
        data, mime = self._sent[key]
        return web.Response(body=data, content_type=mime)

    async def look_again(self) -> list[Picture]:
        """Fetch the images of every card now in every conversation, as a reader opening it later."""
        return [
            await self._fetch(element.get("url", ""), element.get("altText", ""))
            for conversation in self.messages
            for card in self.cards(conversation)
            for element in card.get("body") or []
            if element.get("type") == "Image"
        ]

    async def _show(self, body: Payload) -> None:
        for attachment in body.get("attachments") or []:
            if attachment.get("contentType") == ADAPTIVE_CARD:
                for element in (attachment.get("content") or {}).get("body") or []:
                    if element.get("type") == "Image":
                        self.pictures.append(await self._fetch(element.get("url", ""), element.get("altText", "")))

    @staticmethod
    async def _fetch(url: str, alt: str) -> Picture:
        if URL(url).host not in ("127.0.0.1", "localhost", "::1"):
            return Picture(url, alt, 0, None)
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
                http.get(url) as answer,
            ):
                data, status, declared = await answer.read(), answer.status, answer.content_type
        except aiohttp.ClientError:
            return Picture(url, alt, 0, None)
        try:
            with PIL.Image.open(io.BytesIO(data)) as opened:
                kind = PIL.Image.MIME.get(opened.format or "")
        except (OSError, PIL.UnidentifiedImageError):
            kind = None
        shown = kind if status == 200 and kind == declared else None
        return Picture(url, alt, status, shown, data)

    async def _refusal(self, request: web.Request, body: Payload) -> web.StreamResponse | None:
        """Teams' answer to a message it will not show, or None when it would."""
        size = len(await request.read())
        if size > MESSAGE_MAX_BYTES:
            self.refused.append((f"{size:,} bytes", body))
            return web.json_response(TOO_BIG, status=413)
        for attachment in body.get("attachments") or []:
            if attachment.get("contentType") != ADAPTIVE_CARD:
                continue
            problems = await self.cards_checker.problems(attachment.get("content"))
            if problems:
                self.refused.append(("; ".join(problems), body))
                message = f"Invalid Adaptive Card: {'; '.join(problems)}"
                return web.json_response({"error": {"code": "BadArgument", "message": message}}, status=400)
        return None

    async def _post(self, request: web.Request) -> web.StreamResponse:
        conversation = request.match_info["conversation"]
        reply_to = request.match_info.get("activity")
        body = await request.json()
        endpoint = "POST reply" if reply_to else "POST activities"

        async def apply() -> web.StreamResponse:
            if refused := await self._refusal(request, body):
                return refused
            activity_id = str(next(self._ids))
            self.messages.setdefault(conversation, {})[activity_id] = {**body, "id": activity_id}
            await self._show(body)
            return web.json_response({"id": activity_id})

        return await self._handle(request, endpoint, conversation, reply_to, body, apply)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        """Create Conversation: a 1:1 chat is one per person and bot, so the same id comes back each time
        (here `a:personal-<AAD id>`, as tests.teams_activities.personal names it)."""
        body = await request.json()

        async def apply() -> web.StreamResponse:
            members = body.get("members") or []
            person = str(members[0].get("id", "")) if len(members) == 1 and isinstance(members[0], dict) else ""
            if not person.startswith("29:") or not body.get("tenantId") or body.get("isGroup"):
                error = {"code": "BadArgument", "message": "a 1:1 chat needs one member (29:…) and the tenant"}
                return web.json_response({"error": error}, status=400)
            return web.json_response({"id": f"a:personal-{person.removeprefix('29:')}"}, status=201)

        return await self._handle(request, "POST conversations", "", None, body, apply)

    async def _put(self, request: web.Request) -> web.StreamResponse:
        conversation = request.match_info["conversation"]
        activity_id = request.match_info["activity"]
        body = await request.json()

        async def apply() -> web.StreamResponse:
            existing = self.messages.get(conversation, {})
            if activity_id not in existing:
                return web.json_response({"error": {"code": "NotFound"}}, status=404)
            if refused := await self._refusal(request, body):
                return refused
            existing[activity_id] = {**body, "id": activity_id}
            return web.json_response({"id": activity_id})

        return await self._handle(request, "PUT activity", conversation, activity_id, body, apply)

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        conversation = request.match_info["conversation"]
        activity_id = request.match_info["activity"]

        async def apply() -> web.StreamResponse:
            if self.messages.get(conversation, {}).pop(activity_id, None) is None:
                return web.json_response({"error": {"code": "NotFound"}}, status=404)
            return web.Response(status=200)

        return await self._handle(request, "DELETE activity", conversation, activity_id, {}, apply)

    async def _channels(self, request: web.Request) -> web.StreamResponse:
        team = request.match_info["team"]

        async def apply() -> web.StreamResponse:
            return web.json_response({"conversations": self.channels.get(team, [])})

        return await self._handle(request, "GET channels", team, None, {}, apply)

    async def _handle(
        self,
        request: web.Request,
        endpoint: str,
        conversation: str,
        activity_id: str | None,
        body: Payload,
        apply: Callable[[], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        params = {**body, "conversation": conversation}  # the URL's conversation, not the body's
        fault = self._fault_for(endpoint, params)
        call = ConnectorCall(endpoint, conversation, activity_id, body, request.headers, fault)
        return await self._serve(request, call, fault, apply)
