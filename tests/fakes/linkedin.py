"""Loopback stand-in for LinkedIn's versioned REST Posts API, plus closing comments through Social Metadata:
the headers, status codes and odd answers LinkedIn gives (empty 201s, duplicates naming the original,
silently garbled "little text"), recorded, with faults on demand."""

from __future__ import annotations

import copy
import itertools
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .faults import Fault
from .oauth2 import AuthorizationServer, Dialect, Issued
from .server import LoopbackServer

Payload = dict[str, Any]

ORGANIZATION = "urn:li:organization:2414183"
MAX_COMMENTARY = 3000
FEED_DISTRIBUTION: Payload = {
    "feedDistribution": "MAIN_FEED",
    "targetEntities": [],
    "thirdPartyDistributionChannels": [],
}
RESERVED = "|{}@[]()<>#\\*_~"  # little text's reserved characters: literal only after a backslash
_FIRST_SHARE_ID = 7_000_000_000_000_000_001
_REQUIRED_FIELDS = ("author", "commentary", "visibility", "distribution", "lifecycleState")
_ENUMS = {
    "visibility": ("PUBLIC", "CONNECTIONS", "LOGGED_IN", "CONTAINER"),
    "lifecycleState": ("PUBLISHED", "DRAFT"),
}
_COMMENTS_STATES = ("OPEN", "CLOSED")
_VERSION = re.compile(r"(\d{4})(\d{2})(?:\.\d{2})?")  # YYYYMM, or YYYYMM.RR for a patch release
_RESERVED_CLASS = "[" + re.escape(RESERVED) + "]"
# Little text, token by token: an escaped character, a mention, a hashtag template, or a bare reserved one.
_LITTLE_TEXT = re.compile(
    rf"\\(?P<escaped>{_RESERVED_CLASS})"
    r"|@\[(?P<name>[^\]]*)\]\(urn:li:(?:person|organization):[^)]+\)"
    r"|\{hashtag\|\\#\|(?P<tag>[^}]+)\}"
    rf"|(?P<reserved>{_RESERVED_CLASS})"
)


def read_little_text(commentary: str) -> tuple[str, bool]:
    """What members see of `commentary`, and whether it was garbled: LinkedIn cuts the text at the first
    reserved character that is neither escaped nor part of a mention or hashtag template."""
    shown, last = [], 0
    for match in _LITTLE_TEXT.finditer(commentary):
        shown.append(commentary[last : match.start()])
        if match["reserved"] is not None:
            return "".join(shown), True
        if match["escaped"] is not None:
            shown.append(match["escaped"])
        elif match["name"] is not None:
            shown.append(match["name"])
        else:
            shown.append(f"#{match['tag']}")
        last = match.end()
    shown.append(commentary[last:])
    return "".join(shown), False


def _error(status: int, message: str, code: str | None = None, service_code: int | None = None) -> web.Response:
    """LinkedIn's error body: `status` and `message`, with `code`/`serviceErrorCode` where LinkedIn sends them."""
    body: Payload = {"status": status}
    if service_code is not None:
        body["serviceErrorCode"] = service_code
    if code is not None:
        body["code"] = code
    body["message"] = message
    return web.json_response(body, status=status)


def _access_denied(resource_method: str, version: str) -> web.Response:
    """LinkedIn's 403 names the resource, the method and the version's first day."""
    message = f"Not enough permissions to access: {resource_method}.{version[:6]}01"
    return _error(403, message, "ACCESS_DENIED", 100)


