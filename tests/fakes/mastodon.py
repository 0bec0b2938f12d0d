"""Loopback stand-in for a Mastodon instance: statuses with Mastodon's own idempotency and length rules,
recording and faults, so the bot's Mastodon adapter is tested against Mastodon's behaviour, not a mock's."""

from __future__ import annotations

import enum
import html
import itertools
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from relay.twitter_text import mastodon_length

from .faults import Fault
from .oauth2 import AuthorizationServer, Dialect
from .server import LoopbackServer

Payload = dict[str, Any]

URL_LENGTH = 23  # every http(s) link counts as this many characters, whatever its length
VISIBILITIES = ("public", "unlisted", "private", "direct")
IDEMPOTENCY_TTL = timedelta(hours=1)  # how long Mastodon remembers an Idempotency-Key
_FIRST_STATUS_ID = 113_500_000_000_000_001
# Media limits, Mastodon 4.3's (app/models/media_attachment.rb, and what GET /api/v2/instance says).
MAX_MEDIA = 4
IMAGE_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/gif", "image/heic", "image/heif", "image/webp", "image/avif"}
)
IMAGE_SIZE_LIMIT = 16 * 1024 * 1024
IMAGE_MATRIX_LIMIT = 33_177_600
MAX_DESCRIPTION = 1500
_TIMELINE_LIMIT, _TIMELINE_MAX = 20, 40


class _Auth(enum.Enum):
    """How an endpoint treats the bearer token, as Mastodon's controllers do."""

    NONE = "none"  # public: the token is not even looked at (GET /api/v2/instance)
    OPTIONAL = "optional"  # anonymous allowed, but a token given must be valid (`authorize_if_got_token!`)
    REQUIRED = "required"


def countable_length(text: str, spoiler_text: str = "") -> int:
    """Mastodon's StatusLengthValidator: grapheme clusters of spoiler + text, each link 23 and each remote
    mention its local part (relay/twitter_text.py, the count the bot renders by)."""
    return mastodon_length(spoiler_text + text, URL_LENGTH)


