"""Loopback stand-in for Meta's Threads API (graph.threads.net/v1.0): one account, its containers and posts.

It refuses what Threads documents refusing (developers.facebook.com/docs/threads): a publish before the
container is FINISHED, an unknown, published or expired (24 h) container, a text over 500 characters by
Threads' count or with more than 5 distinct links, a `reply_control` Threads does not know, a reply to a
post that is not there, a missing or bad token, and the account's daily allowances (250 posts, 1,000
replies, 100 deletions in 24 hours). Every error is the Graph API's shape: `{"error": {"message", "type",
"code", "error_subcode", "fbtrace_id"}}`. A container takes `processing` seconds to become FINISHED, so the
bot's wait for it is exercised; calls are recorded and faults injected like the other fakes.

Images: an IMAGE container fetches its `image_url` when it is made, as Threads does ("we will cURL your
image"), from loopback only (no test reaches the internet), and ends in status ERROR where Threads could
not use it: not fetched, not JPEG or PNG (by its bytes), over 8 MB, or alt text over 1,000 characters. An
image container stays IN_PROGRESS for its first `image_polls` status reads, as images take longer. A
CAROUSEL takes 2 to 20 FINISHED item containers (`is_carousel_item`).
"""

from __future__ import annotations

import inspect
import io
import itertools
import secrets
import string
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import PIL.Image
from aiohttp import web
from yarl import URL

from relay import threads_text

from .faults import Fault
from .server import LoopbackServer
from .threads_sign_in import ThreadsSignIn

Payload = dict[str, Any]

MAX_CHARACTERS = 500
MAX_LINKS = 5
REPLY_CONTROLS = ("everyone", "accounts_you_follow", "mentioned_only", "parent_post_author_only", "followers_only")
MEDIA_TYPES = ("TEXT", "IMAGE", "VIDEO", "CAROUSEL")
CONTAINER_LIFETIME = timedelta(hours=24)  # docs/threads/troubleshooting: EXPIRED, "not published within 24 hours"
DAY = timedelta(hours=24)
POSTS_A_DAY, REPLIES_A_DAY, DELETES_A_DAY = 250, 1000, 100
IMAGE_MAX_BYTES = 8 * 1024 * 1024  # docs/threads/posts, "Image specifications"
IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}
ALT_MAX = 1000
CAROUSEL_ITEMS = (2, 20)


@dataclass
class FetchedImage:
    """An image as Threads fetched it for a container."""

    url: str
    alt: str
    data: bytes = field(repr=False)
    mime: str


@dataclass
class ThreadsPost:
    """A published post (or reply) of the account."""

    id: str
    text: str
    reply_to: str | None
    reply_control: str
    container: str
    shortcode: str
    timestamp: datetime
    images: list[FetchedImage] = field(default_factory=list)


@dataclass
class Container:
    id: str
    text: str
    reply_to: str | None
    reply_control: str
    created: datetime
    ready_at: float  # monotonic time it becomes FINISHED
    published: str | None = None  # the post it became
    media_type: str = "TEXT"
    images: list[FetchedImage] = field(default_factory=list)
    carousel_item: bool = False
    error: str | None = None  # why Threads could not use it (status ERROR)
    polls_left: int = 0  # status reads still answered IN_PROGRESS


@dataclass
class ThreadsCall:
    """One request as received: `params` merges query, form and path (what predicates see)."""

    endpoint: str
    path: str
    params: dict[str, Any]
    headers: Mapping[str, str] = field(repr=False)
    fault: Fault | None = None
    at: float = field(default_factory=time.monotonic, repr=False)


def error_body(
    message: str, code: int, subcode: int | None = None, kind: str = "OAuthException", **more: Any
) -> Payload:
    """The Graph API's error object."""
    error: Payload = {"message": message, "type": kind, "code": code, **more, "fbtrace_id": secrets.token_urlsafe(8)}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def graph_error(message: str, code: int, subcode: int | None = None, kind: str = "OAuthException") -> web.Response:
    """The Graph API's error answer (HTTP 400, as Graph answers its errors)."""
    return web.json_response(error_body(message, code, subcode, kind), status=400)