@dataclass
class LinkedInPost:
    """A stored post; `shown` is what members read, which differs from `commentary` when `garbled`."""

    id: str
    author: str
    commentary: str
    visibility: str
    lifecycle_state: str
    distribution: Payload
    reshare_disabled: bool
    created_at: int  # epoch milliseconds
    comments_state: str = "OPEN"
    images: list[LinkedInImage] = field(default_factory=list)

    @property
    def shown(self) -> str:
        return read_little_text(self.commentary)[0]

    @property
    def garbled(self) -> bool:
        """An unescaped reserved character cut the text: the bot failed to escape it."""
        return read_little_text(self.commentary)[1]

    def render(self) -> Payload:
        """The post as GET /rest/posts returns it."""
        return {
            "id": self.id,
            "author": self.author,
            "commentary": self.commentary,
            "visibility": self.visibility,
            "lifecycleState": self.lifecycle_state,
            "distribution": self.distribution,
            "isReshareDisabledByAuthor": self.reshare_disabled,
            "createdAt": self.created_at,
            "publishedAt": self.created_at,
            "lastModifiedAt": self.created_at,
        }


# learn.microsoft.com/linkedin, "Authorization Code Flow (3-legged OAuth)": client credentials in the form, no
# PKCE for web apps, access tokens of 60 days, refresh tokens only for approved partners, no revoke endpoint.
SIGN_IN = Dialect(authorize="/oauth/v2/authorization", token="/oauth/v2/accessToken", lifetime=60 * 24 * 3600.0)


# Images API (learn.microsoft.com, "Images API"): JPG, GIF, PNG under 36,152,320 pixels; the upload URL
# expires (`uploadUrlExpiresAt`); a post takes one image (`content.media`) or 2 to 20 (`content.multiImage`);
# alt text at most 4,086 characters.
IMAGE_FORMATS = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG": "image/png", b"GIF8": "image/gif"}
MAX_ALT_TEXT = 4086
MAX_MULTI_IMAGE = 20


@dataclass
class LinkedInImage:
    """An image the page initialized: WAITING_UPLOAD until its bytes are PUT, AVAILABLE after."""

    urn: str
    owner: str
    upload_expires_at: float  # monotonic
    data: bytes | None = field(default=None, repr=False)
    alt: str | None = None

    @property
    def content_type(self) -> str | None:
        return next((t for magic, t in IMAGE_FORMATS.items() if self.data and self.data.startswith(magic)), None)


@dataclass
class LinkedInCall:
    """One request as received: `params` merges query, JSON-object body and the path's `urn`."""

    endpoint: str
    path: str
    params: dict[str, Any]
    json: Any
    headers: Mapping[str, str] = field(repr=False)
    fault: Fault | None = None
    member: Issued | None = None  # a member's own token (3-legged OAuth); None: the page's token
    at: float = field(default_factory=time.monotonic, repr=False)  # when it arrived
    wall: float = field(default_factory=time.time, repr=False)  # the same, on the wall clock


