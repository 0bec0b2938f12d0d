"""LinkedIn organization pages as a destination: the versioned REST Posts API.

LinkedIn's commentary is "little text": a handful of characters are syntax, and an unescaped one cuts or
garbles the post silently, so every one is escaped. LinkedIn answers a repeated post with the one it
already has: after a lost answer, that is proof it landed, not a failure.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from relay import uploads
from relay.config import DestinationConfig, Replies, Settings
from relay.destination import (
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
from relay.transport import Answer, LazySession, client_timeout, request, server_hint, transport_outcome

log = logging.getLogger(__name__)

# learn.microsoft.com/linkedin/marketing/community-management/shares/little-text-format: these must be
# escaped with a backslash to be shown as themselves.
RESERVED = "|{}@[]()<>#\\*_~"
_RESERVED = re.compile(r"([|{}@\[\]()<>#\\*_~])")
_ORGANIZATION = re.compile(r"^urn:li:organization:\d+$")
_VERSION = re.compile(r"^20\d{4}$")
# LinkedIn keeps each monthly API version about a year (…/versioning); override with `api_version`.
DEFAULT_VERSION = "202510"


def _check(options: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = []
    if not _ORGANIZATION.match(str(options.get("organization", ""))):
        problems.append(("organization", 'must be the page\'s URN, like "urn:li:organization:2414183"'))
    if options.get("api_version") is not None and not _VERSION.match(str(options["api_version"])):
        problems.append(("api_version", 'must be a LinkedIn API version, written YYYYMM, like "202510"'))
    return problems


SPEC = DestinationSpec(
    kind="linkedin",
    options={"organization": str, "api_version": str},
    required=("organization",),
    secrets={"token": "LINKEDIN_ACCESS_TOKEN"},
    endpoints={"url": ("LINKEDIN_API_URL", "https://api.linkedin.com")},
    replies=True,
    check_options=_check,
)

# 3,000 characters of commentary (Posts API reference); LinkedIn has no threads, so longer is refused.
LIMITS = Limits(
    max_length=3000,
    counting=Counting.CHARACTERS,
    markup=Markup.PLAIN,
    reserved=RESERVED,
    concurrency=2,
    # Images API (learn.microsoft.com, "LinkedIn Marketing: Images API"): JPG, GIF or PNG, under 36,152,320
    # pixels; a post carries one (`content.media`) or 2 to 20 (`content.multiImage`); alt text up to 4,086
    # characters (Posts API, MediaContent.altText). The Images API publishes no byte limit; 5 MB is the one
    # LinkedIn's own composer and the schedulers' guidelines hold to.
    images=ImageLimits(
        max_count=20,
        max_bytes=5 * 1024 * 1024,
        max_pixels=36_152_319,
        formats=frozenset({"image/jpeg", "image/png", "image/gif"}),
        alt_length=4086,
        alt_required=True,
    ),
)


def escape(text: str) -> str:
    return _RESERVED.sub(r"\\\1", text)


class LinkedInPage:
    limits = LIMITS
    editable = False
    idempotency_window = 0.0  # no idempotency key; a repeat is answered as a duplicate instead

    def __init__(self, config: DestinationConfig, settings: Settings, store: Store) -> None:
        self.name = config.name
        self.url = settings.reveal(config.env["url"]).rstrip("/") or "https://api.linkedin.com"
        self.organization = str(config.options["organization"])
        self.version = str(config.options.get("api_version") or DEFAULT_VERSION)
        self.token_variable = config.env["token"]
        self._token = settings.reveal(config.env["token"])
        self.replies = config.replies
        self._http = LazySession(
            client_timeout(settings.http_timeout),
            {
                "Authorization": f"Bearer {self._token}",
                "LinkedIn-Version": self.version,
                "X-Restli-Protocol-Version": "2.0.0",
            },
        )

    async def prepare(self) -> None:
        return None

    def replies_note(self) -> str:
        if self.replies is Replies.OPEN:
            return "anyone can comment"
        return "comments are closed (LinkedIn can only open or close them)"

    async def publish(self, part: Part) -> Outcome:
        post = {
            "author": self.organization,
            "commentary": escape(part.text),
            "visibility": "PUBLIC",
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": [],
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }
        try:
            images = [{"id": await self._upload(image), "altText": image.alt} for image in part.images]
        except uploads.Unuploaded as failed:
            return failed.outcome
        if len(images) == 1:
            post["content"] = {"media": images[0]}
        elif images:
            post["content"] = {"multiImage": {"images": images}}
        try:
            answer = await request(self._http(), "POST", f"{self.url}/rest/posts", json=post)
        except Exception as error:  # classified, or raised again when not a transport failure
            return transport_outcome(error, "LinkedIn")
        if answer.status == 201:
            urn = answer.headers.get("x-restli-id") or answer.headers.get("X-RestLi-Id", "")
            await self._close_comments(urn)
            return Sent(urn, _link(urn))
        duplicate = re.search(r"urn:li:(?:share|ugcPost):\d+", answer.field("message"))
        if answer.status == 422 and duplicate:
            return Sent(duplicate.group(0), _link(duplicate.group(0)))  # LinkedIn already has this very post
        return self._failure(answer)

    async def _upload(self, image: Image) -> str:
        """Images API: `initializeUpload` for the page, then the bytes PUT to the URL it gave (which expires:
        it is used at once). Answers the image's URN for the post."""
        try:
            init = await request(
                self._http(),
                "POST",
                f"{self.url}/rest/images",
                params={"action": "initializeUpload"},
                json={"initializeUploadRequest": {"owner": self.organization}},
            )
            if not init.ok:
                raise uploads.fail(self._failure(init), "LinkedIn")
            value = init.body["value"]
            put = await request(self._http(), "PUT", value["uploadUrl"], data=io.BytesIO(image.data))
        except uploads.Unuploaded:
            raise
        except Exception as error:
            raise uploads.fail(transport_outcome(error, "LinkedIn"), "LinkedIn") from error
        if not put.ok:
            raise uploads.fail(self._failure(put), "LinkedIn")
        return str(value["image"])

    async def _close_comments(self, urn: str) -> None:
        """One-way mode: LinkedIn lets a page close comments on its own post (Social Metadata API)."""
        if self.replies is Replies.OPEN or not urn:
            return
        try:
            answer = await request(
                self._http(),
                "POST",
                f"{self.url}/rest/socialMetadata/{quote(urn, safe='')}",
                params={"actor": self.organization},
                json={"patch": {"$set": {"commentsState": "CLOSED"}}},
                headers={"X-RestLi-Method": "PARTIAL_UPDATE"},
            )
        except Exception as error:  # the post is made; the comments stay open
            log.warning("could not close comments on %s: %s", urn, type(error).__name__)
            return
        if not answer.ok:
            log.warning("LinkedIn would not close comments on %s (%s)", urn, answer.status)

    async def edit(self, remote_id: str, text: str) -> Outcome:
        return Permanent("LinkedIn cannot edit a post: retract it and post again.")

    async def delete(self, remote_id: str) -> Outcome:
        try:
            answer = await request(self._http(), "DELETE", f"{self.url}/rest/posts/{quote(remote_id, safe='')}")
        except Exception as error:
            return transport_outcome(error, "LinkedIn")
        if answer.ok or answer.status == 404:  # deleted, or already gone
            return Sent(remote_id, None)
        return self._failure(answer)

    async def find(self, part: Part, since: float) -> FindResult:
        try:
            answer = await request(
                self._http(),
                "GET",
                f"{self.url}/rest/posts",
                params={"q": "author", "author": self.organization, "count": "20"},
            )
        except Exception as error:
            transport_outcome(error, "LinkedIn")
            return Retry("could not reach LinkedIn to check whether the post landed")
        if not answer.ok:
            outcome = self._failure(answer)
            if isinstance(outcome, Retry):
                return outcome
            return Unprovable(
                f"The post may or may not be on LinkedIn, and LinkedIn would not let the bot check "
                f"({answer.status}): look at the page before posting it by hand."
            )
        for element in answer.body.get("elements", []):
            recent = int(element.get("createdAt", 0)) / 1000 >= since
            if recent and element.get("commentary") == escape(part.text):
                return Sent(str(element["id"]), _link(str(element["id"])))
        return None

    def _failure(self, answer: Answer) -> Outcome:
        code, message = answer.field("code"), answer.field("message")
        if answer.status == 429:
            return Retry("LinkedIn rate limit reached", server_hint(answer.headers))
        if answer.status >= 500:
            return Retry(f"LinkedIn answered {answer.status}", server_hint(answer.headers))
        if answer.status == 401:
            why = "the token expired" if "EXPIRED" in code or "expired" in message else "it rejected the token"
            return Permanent(f"LinkedIn says {why}: renew {self.token_variable} (LinkedIn tokens last 60 days).")
        if answer.status == 403:
            return Permanent(
                f"LinkedIn refused: the token's member must be an admin of {self.organization} and the app "
                "needs the w_organization_social permission."
            )
        if answer.status == 426:
            return Permanent(
                f"LinkedIn has retired API version {self.version}: set api_version on [destinations.{self.name}] "
                "to a current YYYYMM."
            )
        return Permanent(f"LinkedIn rejected the post ({answer.status}): {message or code or 'no reason given'}.")

    def pace_key(self) -> str:
        return f"linkedin:{self.organization}"

    def limit_key(self) -> str:
        return f"linkedin:{self.token_variable}"  # LinkedIn throttles per member and app

    def describe(self) -> str:
        return f"LinkedIn page {self.organization} (API {self.version})"

    async def close(self) -> None:
        await self._http.close()


def _link(urn: str) -> str:
    return f"https://www.linkedin.com/feed/update/{urn}/"
