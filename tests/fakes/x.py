"""Loopback stand-in for the X (Twitter) API v2 with real OAuth 1.0a checks, recording and faults."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from relay.twitter_text import parse_tweet

from .faults import Fault
from .oauth1 import OAuth1Credentials, verify
from .oauth2 import AuthorizationServer, Dialect
from .server import LoopbackServer

Payload = dict[str, Any]

MAX_WEIGHTED_LENGTH = 280
_FIRST_TWEET_ID = 1_860_000_000_000_000_001
_PROBLEM = "application/problem+json"
_TIMELINE_PARAMS = frozenset({"max_results", "start_time", "end_time", "since_id", "tweet.fields"})
_DEFAULT_FIELDS = frozenset({"id", "text", "edit_history_tweet_ids"})
_OPTIONAL_FIELDS = frozenset(
    {
        "created_at",
        "author_id",
        "conversation_id",
        "in_reply_to_user_id",
        "referenced_tweets",
        "reply_settings",
    }
)


# docs.x.com, "OAuth 2.0 Authorization Code Flow with PKCE": a confidential client authenticates with Basic,
# PKCE is required, `offline.access` brings a refresh token (single use: each refresh gives a new one), access
# tokens last two hours, `POST /2/oauth2/revoke`.
SIGN_IN = Dialect(
    authorize="/i/oauth2/authorize",
    token="/2/oauth2/token",
    revoke="/2/oauth2/revoke",
    basic_auth=True,
    pkce=True,
    refresh_scope="offline.access",
    lifetime=7200.0,
)
# The scopes each endpoint needs from an OAuth 2.0 user token (docs.x.com, each endpoint's reference).
USER_SCOPES = {
    "POST /2/tweets": {"tweet.read", "tweet.write", "users.read"},
    "DELETE /2/tweets/{id}": {"tweet.read", "tweet.write", "users.read"},
    "GET /2/users/me": {"tweet.read", "users.read"},
    "GET /2/users/{id}/tweets": {"tweet.read", "users.read"},
}


def format_time(moment: datetime) -> str:
    """X's timestamp format: UTC, second precision, literal `.000Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Tweet:
    """A stored tweet of the fake account."""

    id: str
    text: str
    created_at: datetime
    author_id: str
    conversation_id: str
    in_reply_to_id: str | None = None
    in_reply_to_user_id: str | None = None
    reply_settings: str | None = None
    media: list[Media] = field(default_factory=list)

    def render(self, fields: Collection[str]) -> Payload:
        """The tweet object X returns when asked for `fields` (defaults always included)."""
        replied_to = [{"type": "replied_to", "id": self.in_reply_to_id}] if self.in_reply_to_id else None
        optional = {
            "created_at": format_time(self.created_at),
            "author_id": self.author_id,
            "conversation_id": self.conversation_id,
            "in_reply_to_user_id": self.in_reply_to_user_id,
            "referenced_tweets": replied_to,
            "reply_settings": self.reply_settings or "everyone",
        }
        data: Payload = {
            "id": self.id,
            "text": self.text,
            "edit_history_tweet_ids": [self.id],
        }
        data.update({key: value for key, value in optional.items() if key in fields and value is not None})
        return data


@dataclass
class XCall:
    """One request as received: `params` merges path, query and JSON-object body (what predicates see)."""

    endpoint: str
    path: str
    params: dict[str, Any]
    json: Any
    headers: Mapping[str, str] = field(repr=False)
    authorized: bool
    fault: Fault | None = None
    user: Mapping[str, str] | None = None  # who an OAuth 2.0 user token speaks for; None: the OAuth 1.0a account
    at: float = field(default_factory=time.monotonic, repr=False)  # when it arrived
    wall: float = field(default_factory=time.time, repr=False)  # the same, on the clock X's reset uses
    media: bytes | None = field(default=None, repr=False)  # a multipart upload's `media` part


# Media upload (docs.x.com, "Media": 5 MB an image, JPEG/PNG/GIF/WebP, 4 on a post; alt text up to 1,000
# characters; APPEND chunks of at most 5 MB).
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_CHUNK = 5 * 1024 * 1024
MAX_MEDIA = 4
MAX_ALT = 1000


@dataclass
class Media:
    """An upload session, then a media object a post can refer to until it expires."""

    id: str
    media_type: str
    total_bytes: int
    expires_at: float  # monotonic
    chunks: dict[int, bytes] = field(default_factory=dict, repr=False)
    finalized: bool = False
    ready_at: float = 0.0  # monotonic: processing is done from then on
    alt: str | None = None

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks[i] for i in sorted(self.chunks))