class FakeLinkedIn(LoopbackServer[LinkedInCall]):
    """One organization page on LinkedIn's REST API on loopback; the bot calls `{linkedin.url}/rest/posts`."""

    def __init__(
        self,
        token: str = "linkedin-token",
        *,
        organization: str = ORGANIZATION,
        min_version: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__()
        self.token = token
        self.organization = organization
        self.min_version = min_version  # YYYYMM: older versions are sunset (426)
        self.retired_versions: set[str] = {"202301"}
        self.token_expired = False
        self.posts: list[LinkedInPost] = []
        self.deleted: list[LinkedInPost] = []
        self._clock = clock
        self._ids = itertools.count(_FIRST_SHARE_ID)
        self.sign_in = AuthorizationServer(self.app, SIGN_IN)
        self.app.router.add_get("/v2/userinfo", self._userinfo)
        routes: list[tuple[str, str, str, Callable[[LinkedInCall], web.Response]]] = [
            ("POST", "/rest/posts", "POST /rest/posts", self._create_post),
            ("GET", "/rest/posts", "GET /rest/posts", self._find_posts),
            ("DELETE", "/rest/posts/{urn}", "DELETE /rest/posts", self._delete_post),
            ("POST", "/rest/socialMetadata/{urn}", "POST /rest/socialMetadata", self._set_social_metadata),
            ("POST", "/rest/images", "POST /rest/images", self._initialize_upload),
        ]
        for method, path, endpoint, handler in routes:
            self.app.router.add_route(method, path, self._endpoint(endpoint, handler))
        self.app.router.add_route("PUT", "/dms-uploads/{id}", self._upload)
        self.images: dict[str, LinkedInImage] = {}
        self.upload_url_ttl = 3600.0  # seconds an upload URL stays valid

    @property
    def url(self) -> str:
        """Base URL without trailing slash; the API lives under `{url}/rest/`."""
        return self.origin

    @property
    def garbled(self) -> list[LinkedInPost]:
        """Live posts whose text LinkedIn cut at an unescaped reserved character: `assert not linkedin.garbled`."""
        return [post for post in self.posts if post.garbled]

    def calls_to(self, endpoint: str) -> list[LinkedInCall]:
        """Recorded calls of one endpoint, e.g. "POST /rest/posts"."""
        return [call for call in self.calls if call.endpoint == endpoint]

    def post(self, urn: str) -> LinkedInPost | None:
        """The live post with this URN, if any."""
        return next((post for post in self.posts if post.id == urn), None)

    def add_post(
        self,
        commentary: str,
        *,
        visibility: str = "PUBLIC",
        lifecycle_state: str = "PUBLISHED",
        distribution: Payload | None = None,
        reshare_disabled: bool = False,
        author: str | None = None,
    ) -> LinkedInPost:
        """Store a post as POST /rest/posts would (no validation); tests seed the page with it."""
        post = LinkedInPost(
            id=f"urn:li:share:{next(self._ids)}",
            author=author or self.organization,
            commentary=commentary,
            visibility=visibility,
            lifecycle_state=lifecycle_state,
            distribution=distribution or copy.deepcopy(FEED_DISTRIBUTION),
            reshare_disabled=reshare_disabled,
            created_at=int(self._clock().timestamp() * 1000),
        )
        self.posts.append(post)
        return post

    @staticmethod
    def throttled() -> Fault:
        """LinkedIn's 429: no Retry-After, nor any other hint of when to come back."""
        body = {"status": 429, "message": "Resource level throttle limit for calls to this resource is reached."}
        return Fault.status(429, body)

    def rate_limited_for(self, seconds: float) -> Fault:
        return self.throttled()

    def _endpoint(
        self, endpoint: str, handler: Callable[[LinkedInCall], web.Response]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Wrap a handler with parsing, header checks, recording and fault injection."""

        async def serve(request: web.Request) -> web.StreamResponse:
            body = json.loads(await request.text()) if request.body_exists else None
            params = {**request.query, **(body if isinstance(body, dict) else {}), **request.match_info}
            fault = self._fault_for(endpoint, params)
            member = self.sign_in.bearer(request.headers.get("Authorization"))
            call = LinkedInCall(endpoint, request.path, params, body, request.headers, fault, member)

            async def apply() -> web.StreamResponse:
                return self._refused(request.headers, member) or handler(call)

            return await self._serve(request, call, fault, apply)

        return serve

    async def _userinfo(self, request: web.Request) -> web.Response:
        """OpenID Connect's userinfo: needs the `openid` and `profile` scopes."""
        member = self.sign_in.bearer(request.headers.get("Authorization"))
        if member is None or not {"openid", "profile"} <= member.scopes:
            return _error(401, "Invalid access token", "INVALID_ACCESS_TOKEN", 65600)
        return web.json_response(dict(member.user))

    def _author(self, call: LinkedInCall) -> str:
        """Whom the call's token may post as: the member who granted it, or the page."""
        return f"urn:li:person:{call.member.user['sub']}" if call.member is not None else self.organization

    def _refused(self, headers: Mapping[str, str], member: Issued | None = None) -> web.Response | None:
        """The checks every call goes through: token, then LinkedIn-Version, then the Rest.li protocol."""
        if headers.get("Authorization") != f"Bearer {self.token}" and member is None:
            return _error(401, "Invalid access token", "INVALID_ACCESS_TOKEN", 65600)
        if self.token_expired:
            return _error(401, "The token used in the request has expired", "EXPIRED_ACCESS_TOKEN", 65601)
        version = headers.get("LinkedIn-Version")
        if version is None:
            message = "A version must be present. Please specify a version by adding the LinkedIn-Version header."
            return _error(400, message, "VERSION_MISSING")
        if not self._active(version):
            return _error(426, f"Requested version {version} is not active", "NONEXISTENT_VERSION")
        if headers.get("X-Restli-Protocol-Version") != "2.0.0":
            return _error(400, "This API requires the header X-Restli-Protocol-Version: 2.0.0")
        return None

    def _active(self, version: str) -> bool:
        """Well-formed, released by the fake's clock, and neither retired nor older than `min_version`."""
        match = _VERSION.fullmatch(version)
        if match is None or not 1 <= int(match[2]) <= 12:
            return False
        month = match[1] + match[2]
        return (
            month not in self.retired_versions
            and (self.min_version is None or month >= self.min_version)
            and month <= self._clock().strftime("%Y%m")
        )

    def _create_post(self, call: LinkedInCall) -> web.Response:
        body = call.json
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object")
        for name in _REQUIRED_FIELDS:
            if name not in body:
                return _error(422, f"ERROR :: /{name} :: field is required but not found and has no default value")
        for name, symbols in _ENUMS.items():
            if body[name] not in symbols:
                return _error(422, f'ERROR :: /{name} :: "{body[name]}" is not an enum symbol')
        if body["author"] != self._author(call):
            return _access_denied("partnerApiPostsExternal.CREATE", call.headers["LinkedIn-Version"])
        if call.member is not None and "w_member_social" not in call.member.scopes:  # "Share on LinkedIn"
            return _access_denied("partnerApiPostsExternal.CREATE", call.headers["LinkedIn-Version"])
        commentary = str(body["commentary"])
        if len(commentary) > MAX_COMMENTARY:
            return _error(422, f"ERROR :: /commentary :: length {len(commentary)} exceeds maximum of {MAX_COMMENTARY}")
        content = body.get("content") or {}
        wanted = [content["media"]] if "media" in content else (content.get("multiImage") or {}).get("images", [])
        if "multiImage" in content and not 2 <= len(wanted) <= MAX_MULTI_IMAGE:
            return _error(422, f"ERROR :: /content/multiImage/images :: must hold 2 to {MAX_MULTI_IMAGE} images")
        images = [self.images.get(str(item.get("id"))) for item in wanted]
        if any(image is None or image.data is None or image.owner != body["author"] for image in images):
            return _error(422, "ERROR :: /content :: image is not AVAILABLE (never uploaded, or not the author's)")
        if any(len(str(item.get("altText") or "")) > MAX_ALT_TEXT for item in wanted):
            return _error(422, f"ERROR :: /content :: altText exceeds maximum of {MAX_ALT_TEXT}")
        author = self._author(call)
        original = next((p for p in self.posts if p.commentary == commentary and p.author == author), None)
        if original is not None:
            return _error(422, f"Content is a duplicate of {original.id}", "DUPLICATE_POST")
        post = self.add_post(
            commentary,
            visibility=body["visibility"],
            lifecycle_state=body["lifecycleState"],
            distribution=body["distribution"],
            reshare_disabled=bool(body.get("isReshareDisabledByAuthor", False)),
            author=author,
        )
        for item, image in zip(wanted, images, strict=True):
            assert image is not None
            image.alt = str(item.get("altText") or "")
            post.images.append(image)
        return web.Response(status=201, headers={"x-restli-id": post.id})

    def _initialize_upload(self, call: LinkedInCall) -> web.Response:
        if call.params.get("action") != "initializeUpload":
            return _error(400, "Only action=initializeUpload is supported")
        owner = ((call.json or {}).get("initializeUploadRequest") or {}).get("owner")
        if owner != self.organization:
            return _access_denied("images.ACTION-initializeUpload", call.headers["LinkedIn-Version"])
        number = next(self._ids)
        image = LinkedInImage(f"urn:li:image:C{number}", owner, time.monotonic() + self.upload_url_ttl)
        self.images[image.urn] = image
        expires = int((time.time() + self.upload_url_ttl) * 1000)
        url = f"{self.origin}/dms-uploads/{quote(image.urn, safe='')}"
        return web.json_response({"value": {"uploadUrlExpiresAt": expires, "uploadUrl": url, "image": image.urn}})

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        """The upload URL: the bytes, with the member's token, before it expires; only JPG, GIF or PNG."""
        data = await request.read()
        call = LinkedInCall("PUT /dms-uploads", request.path, dict(request.match_info), None, request.headers)

        async def apply() -> web.StreamResponse:
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return _error(401, "Invalid access token", "INVALID_ACCESS_TOKEN", 65600)
            image = self.images.get(request.match_info["id"])
            if image is None or image.upload_expires_at <= time.monotonic():
                return _error(400, "The upload URL has expired or is unknown")
            image.data = data
            if image.content_type is None:
                image.data = None
                return _error(400, "Unsupported image format: JPG, GIF or PNG only")
            return web.Response(status=201)

        return await self._serve(request, call, self._fault_for("PUT /dms-uploads", call.params), apply)

    def _find_posts(self, call: LinkedInCall) -> web.Response:
        """The `author` finder, newest first."""
        if call.params.get("q") != "author":
            return _error(400, "Only the `author` finder (q=author) is supported")
        if call.params.get("author") != self.organization:
            return _access_denied("partnerApiPostsExternal.FINDER-author", call.headers["LinkedIn-Version"])
        start = int(call.params.get("start", 0))
        count = min(int(call.params.get("count", 10)), 100)
        newest_first = list(reversed(self.posts))
        return web.json_response(
            {
                "elements": [post.render() for post in newest_first[start : start + count]],
                "paging": {"start": start, "count": count, "links": [], "total": len(newest_first)},
            }
        )

    def _delete_post(self, call: LinkedInCall) -> web.Response:
        post = self.post(call.params["urn"])
        if post is None:
            return _error(404, f"Post {call.params['urn']} does not exist")
        self.posts.remove(post)
        self.deleted.append(post)
        return web.Response(status=204)

    def _set_social_metadata(self, call: LinkedInCall) -> web.Response:
        """Open or close comments: a Rest.li PARTIAL_UPDATE acting as the organization (`?actor=`)."""
        if call.headers.get("X-RestLi-Method", "").upper() != "PARTIAL_UPDATE":  # without it, a POST is an UPDATE
            return _error(400, "socialMetadata only supports PARTIAL_UPDATE (header X-RestLi-Method)")
        actor = call.params.get("actor")
        if actor is None:
            return _error(400, "The query parameter `actor` is required")
        if actor != self.organization:
            return _access_denied("partnerApiSocialMetadata.PARTIAL_UPDATE", call.headers["LinkedIn-Version"])
        post = self.post(call.params["urn"])
        if post is None:
            return _error(404, f"Post {call.params['urn']} does not exist")
        body = call.json
        patch = body.get("patch") if isinstance(body, dict) else None
        changes = patch.get("$set") if isinstance(patch, dict) else None
        state = changes.get("commentsState") if isinstance(changes, dict) else None
        if state not in _COMMENTS_STATES:
            return _error(400, 'The body must be {"patch": {"$set": {"commentsState": "OPEN" | "CLOSED"}}}')
        post.comments_state = state
        return web.Response(status=204)