def _unknown(object_id: str) -> web.Response:
    return graph_error(
        f"Unsupported request - method type: get. Object with ID '{object_id}' does not exist, cannot be loaded "
        "due to missing permissions, or does not support this operation.",
        100,
        33,
        kind="GraphMethodException",
    )


def _format_time(moment: datetime) -> str:
    """Graph timestamps: `2026-11-30T15:04:05+0000`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


class FakeThreads(LoopbackServer[ThreadsCall]):
    """One Threads account; the bot calls `{threads.api_url}/me/threads` etc."""

    def __init__(
        self,
        token: str = "threads-token",
        *,
        user_id: str = "17841400000000001",
        username: str = "relaycompany",
        processing: float = 0.0,
        image_polls: int = 2,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sign_in: bool = False,
    ) -> None:
        super().__init__()
        self.token = token
        # With `sign_in`, the account is a person's who connects it through Meta's sign-in (mounted here, on
        # the same host as the API, as graph.threads.net serves both): their long-lived token works too.
        self.exchanges: list[str] = []
        self.tokens = ThreadsSignIn(self.app, self.exchanges) if sign_in else None
        self.user_id = user_id
        self.username = username
        self.processing = processing  # seconds a new container stays IN_PROGRESS
        self.image_polls = image_polls
        self.token_expired = False
        self.posts: list[ThreadsPost] = []
        self.deleted: list[ThreadsPost] = []
        self.containers: dict[str, Container] = {}
        self.published_at: list[tuple[datetime, bool]] = []  # (when, is a reply): what the allowance counts
        self.deleted_at: list[datetime] = []
        self._clock = clock
        self._ids = itertools.count(18_000_000_000_000_001)
        routes: list[tuple[str, str, Callable[[ThreadsCall], web.Response | Awaitable[web.Response]]]] = [
            ("GET", "/v1.0/{user}", self._user),
            ("POST", "/v1.0/{user}/threads", self._create),
            ("POST", "/v1.0/{user}/threads_publish", self._publish),
            ("GET", "/v1.0/{user}/threads", self._list_threads),
            ("GET", "/v1.0/{user}/replies", self._list_replies),
            ("GET", "/v1.0/{user}/threads_publishing_limit", self._publishing_limit),
            ("DELETE", "/v1.0/{user}", self._delete),
        ]
        for method, path, handler in routes:
            endpoint = f"{method} {path.removeprefix('/v1.0').replace('{user}', ':id')}"
            self.app.router.add_route(method, path, self._endpoint(endpoint, handler))

    @property
    def api_url(self) -> str:
        """What THREADS_API_URL is set to: `http://127.0.0.1:PORT/v1.0`."""
        return f"{self.origin}/v1.0"

    def calls_to(self, endpoint: str) -> list[ThreadsCall]:
        """Recorded calls of one endpoint, e.g. "POST /:id/threads_publish"."""
        return [call for call in self.calls if call.endpoint == endpoint]

    def permalink(self, post: ThreadsPost) -> str:
        return f"https://www.threads.net/@{self.username}/post/{post.shortcode}"

    def use_allowance(self, posts: int = 0, replies: int = 0, deletes: int = 0) -> None:
        """Count posts, replies or deletions made elsewhere today (another app, the account's owner)."""
        now = self._clock()
        self.published_at += [(now, False)] * posts + [(now, True)] * replies
        self.deleted_at += [now] * deletes

    def expire(self, container_id: str) -> None:
        """Age a container past its 24 hours."""
        self.containers[container_id].created -= CONTAINER_LIFETIME

    def rate_limited_for(self, seconds: float) -> Fault:
        """Graph's throttling answer (code 4); Meta sends no reset time, so none here either."""
        return Fault.status(400, error_body("Application request limit reached", 4, is_transient=True))

    @staticmethod
    def token_error(expired: bool = False) -> Fault:
        """The answer to a token Threads no longer takes."""
        if expired:
            message = "Error validating access token: Session has expired on Sunday, 30-Nov-26 15:00:00 PST."
            return Fault.status(400, error_body(message, 190, 463))
        return Fault.status(400, error_body("Invalid OAuth access token.", 190))

    # ---- plumbing ----------------------------------------------------------------------------------------

    def _endpoint(
        self, endpoint: str, handler: Callable[[ThreadsCall], web.Response | Awaitable[web.Response]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            params: dict[str, Any] = dict(request.query)
            if request.method == "POST" and request.content_type in (
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            ):
                form = await request.post()
                params.update((key, value) for key, value in form.items() if isinstance(value, str))
            params.update(request.match_info)
            fault = self._fault_for(endpoint, params)
            call = ThreadsCall(endpoint, request.path, params, request.headers, fault)

            async def apply() -> web.StreamResponse:
                if refused := self._refused(call):
                    return refused
                answer = handler(call)
                return await answer if inspect.isawaitable(answer) else answer

            return await self._serve(request, call, fault, apply)

        return serve

    def _refused(self, call: ThreadsCall) -> web.Response | None:
        """Graph's token checks: the `access_token` parameter, or an `Authorization: Bearer` header."""
        header = call.headers.get("Authorization", "")
        token = call.params.get("access_token") or (header[7:] if header.startswith("Bearer ") else None)
        if not token:
            return graph_error("An active access token must be used to query information about the current user.", 2500)
        person = self.tokens.person(token) if self.tokens is not None else None
        if token != self.token and (person is None or person.get("id") != self.user_id):
            return graph_error("Invalid OAuth access token - Cannot parse access token", 190)
        if self.token_expired:
            return self.token_error(expired=True).response()
        if call.params["user"] not in ("me", self.user_id) and call.endpoint not in ("GET /:id", "DELETE /:id"):
            return _unknown(call.params["user"])
        return None

    def _post(self, post_id: str) -> ThreadsPost | None:
        return next((post for post in self.posts if post.id == post_id), None)

    def _within_day(self, moments: list[datetime]) -> int:
        since = self._clock() - DAY
        return sum(moment > since for moment in moments)

    def _used(self, replies: bool) -> int:
        return self._within_day([when for when, is_reply in self.published_at if is_reply == replies])

    def _state(self, container: Container) -> str:
        if container.published:
            return "PUBLISHED"
        if container.error:
            return "ERROR"
        if self._clock() - container.created >= CONTAINER_LIFETIME:
            return "EXPIRED"
        return "FINISHED" if time.monotonic() >= container.ready_at else "IN_PROGRESS"

    def _render(self, post: ThreadsPost, fields: list[str]) -> Payload:
        everything = {
            "id": post.id,
            "media_product_type": "THREADS",
            "media_type": {0: "TEXT_POST", 1: "IMAGE"}.get(len(post.images), "CAROUSEL_ALBUM"),
            "text": post.text,
            "permalink": self.permalink(post),
            "timestamp": _format_time(post.timestamp),
            "username": self.username,
            "shortcode": post.shortcode,
            "is_reply": post.reply_to is not None,
            "reply_audience": post.reply_control.upper(),
        }
        if post.reply_to is not None:
            everything["replied_to"] = {"id": post.reply_to}
            everything["root_post"] = {"id": self._root(post).id}
        return {name: everything[name] for name in ["id", *fields] if name in everything}

    def _root(self, post: ThreadsPost) -> ThreadsPost:
        while post.reply_to is not None and (parent := self._post(post.reply_to)) is not None:
            post = parent
        return post

    # ---- endpoints ---------------------------------------------------------------------------------------

    def _user(self, call: ThreadsCall) -> web.Response:
        """GET /me, a container's status, or a post's fields."""
        target, fields = call.params["user"], str(call.params.get("fields") or "").split(",")
        if target in ("me", self.user_id):
            return web.json_response({"id": self.user_id, "username": self.username})
        if (container := self.containers.get(target)) is not None:
            answer: Payload = {"id": container.id, "status": self._state(container)}
            if answer["status"] in ("FINISHED", "IN_PROGRESS") and container.polls_left > 0:
                container.polls_left -= 1
                answer["status"] = "IN_PROGRESS"
            if "error_message" in fields and answer["status"] == "EXPIRED":
                answer["error_message"] = "EXPIRED"
            if "error_message" in fields and answer["status"] == "ERROR":
                answer["error_message"] = container.error
            return web.json_response({k: v for k, v in answer.items() if k == "id" or k in fields})
        if (post := self._post(target)) is not None:
            return web.json_response(self._render(post, fields))
        return _unknown(target)

    async def _create(self, call: ThreadsCall) -> web.Response:
        params = call.params
        media_type = str(params.get("media_type") or "")
        if media_type not in MEDIA_TYPES:
            return graph_error(f"Param media_type must be one of {{{', '.join(MEDIA_TYPES)}}}", 100)
        if media_type == "VIDEO":
            return graph_error("This fake makes no video posts", 100)
        text = str(params.get("text") or "")
        if media_type == "TEXT" and not text.strip():
            return graph_error("Param text is required for media_type TEXT", 100)
        images: list[FetchedImage] = []
        error = None
        if media_type == "IMAGE":
            if not params.get("image_url"):
                return graph_error("Param image_url is required for media_type IMAGE", 100)
            alt = str(params.get("alt_text") or "")
            if len(alt) > ALT_MAX:
                return graph_error(f"Param alt_text must be at most {ALT_MAX} characters long.", 100)
            fetched = await self._fetch(str(params["image_url"]), alt)
            if isinstance(fetched, str):
                error = fetched
            else:
                images.append(fetched)
        if media_type == "CAROUSEL":
            children = [self.containers.get(c) for c in str(params.get("children") or "").split(",") if c]
            if not CAROUSEL_ITEMS[0] <= len(children) <= CAROUSEL_ITEMS[1]:
                return graph_error(f"Param children must name {CAROUSEL_ITEMS[0]} to {CAROUSEL_ITEMS[1]} items", 100)
            for child in children:
                if child is None or not child.carousel_item or self._state(child) != "FINISHED":
                    return graph_error("Param children must be FINISHED carousel item containers", 100)
                images += child.images
        carousel_item = str(params.get("is_carousel_item") or "").lower() == "true"
        if threads_text.length(text) > MAX_CHARACTERS:
            return graph_error(f"Param text must be at most {MAX_CHARACTERS} characters long.", 100)
        if threads_text.distinct_links(text) > MAX_LINKS:
            return graph_error("THREADS_API__LINK_LIMIT_EXCEEDED: a post may contain at most 5 links.", 100, 4279032)
        control = str(params.get("reply_control") or "everyone")
        if control not in REPLY_CONTROLS:
            return graph_error(f"Param reply_control must be one of {{{', '.join(REPLY_CONTROLS)}}}", 100)
        reply_to = params.get("reply_to_id")
        if reply_to is not None and self._post(str(reply_to)) is None:
            return _unknown(str(reply_to))
        container = Container(
            id=str(next(self._ids)),
            text=text,
            reply_to=str(reply_to) if reply_to is not None else None,
            reply_control=control,
            created=self._clock(),
            ready_at=time.monotonic() + self.processing,
            media_type=media_type,
            images=images,
            carousel_item=carousel_item,
            error=error,
            polls_left=self.image_polls if media_type == "IMAGE" else 0,
        )
        self.containers[container.id] = container
        return web.json_response({"id": container.id})

    async def _fetch(self, url: str, alt: str) -> FetchedImage | str:
        """The image at `url` as Threads would fetch it, or why it could not be used."""
        if URL(url).host not in ("127.0.0.1", "localhost", "::1"):
            return "the fake fetches from loopback only"
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
                http.get(url) as answer,
            ):
                data = await answer.read()
                status = answer.status
        except aiohttp.ClientError as error:
            return f"Media download has failed: {type(error).__name__}"
        if status != 200:
            return f"Media download has failed: the server answered {status}"
        if len(data) > IMAGE_MAX_BYTES:
            return f"The image is {len(data):,} bytes, over the 8 MB limit"
        try:
            with PIL.Image.open(io.BytesIO(data)) as opened:
                kind = opened.format or ""
        except (OSError, PIL.UnidentifiedImageError):
            kind = ""
        if kind not in IMAGE_FORMATS:
            return "The image format is not supported: JPEG or PNG only"
        return FetchedImage(url, alt, data, IMAGE_FORMATS[kind])

    def _publish(self, call: ThreadsCall) -> web.Response:
        creation_id = str(call.params.get("creation_id") or "")
        container = self.containers.get(creation_id)
        if container is None:
            return graph_error("The requested resource does not exist", 24, 4279009)
        if container.carousel_item:
            return graph_error("A carousel item is published within its CAROUSEL container", 100)
        state = self._state(container)
        if state == "EXPIRED":
            return graph_error("The media container has expired: it was not published within 24 hours", 24, 4279009)
        if state == "PUBLISHED":
            return graph_error("The media container has already been published", 100, 4279010)
        if state == "IN_PROGRESS" or container.polls_left > 0:
            return graph_error("The media is not ready for publishing, please wait for a moment", 9007, 2207027)
        if state == "ERROR":
            return graph_error(f"The media could not be processed: {container.error}", 100, 2207052)
        reply = container.reply_to is not None
        if reply and self._post(container.reply_to or "") is None:
            return _unknown(container.reply_to or "")
        if reply and self._used(True) >= REPLIES_A_DAY:
            return graph_error("You have reached the maximum number of replies allowed in 24 hours", 9, 2207042)
        if not reply and self._used(False) >= POSTS_A_DAY:
            return graph_error("You have reached the maximum number of posts allowed in 24 hours", 9, 2207042)
        now = self._clock()
        post = ThreadsPost(
            id=str(next(self._ids)),
            text=container.text,
            reply_to=container.reply_to,
            reply_control=container.reply_control,
            container=container.id,
            shortcode="".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(11)),
            timestamp=now,
            images=container.images,
        )
        self.posts.append(post)
        container.published = post.id
        self.published_at.append((now, reply))
        return web.json_response({"id": post.id})

    def _listing(self, call: ThreadsCall, replies: bool) -> web.Response:
        fields = str(call.params.get("fields") or "").split(",")
        since = float(call.params.get("since") or 0)
        limit = min(int(call.params.get("limit") or 25), 100)
        chosen = [
            post
            for post in reversed(self.posts)
            if (post.reply_to is not None) == replies and post.timestamp.timestamp() >= since
        ][:limit]
        return web.json_response({"data": [self._render(post, fields) for post in chosen], "paging": {}})

    def _list_threads(self, call: ThreadsCall) -> web.Response:
        return self._listing(call, replies=False)

    def _list_replies(self, call: ThreadsCall) -> web.Response:
        return self._listing(call, replies=True)

    def _publishing_limit(self, call: ThreadsCall) -> web.Response:
        fields = str(call.params.get("fields") or "quota_usage,config").split(",")
        duration = int(DAY.total_seconds())
        usage: Payload = {
            "quota_usage": self._used(False),
            "config": {"quota_total": POSTS_A_DAY, "quota_duration": duration},
            "reply_quota_usage": self._used(True),
            "reply_config": {"quota_total": REPLIES_A_DAY, "quota_duration": duration},
            "delete_quota_usage": self._within_day(self.deleted_at),
            "delete_config": {"quota_total": DELETES_A_DAY, "quota_duration": duration},
        }
        return web.json_response({"data": [{k: v for k, v in usage.items() if k in fields}]})

    def _delete(self, call: ThreadsCall) -> web.Response:
        post = self._post(call.params["user"])
        if post is None:
            return _unknown(call.params["user"])
        if self._within_day(self.deleted_at) >= DELETES_A_DAY:
            return graph_error("You have reached the maximum number of deletions allowed in 24 hours", 9, 2207042)
        self.posts.remove(post)
        self.deleted.append(post)
        self.deleted_at.append(self._clock())
        return web.json_response({"success": True, "deleted_id": post.id})