def _problem(status: int, title: str, detail: str, type_: str = "about:blank", **extra: Any) -> web.Response:
    body = {"title": title, "detail": detail, "type": type_, "status": status, **extra}
    return web.json_response(body, status=status, content_type=_PROBLEM)


def _invalid(message: str) -> web.Response:
    """X's 400 for bad parameters (which has no `status` member)."""
    body = {
        "errors": [{"message": message}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }
    return web.json_response(body, status=400, content_type=_PROBLEM)


def _forbidden(detail: str) -> web.Response:
    return _problem(403, "Forbidden", detail)


def _parse_time(name: str, value: str | None) -> datetime | None:
    """X timestamps must be ISO 8601 with a zone; anything else is a 400."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"The `{name}` query parameter value [{value}] is not a valid RFC3339 date-time")
    return moment


async def _read_json(request: web.Request) -> Any:
    """Parsed JSON body, or None when absent, not JSON-typed or malformed (X then answers 400)."""
    if request.content_type != "application/json" or not request.body_exists:
        return None
    try:
        return json.loads(await request.text())
    except ValueError:
        return None


class FakeX(LoopbackServer[XCall]):
    """X API v2 on loopback for one account; the bot calls `{x.api_url}/2/tweets` etc."""

    def __init__(
        self,
        consumer_key: str = "x-key",
        consumer_secret: str = "x-secret",
        access_token: str = "x-token",
        access_token_secret: str = "x-token-secret",
        *,
        user_id: str = "1500000000000000001",
        username: str = "relaybot",
        name: str = "Relay Bot",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__()
        self.credentials = OAuth1Credentials(consumer_key, consumer_secret, access_token, access_token_secret)
        self.user_id = user_id
        self.username = username
        self.name = name
        self.tweets: list[Tweet] = []
        self.deleted: list[Tweet] = []
        self.timeline_forbidden = False
        self._clock = clock
        self._next_id = _FIRST_TWEET_ID
        self.sign_in = AuthorizationServer(self.app, SIGN_IN)
        routes: dict[tuple[str, str], Callable[[XCall], web.Response]] = {
            ("POST", "/2/tweets"): self._create_tweet,
            ("DELETE", "/2/tweets/{id}"): self._delete_tweet,
            ("GET", "/2/users/me"): self._me,
            ("GET", "/2/users/{id}/tweets"): self._timeline,
            ("POST", "/2/media/upload"): self._upload,
            ("GET", "/2/media/upload"): self._upload_status,
            ("POST", "/2/media/metadata"): self._metadata,
        }
        self.media: dict[str, Media] = {}
        self.processing_delay = 0.2  # seconds a finalized upload is "in_progress"
        self.media_ttl = 24 * 3600.0  # an image's media id expires (FINALIZE's `expires_after_secs`)
        for (method, path), handler in routes.items():
            self.app.router.add_route(method, path, self._endpoint(f"{method} {path}", handler))

    @property
    def api_url(self) -> str:
        """Base URL without trailing slash, e.g. `http://127.0.0.1:PORT`."""
        return self.origin

    def calls_to(self, endpoint: str) -> list[XCall]:
        """Recorded calls of one endpoint, e.g. "POST /2/tweets"."""
        return [call for call in self.calls if call.endpoint == endpoint]

    def add_tweet(
        self,
        text: str,
        *,
        in_reply_to: str | None = None,
        created_at: datetime | None = None,
        reply_settings: str | None = None,
    ) -> Tweet:
        """Store a tweet as POST /2/tweets would; tests use it to seed the timeline."""
        parent = self._find(in_reply_to) if in_reply_to else None
        if in_reply_to and parent is None:
            raise ValueError(f"no stored tweet {in_reply_to} to reply to")
        tweet_id = str(self._next_id)
        self._next_id += 1
        tweet = Tweet(
            id=tweet_id,
            text=text,
            created_at=(created_at or self._clock()).astimezone(UTC).replace(microsecond=0),
            author_id=self.user_id,
            conversation_id=parent.conversation_id if parent else tweet_id,
            in_reply_to_id=in_reply_to,
            in_reply_to_user_id=parent.author_id if parent else None,
            reply_settings=reply_settings,
        )
        self.tweets.append(tweet)
        return tweet

    @staticmethod
    def rate_limited(reset_in: float = 1, limit: int = 50) -> Fault:
        """A 429 shaped like X's, with the reset epoch computed now (rounded up: it is whole seconds)."""
        headers = {
            "x-rate-limit-limit": str(limit),
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(math.ceil(time.time() + reset_in)),
        }
        body = {
            "title": "Too Many Requests",
            "detail": "Too Many Requests",
            "type": "about:blank",
            "status": 429,
        }
        return Fault.status(429, body, headers)

    def rate_limited_for(self, seconds: float) -> Fault:
        return self.rate_limited(seconds)

    def _endpoint(
        self, endpoint: str, handler: Callable[[XCall], web.Response]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Wrap a handler with parsing, OAuth verification, recording and fault injection."""

        async def serve(request: web.Request) -> web.StreamResponse:
            body = await _read_json(request)
            form = await request.text() if request.content_type == "application/x-www-form-urlencoded" else None
            multipart: dict[str, Any] = {}
            if request.content_type == "multipart/form-data":
                multipart = dict(await request.post())
            media = multipart.pop("media", None)
            params = {
                **request.query,
                **(body if isinstance(body, dict) else {}),
                **{key: value for key, value in multipart.items() if isinstance(value, str)},
                **request.match_info,
            }
            authorized = verify(
                self.credentials,
                request.method,
                str(request.url),
                request.rel_url.raw_query_string,
                request.headers.get("Authorization"),
                form,
            )
            issued = self.sign_in.bearer(request.headers.get("Authorization"))
            if issued is not None and USER_SCOPES[endpoint] <= issued.scopes:
                authorized = True
            fault = self._fault_for(endpoint, params)
            user = issued.user if authorized and issued is not None else None
            call = XCall(endpoint, request.path, params, body, request.headers, authorized, fault, user=user)
            call.media = media.file.read() if isinstance(media, web.FileField) else None

            async def apply() -> web.StreamResponse:
                if not authorized:
                    return _problem(401, "Unauthorized", "Unauthorized")
                return handler(call)

            return await self._serve(request, call, fault, apply)

        return serve

    def _find(self, tweet_id: str) -> Tweet | None:
        return next((tweet for tweet in self.tweets if tweet.id == tweet_id), None)

    def _me(self, call: XCall) -> web.Response:
        if call.user is not None:
            return web.json_response({"data": dict(call.user)})
        return web.json_response({"data": {"id": self.user_id, "name": self.name, "username": self.username}})

    def _create_tweet(self, call: XCall) -> web.Response:
        body = call.json
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return _invalid("The request body must be a JSON object with a string `text`.")
        text: str = body["text"]
        parsed = parse_tweet(text)  # twitter-text 3.1.0, as X counts; held to the npm package by the tests
        if parsed.weighted_length > MAX_WEIGHTED_LENGTH:
            return _forbidden("Your Tweet text is too long.")
        if not parsed.valid:
            return _invalid(f"Tweet text is not valid: {text!r}")
        reply = body.get("reply")
        parent_id = str(reply["in_reply_to_tweet_id"]) if isinstance(reply, dict) else None
        if parent_id is not None and self._find(parent_id) is None:
            return _invalid(f"The `reply.in_reply_to_tweet_id` [{parent_id}] does not exist.")
        author = call.user["id"] if call.user is not None else self.user_id
        if any(tweet.text == text and tweet.author_id == author for tweet in self.tweets):  # per account
            return _forbidden("You are not allowed to create a Tweet with duplicate content.")
        media_ids = [str(i) for i in (body.get("media") or {}).get("media_ids") or []]
        if len(media_ids) > MAX_MEDIA:
            return _invalid(f"Your media IDs are invalid: at most {MAX_MEDIA} images on a post.")
        now = time.monotonic()
        media = [self.media.get(i) for i in media_ids]
        attached = [m for m in media if m is not None and m.finalized and m.expires_at > now]
        if len(attached) != len(media_ids):
            return _invalid("Your media IDs are invalid.")
        if any(m.ready_at > now for m in attached):
            return _invalid("Your media is still processing.")
        tweet = self.add_tweet(text, in_reply_to=parent_id, reply_settings=body.get("reply_settings"))
        tweet.media = attached
        if call.user is not None:
            tweet.author_id = call.user["id"]
        return web.json_response({"data": tweet.render(_DEFAULT_FIELDS)}, status=201)

    def _delete_tweet(self, call: XCall) -> web.Response:
        tweet = self._find(call.params["id"])
        if tweet is None:
            return _problem(
                404,
                "Not Found Error",
                f"Could not find tweet with id: [{call.params['id']}].",
                "https://api.twitter.com/2/problems/resource-not-found",
            )
        self.tweets.remove(tweet)
        self.deleted.append(tweet)
        return web.json_response({"data": {"deleted": True}})

    def _timeline(self, call: XCall) -> web.Response:
        if self.timeline_forbidden:
            return _problem(
                403,
                "Client Forbidden",
                "This endpoint is not available at your current API access level.",
                "https://api.twitter.com/2/problems/client-forbidden",
                reason="client-not-enrolled",
                required_enrollment="Appropriate Level of API Access",
            )
        query = {key: value for key, value in call.params.items() if key != "id"}
        if unknown := sorted(set(query) - _TIMELINE_PARAMS):
            return _invalid(f"The query parameters {unknown} are not supported (by X or by this fake).")
        fields = set(filter(None, str(query.get("tweet.fields", "")).split(",")))
        if unknown := sorted(fields - _OPTIONAL_FIELDS - _DEFAULT_FIELDS):
            return _invalid(f"The `tweet.fields` values {unknown} are not supported (by X or by this fake).")
        try:
            max_results = int(query.get("max_results", 10))
            start = _parse_time("start_time", query.get("start_time"))
            end = _parse_time("end_time", query.get("end_time"))
            since_id = int(query.get("since_id", 0))
        except ValueError as error:
            return _invalid(str(error))
        if not 5 <= max_results <= 100:
            return _invalid(f"The `max_results` query parameter value [{max_results}] is not between 5 and 100")
        selected = [
            tweet
            for tweet in reversed(self.tweets)
            if call.params["id"] == tweet.author_id
            and (start is None or tweet.created_at >= start)
            and (end is None or tweet.created_at < end)
            and int(tweet.id) > since_id
        ][:max_results]
        meta: Payload = {"result_count": len(selected)}
        if not selected:
            return web.json_response({"meta": meta})
        meta.update(newest_id=selected[0].id, oldest_id=selected[-1].id)
        return web.json_response(
            {
                "data": [tweet.render(_DEFAULT_FIELDS | fields) for tweet in selected],
                "meta": meta,
            }
        )

    def _upload(self, call: XCall) -> web.Response:
        """The chunked upload's commands, each refused as X refuses it."""
        command = call.params.get("command")
        now = time.monotonic()
        if command == "INIT":
            media_type, total = call.params.get("media_type", ""), int(call.params.get("total_bytes") or 0)
            if media_type not in IMAGE_TYPES:
                return _invalid(f"media_type {media_type!r} is not supported for tweet_image.")
            if call.params.get("media_category") != "tweet_image":
                return _invalid("media_category must be tweet_image for an image.")
            if total > MAX_IMAGE_BYTES:
                return _invalid(f"File size exceeds {MAX_IMAGE_BYTES} bytes.")
            media = Media(str(self._next_id), media_type, total, now + self.media_ttl)
            self._next_id += 1
            self.media[media.id] = media
            return web.json_response({"data": {"id": media.id, "expires_after_secs": int(self.media_ttl)}})
        media = self.media.get(str(call.params.get("media_id")))
        if media is None or media.expires_at <= now:
            return _invalid("Invalid media_id.")
        if command == "APPEND":
            if call.media is None or len(call.media) > MAX_CHUNK or media.finalized:
                return _invalid("APPEND needs a `media` part of at most 5 MB, before FINALIZE.")
            media.chunks[int(call.params.get("segment_index") or 0)] = call.media
            return web.Response(status=204)
        if command == "FINALIZE":
            if len(media.data) != media.total_bytes:
                return _invalid(f"File size {len(media.data)} does not match total_bytes {media.total_bytes}.")
            media.finalized, media.ready_at = True, now + self.processing_delay
            return web.json_response({"data": {"id": media.id, "size": media.total_bytes, **self._processing(media)}})
        return _invalid(f"Unknown command {command!r}.")

    def _processing(self, media: Media) -> Payload:
        if media.ready_at <= time.monotonic():
            return {"processing_info": {"state": "succeeded", "progress_percent": 100}}
        return {"processing_info": {"state": "in_progress", "check_after_secs": 1, "progress_percent": 50}}

    def _upload_status(self, call: XCall) -> web.Response:
        media = self.media.get(str(call.params.get("media_id")))
        if call.params.get("command") != "STATUS" or media is None or not media.finalized:
            return _invalid("Invalid media_id.")
        return web.json_response({"data": {"id": media.id, **self._processing(media)}})

    def _metadata(self, call: XCall) -> web.Response:
        body = call.json if isinstance(call.json, dict) else {}
        media = self.media.get(str(body.get("id")))
        if media is None or not media.finalized:
            return _invalid("Invalid media id.")
        alt = str(((body.get("metadata") or {}).get("alt_text") or {}).get("text") or "")
        if len(alt) > MAX_ALT:
            return _invalid(f"alt_text.text must be at most {MAX_ALT} characters.")
        media.alt = alt
        return web.json_response({"data": {"id": media.id, "associated_metadata": {"alt_text": {"text": alt}}}})