def format_time(moment: datetime) -> str:
    """Mastodon's timestamps: UTC, millisecond precision, `Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _html(text: str) -> str:
    """Plain text as Mastodon renders it (Rails' simple_format): escaped, paragraphs, <br /> for newlines.
    Links are left as text rather than wrapped in <a>, so stripping tags gives the text back."""
    escaped = html.escape(text).replace("&#x27;", "&#39;")
    paragraphs = re.split(r"\n\n+", escaped)
    return "".join(f"<p>{paragraph.replace(chr(10), '<br />')}</p>" for paragraph in paragraphs)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _present(value: Any) -> str | None:
    """The value as a string if Rails would call it `present?` (not missing, empty or blank)."""
    return str(value) if value is not None and str(value).strip() else None


async def _read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, web.FileField]]:
    """Query plus JSON or form body, merged the way Rails builds `params`; and the uploaded files."""
    params: dict[str, Any] = dict(request.query)
    files: dict[str, web.FileField] = {}
    if request.content_type == "application/json" and request.body_exists:
        body = json.loads(await request.text())
        if isinstance(body, dict):
            params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        params.update((key, value) for key, value in form.items() if isinstance(value, str))
        files.update((key, value) for key, value in form.items() if isinstance(value, web.FileField))
    return params, files


@dataclass
class MastodonMedia:
    """An uploaded media attachment: unattached until a status refers to it."""

    id: str
    data: bytes = field(repr=False)
    content_type: str
    description: str
    created_at: float  # monotonic
    ready_at: float  # monotonic: processing is done from then on
    status_id: str | None = None


@dataclass
class MastodonStatus:
    """A stored status of the fake account; `text` is the raw `status` the client sent."""

    id: str
    text: str
    visibility: str
    in_reply_to_id: str | None
    idempotency_key: str | None
    language: str | None
    spoiler_text: str
    created_at: datetime
    media: list[MastodonMedia] = field(default_factory=list)


@dataclass
class MastodonCall:
    """One request as received: `params` merges query, JSON or form body and path (what predicates see)."""

    endpoint: str
    path: str
    params: dict[str, Any]
    headers: Mapping[str, str] = field(repr=False)
    fault: Fault | None = None
    at: float = field(default_factory=time.monotonic, repr=False)  # when it arrived
    wall: float = field(default_factory=time.time, repr=False)  # the same, on the clock rate-limit resets use
    files: dict[str, bytes] = field(default_factory=dict, repr=False)
    file_types: dict[str, str] = field(default_factory=dict, repr=False)


# docs.joinmastodon.org/methods/oauth: tokens do not expire; `POST /oauth/revoke` with the client's credentials;
# PKCE (S256) is optional, and checked when the app uses it.
SIGN_IN = Dialect(authorize="/oauth/authorize", token="/oauth/token", revoke="/oauth/revoke", lifetime=None)
# The scope each endpoint needs (docs.joinmastodon.org, each method's "OAuth" line); a parent scope covers its
# children ("write" covers "write:statuses").
_SCOPES = {
    "POST /api/v1/statuses": "write:statuses",
    "DELETE /api/v1/statuses/:id": "write:statuses",
    "GET /api/v1/accounts/verify_credentials": "read:accounts",
}


class FakeMastodon(LoopbackServer[MastodonCall]):
    """One account on a Mastodon instance on loopback; the bot calls `{mastodon.url}/api/v1/statuses` etc."""

    def __init__(
        self,
        token: str = "mastodon-token",
        *,
        max_characters: int = 500,
        account_id: str = "109000000000000001",
        username: str = "relaybot",
        display_name: str = "Relay Bot",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__()
        self.token = token
        self.max_characters = max_characters
        self.account_id = account_id
        self.username = username
        self.display_name = display_name
        self.statuses: list[MastodonStatus] = []
        self.deleted: list[MastodonStatus] = []
        self.token_revoked = False
        self.apps_registered = 0
        self._clock = clock
        self._ids = itertools.count(_FIRST_STATUS_ID)
        self._idempotency: dict[str, tuple[str, datetime]] = {}  # key → (status id, when it was stored)
        self.media: dict[str, MastodonMedia] = {}
        self.processing_delay = 0.3  # seconds an upload stays "processing" (202, then 206 until ready)
        # Mastodon deletes media never attached to a status after a day (`media_remove` / MediaCleanupScheduler)
        self.media_ttl = 24 * 3600.0
        self.sign_in = AuthorizationServer(self.app, SIGN_IN)
        self.app.router.add_post("/api/v1/apps", self._create_app)
        routes: list[tuple[str, str, Callable[[MastodonCall], web.Response], _Auth]] = [
            ("GET", "/api/v2/instance", self._instance, _Auth.NONE),
            ("POST", "/api/v1/statuses", self._create_status, _Auth.REQUIRED),
            ("DELETE", "/api/v1/statuses/{id}", self._delete_status, _Auth.REQUIRED),
            ("GET", "/api/v1/accounts/verify_credentials", self._verify_credentials, _Auth.REQUIRED),
            ("GET", "/api/v1/accounts/{id}/statuses", self._account_statuses, _Auth.OPTIONAL),
            ("POST", "/api/v2/media", self._upload_media, _Auth.REQUIRED),
            ("GET", "/api/v1/media/{id}", self._show_media, _Auth.REQUIRED),
        ]
        for method, path, handler, auth in routes:
            endpoint = f"{method} {path.replace('{id}', ':id')}"
            self.app.router.add_route(method, path, self._endpoint(endpoint, handler, auth))

    @property
    def url(self) -> str:
        """Base URL of the instance, e.g. `http://127.0.0.1:PORT`."""
        return self.origin

    @property
    def domain(self) -> str:
        """The instance's domain as its API reports it (`127.0.0.1:PORT`)."""
        return self.origin.removeprefix("http://")

    @property
    def account(self) -> Payload:
        """The Account entity of the fake user."""
        return {
            "id": self.account_id,
            "username": self.username,
            "acct": self.username,
            "display_name": self.display_name,
            "url": f"{self.origin}/@{self.username}",
            "bot": True,
        }

    def calls_to(self, endpoint: str) -> list[MastodonCall]:
        """Recorded calls of one endpoint, e.g. "POST /api/v1/statuses"."""
        return [call for call in self.calls if call.endpoint == endpoint]

    def add_status(
        self,
        text: str,
        *,
        visibility: str = "public",
        in_reply_to: str | None = None,
        idempotency_key: str | None = None,
        language: str | None = None,
        spoiler_text: str = "",
        created_at: datetime | None = None,
    ) -> MastodonStatus:
        """Store a status as POST /api/v1/statuses would (no validation); tests seed the timeline with it."""
        status = MastodonStatus(
            id=str(next(self._ids)),
            text=text,
            visibility=visibility,
            in_reply_to_id=in_reply_to,
            idempotency_key=idempotency_key,
            language=language,
            spoiler_text=spoiler_text,
            created_at=created_at or self._clock(),
        )
        self.statuses.append(status)
        return status

    def render(self, status: MastodonStatus) -> Payload:
        """The Status entity Mastodon returns for `status`."""
        return {
            "id": status.id,
            "created_at": format_time(status.created_at),
            "in_reply_to_id": status.in_reply_to_id,
            "in_reply_to_account_id": self.account_id if status.in_reply_to_id else None,
            "sensitive": bool(status.spoiler_text),
            "spoiler_text": status.spoiler_text,
            "visibility": status.visibility,
            "language": status.language,
            "uri": f"{self.origin}/users/{self.username}/statuses/{status.id}",
            "url": f"{self.origin}/@{self.username}/{status.id}",
            "content": _html(status.text),
            "edited_at": None,
            "reblog": None,
            "account": self.account,
            "media_attachments": [self._media_entity(media) for media in status.media],
            "mentions": [],
            "tags": [],
        }

    @staticmethod
    def rate_limited(reset_in: float = 1, limit: int = 300) -> Fault:
        """Mastodon's 429, computed now: its `X-RateLimit-Reset` is an ISO 8601 date, not epoch seconds."""
        reset = datetime.now(UTC) + timedelta(seconds=reset_in)
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        return Fault.status(429, {"error": "Too many requests"}, headers)

    def rate_limited_for(self, seconds: float) -> Fault:
        return self.rate_limited(seconds)

    def _endpoint(
        self, endpoint: str, handler: Callable[[MastodonCall], web.Response], auth: _Auth
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Wrap a handler with parsing, token checks, recording and fault injection."""

        async def serve(request: web.Request) -> web.StreamResponse:
            read, uploaded = await _read_params(request)
            params = {**read, **request.match_info}
            fault = self._fault_for(endpoint, params)
            files = {name: upload.file.read() for name, upload in uploaded.items()}
            types = {name: upload.content_type for name, upload in uploaded.items()}
            call = MastodonCall(endpoint, request.path, params, request.headers, fault, files=files, file_types=types)

            async def apply() -> web.StreamResponse:
                return self._refused(request.headers.get("Authorization"), auth, endpoint) or handler(call)

            return await self._serve(request, call, fault, apply)

        return serve

    async def _create_app(self, request: web.Request) -> web.Response:
        """`POST /api/v1/apps` (docs.joinmastodon.org/methods/apps/#create): anyone may register an app."""
        form, _ = await _read_params(request)
        if not form.get("client_name") or not form.get("redirect_uris"):
            return _error(422, "Validation failed: Application name can't be blank, Redirect URI can't be blank")
        client_id, secret = self.sign_in.register(str(form["redirect_uris"]))
        self.apps_registered += 1
        return web.json_response(
            {
                "id": str(len(self.sign_in.clients)),
                "name": form["client_name"],
                "redirect_uri": form["redirect_uris"],
                "client_id": client_id,
                "client_secret": secret,
                "scopes": str(form.get("scopes", "read")).split(),
            }
        )

    def _refused(self, authorization: str | None, auth: _Auth, endpoint: str = "") -> web.Response | None:
        """Doorkeeper's 401s (and 403 for a token without the scope); None when the request may proceed."""
        if auth is _Auth.NONE or (auth is _Auth.OPTIONAL and authorization is None):
            return None
        issued = self.sign_in.bearer(authorization)
        if issued is not None:
            needed = _SCOPES.get(endpoint, "read")
            if needed not in issued.scopes and needed.partition(":")[0] not in issued.scopes:
                return _error(403, "This action is outside the authorized scopes")
            return None
        if authorization != f"Bearer {self.token}":
            return _error(401, "The access token is invalid")
        if self.token_revoked:
            return _error(401, "The access token was revoked")
        return None

    def _find(self, status_id: str) -> MastodonStatus | None:
        return next((status for status in self.statuses if status.id == status_id), None)

    def _remembered(self, key: str) -> str | None:
        """Status id stored under an Idempotency-Key less than an hour ago."""
        stored = self._idempotency.get(key)
        if stored is None or self._clock() - stored[1] >= IDEMPOTENCY_TTL:
            return None
        return stored[0]

    def _instance(self, call: MastodonCall) -> web.Response:
        return web.json_response(
            {
                "domain": self.domain,
                "title": "Fake Mastodon",
                "version": "4.3.0",
                "source_url": "https://github.com/mastodon/mastodon",
                "description": "A loopback Mastodon for the relay's tests.",
                "configuration": {
                    "urls": {"streaming": self.origin.replace("http://", "ws://")},
                    "statuses": {
                        "max_characters": self.max_characters,
                        "max_media_attachments": MAX_MEDIA,
                        "characters_reserved_per_url": URL_LENGTH,
                    },
                    "media_attachments": {
                        "supported_mime_types": sorted(IMAGE_TYPES),
                        "image_size_limit": IMAGE_SIZE_LIMIT,
                        "image_matrix_limit": IMAGE_MATRIX_LIMIT,
                    },
                },
            }
        )

    def _verify_credentials(self, call: MastodonCall) -> web.Response:
        return web.json_response({**self.account, "source": {"privacy": "public", "language": None}})

    def _create_status(self, call: MastodonCall) -> web.Response:
        """Mastodon's order: the replied-to status first, then the Idempotency-Key, then validation."""
        params = call.params
        parent_id = _present(params.get("in_reply_to_id"))
        if parent_id is not None and self._find(parent_id) is None:
            return _error(404, "The post you are trying to reply to does not appear to exist.")
        key = _present(call.headers.get("Idempotency-Key"))
        if key is not None and (remembered := self._remembered(key)) is not None:
            earlier = self._find(remembered)  # the same status, whatever this request's body says
            return web.json_response(self.render(earlier)) if earlier else _error(404, "Record not found")
        text = str(params.get("status") or "")
        spoiler_text = str(params.get("spoiler_text") or "")
        visibility = _present(params.get("visibility")) or "public"
        if visibility not in VISIBILITIES:
            return _error(422, "Validation failed: Visibility is not included in the list")
        media_ids = [str(i) for i in params.get("media_ids") or params.get("media_ids[]") or []]
        if len(media_ids) > MAX_MEDIA:
            return _error(422, f"Cannot attach more than {MAX_MEDIA} files.")
        now = time.monotonic()
        media = [self.media.get(i) for i in media_ids]
        usable = [m for m in media if m is not None and m.status_id is None and now - m.created_at < self.media_ttl]
        if len(usable) != len(media_ids):  # PostStatusService#validate_media!
            return _error(422, f"Media with IDs {', '.join(media_ids)} not found. Already attached to another post?")
        if any(m.ready_at > now for m in usable):
            return _error(422, "Cannot attach files that have not finished processing. Try again in a moment!")
        if not text.strip() and not media_ids:
            return _error(422, "Validation failed: Text can't be blank")
        if countable_length(text, spoiler_text) > self.max_characters:
            return _error(422, f"Validation failed: Text character limit of {self.max_characters} exceeded")
        status = self.add_status(
            text,
            visibility=visibility,
            in_reply_to=parent_id,
            idempotency_key=key,
            language=_present(params.get("language")),
            spoiler_text=spoiler_text,
        )
        for attached in usable:
            attached.status_id = status.id
        status.media = usable
        if key is not None:
            self._idempotency[key] = (status.id, self._clock())
        return web.json_response(self.render(status))

    def _media_entity(self, media: MastodonMedia) -> Payload:
        ready = media.ready_at <= time.monotonic()
        url = f"{self.origin}/system/media_attachments/{media.id}"
        return {
            "id": media.id,
            "type": "image",
            "url": url if ready else None,
            "preview_url": url,
            "description": media.description or None,
        }

    def _upload_media(self, call: MastodonCall) -> web.Response:
        """MediaAttachment's validations, then 202: processing goes on for `processing_delay` seconds."""
        data = call.files.get("file")
        if data is None:
            return _error(422, "Validation failed: File can't be blank")
        if call.file_types.get("file") not in IMAGE_TYPES:
            return _error(422, "Validation failed: File content type is invalid, File is invalid")
        if len(data) > IMAGE_SIZE_LIMIT:
            return _error(422, "Validation failed: File file size must be less than 16 MB")
        description = str(call.params.get("description") or "")
        if len(description) > MAX_DESCRIPTION:
            return _error(422, f"Validation failed: Description is too long (maximum is {MAX_DESCRIPTION} characters)")
        now = time.monotonic()
        media = MastodonMedia(
            str(next(self._ids)), data, call.file_types["file"], description, now, now + self.processing_delay
        )
        self.media[media.id] = media
        return web.json_response(self._media_entity(media), status=202)

    def _show_media(self, call: MastodonCall) -> web.Response:
        """206 while processing, 200 once done (docs.joinmastodon.org, "GET /api/v1/media/:id")."""
        media = self.media.get(call.params["id"])
        if media is None or media.status_id is not None:  # only the uploader's unattached media
            return _error(404, "Record not found")
        return web.json_response(self._media_entity(media), status=200 if media.ready_at <= time.monotonic() else 206)

    def _delete_status(self, call: MastodonCall) -> web.Response:
        status = self._find(call.params["id"])
        if status is None:
            return _error(404, "Record not found")
        self.statuses.remove(status)
        self.deleted.append(status)
        return web.json_response({**self.render(status), "text": status.text})  # source text, for redraft

    def _account_statuses(self, call: MastodonCall) -> web.Response:
        """Newest first; anonymous readers only see public and unlisted statuses."""
        if call.params["id"] != self.account_id:
            return _error(404, "Record not found")
        anonymous = "Authorization" not in call.headers
        limit = min(int(call.params.get("limit") or _TIMELINE_LIMIT), _TIMELINE_MAX)
        since_id = int(call.params.get("since_id") or 0)
        max_id = int(call.params.get("max_id") or 0)
        selected = [
            status
            for status in reversed(self.statuses)
            if int(status.id) > since_id
            and (not max_id or int(status.id) < max_id)
            and not (anonymous and status.visibility in ("private", "direct"))
        ][:limit]
        return web.json_response([self.render(status) for status in selected])
