"""Threads as a destination: Meta's Threads API, where a post is a container first and a post once published.

Posting is two calls (developers.facebook.com/docs/threads/posts): `POST /{user}/threads` makes a media
container, and `POST /{user}/threads_publish?creation_id=` turns it into a post, once the container's status
(`GET /{container}?fields=status`) is FINISHED. That split is what keeps a post from going out twice: a
container nobody published is never shown and expires after 24 hours, so any failure before the publish
call is a plain retry; only a publish whose answer was lost is ambiguous, and then the container (if this
process still knows it) says whether it was PUBLISHED, and the account's recent posts or replies say which
post it became.

Threads caps each account at 250 posts, 1,000 replies and 100 deletions a day (docs/threads/overview, "Rate
limiting"; docs/threads/posts/delete-posts). The bot reads the account's usage
(`GET /{user}/threads_publishing_limit`) before every post and deletion, refuses in words what would go
over, and keeps the last reading for the preview.

One class serves every Threads account: the company's, from the environment (`from_config`), and a leader's
own, from their sign-in (`ThreadsAccount(name, token, api_url, user_id=…)`), where `token` may be a coroutine
function that answers the current token, so a token refreshed elsewhere is used from the next call on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from relay import threads_text
from relay.config import DestinationConfig, Replies, Settings
from relay.destination import (
    Allowance,
    Ambiguous,
    Counting,
    DestinationSpec,
    FindResult,
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

DEFAULT_URL = "https://graph.threads.net/v1.0"

# A token, or what answers the current one (a leader's, kept and refreshed by whoever connected it).
Token = str | Callable[[], Awaitable[str]]

SPEC = DestinationSpec(
    kind="threads",
    secrets={"token": "THREADS_ACCESS_TOKEN"},
    endpoints={"url": ("THREADS_API_URL", DEFAULT_URL)},
    replies=True,
)

# 500 characters with emoji as their UTF-8 bytes, and at most 5 distinct links a post (relay/threads_text.py).
# A longer broadcast is a thread of replies, capped at 10 like X's: past that it is a document.
LIMITS = Limits(
    max_length=threads_text.MAX_CHARACTERS,
    counting=Counting.THREADS,
    markup=Markup.PLAIN,
    max_thread_parts=10,
    max_links=threads_text.MAX_LINKS,
    concurrency=2,
)

# Images (developers.facebook.com/docs/threads/posts, "Image specifications", and docs/threads/reference/
# publishing): JPEG or PNG, 8 MB at most (Threads scales the width to 320–1440 pixels itself), fetched by
# Threads from `image_url` on a public server; a carousel holds 2 to 20 items; `alt_text` up to 1,000
# characters (docs/threads/posts/accessibility).
IMAGES = ImageLimits(
    max_count=20,
    max_bytes=8 * 1024 * 1024,
    formats=frozenset({"image/jpeg", "image/png"}),
    alt_length=1000,
    alt_required=True,
    by_url=True,
)
NO_PUBLIC_URL = "set RELAY_PUBLIC_URL so that Threads can fetch the images"

# `reply_control` on POST /{user}/threads (docs/threads/reference/publishing): who may reply, per policy.
REPLY_CONTROL = {
    Replies.OPEN: "everyone",
    Replies.RESTRICTED: "accounts_you_follow",
    Replies.NONE: "mentioned_only",
}
_REPLY_NOTES = {
    Replies.OPEN: "anyone can reply",
    Replies.RESTRICTED: "only accounts this account follows can reply",
    Replies.NONE: "only accounts mentioned in the post can reply",
}

# What the quota endpoint is asked for (docs/threads/troubleshooting, "Retrieve quota limits").
_QUOTA_FIELDS = "quota_usage,config,reply_quota_usage,reply_config,delete_quota_usage,delete_config"
# The share of an allowance past which the preview warns that little is left.
_WARN_AT = 0.8

# Graph API error codes (developers.facebook.com/docs/graph-api/guides/error-handling).
_EXPIRED_SUBCODE = 463  # code 190: the token's session has expired
_TOKEN = {102, 190}  # the session or the token is invalid, expired or revoked
_THROTTLED = {4, 17, 32, 613}  # too many calls: wait and retry
_TRANSIENT = {1, 2}  # unknown or service error: a passing fault
_PERMISSION = {3, 10}  # the app or token lacks a permission (also 200-299)
_LIMIT_REACHED = 9  # the account's publishing allowance for the day is spent
_NOT_READY = 9007  # the container is not ready to be published yet
_GONE = {(100, 33), (24, 4279009)}  # no such object (deleted, or never there)
_PERMISSIONS = "threads_basic, threads_content_publish, threads_manage_replies, threads_read_replies, threads_delete"


@dataclass(frozen=True)
class Quota:
    """An account's usage over the last 24 hours, as `threads_publishing_limit` reported it."""

    posts: int
    posts_total: int
    replies: int
    replies_total: int
    deletes: int
    deletes_total: int

    @classmethod
    def read(cls, body: Any) -> Quota:
        usage = body["data"][0]

        def total(config: str, default: int) -> int:
            return int((usage.get(config) or {}).get("quota_total", default))

        return cls(
            posts=int(usage.get("quota_usage", 0)),
            posts_total=total("config", 250),
            replies=int(usage.get("reply_quota_usage", 0)),
            replies_total=total("reply_config", 1000),
            deletes=int(usage.get("delete_quota_usage", 0)),
            deletes_total=total("delete_config", 100),
        )

    def refusal(self, posts: int, replies: int) -> str | None:
        """Why `posts` posts and `replies` replies cannot go out now, or None."""
        if self.posts + posts > self.posts_total:
            return (
                f"Threads' daily limit is reached: {self.posts:,} of {self.posts_total:,} posts in the last 24 hours. "
                "Threads counts a rolling day: send it later."
            )
        if self.replies + replies > self.replies_total:
            return (
                f"Threads' daily limit of replies is reached: {self.replies:,} of {self.replies_total:,} in the "
                f"last 24 hours, and this thread needs {replies}. Send it later, or shorten it."
            )
        return None

    def delete_refusal(self) -> str | None:
        if self.deletes < self.deletes_total:
            return None
        return (
            f"Threads' daily limit of deletions is reached: {self.deletes:,} of {self.deletes_total:,} in the last 24 "
            "hours. Retract it again later, or delete the posts in the Threads app."
        )

    def usage(self) -> str:
        return (
            f"{self.posts:,} of {self.posts_total:,} posts and {self.replies:,} of {self.replies_total:,} replies "
            "used in the last 24 hours"
        )


def _thread_needs(parts: int) -> tuple[int, int]:
    """A thread is one post, then replies to it."""
    return 1, parts - 1


class ThreadsAccount:
    """One Threads account, posted to with its access token."""

    limits = LIMITS
    editable = False
    idempotency_window = 0.0  # Threads honours no idempotency key; a lost publish is looked for

    def __init__(
        self,
        name: str,
        token: Token,
        api_url: str = DEFAULT_URL,
        *,
        user_id: str = "me",
        replies: Replies = Replies.OPEN,
        http_timeout: float = 20.0,
        renew: str = "renew THREADS_ACCESS_TOKEN",
        container_wait: float = 10.0,
        public_url: bool = False,
    ) -> None:
        """`renew` tells the leader how to fix a rejected token ("reconnect your Threads account", say);
        `container_wait` bounds, in seconds, how long one attempt waits for a container to be ready;
        `public_url` says whether the bot serves images where Threads can fetch them (RELAY_PUBLIC_URL)."""
        self.limits = replace(LIMITS, images=IMAGES if public_url else replace(IMAGES, refused=NO_PUBLIC_URL))
        self.name = name
        self.url = (api_url or DEFAULT_URL).rstrip("/")
        self.user_id = user_id
        self.replies = replies
        self.renew = renew
        self.container_wait = container_wait
        self._token = token
        self._http = LazySession(client_timeout(http_timeout))
        self._containers: dict[str, str] = {}  # part key → its container, until published
        self.quota: Quota | None = None  # the last reading, for the preview

    @classmethod
    def from_config(cls, config: DestinationConfig, settings: Settings, store: Store) -> ThreadsAccount:
        """The company's account, from THREADS_ACCESS_TOKEN (or the variable `token_env` names)."""
        return cls(
            config.name,
            settings.reveal(config.env["token"]),
            settings.reveal(config.env["url"]) or DEFAULT_URL,
            replies=config.replies,
            http_timeout=settings.http_timeout,
            renew=f"renew {config.env['token']} with a new long-lived token (they last 60 days)",
            public_url=settings.public_url is not None,
        )

    # ---- the Graph API ---------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, **params: str | None) -> Answer:
        """One Graph call with the token as Meta documents it (the `access_token` parameter: in the form of a
        POST, the query otherwise). No URL is ever logged or put in a message, so it never shows."""
        given = {key: value for key, value in params.items() if value is not None}
        given["access_token"] = self._token if isinstance(self._token, str) else await self._token()
        where = f"{self.url}/{path}"
        if method == "POST":
            return await request(self._http(), method, where, data=given)
        return await request(self._http(), method, where, params=given)

    async def _read_quota(self) -> Quota | Outcome:
        answer = await self._call("GET", f"{self.user_id}/threads_publishing_limit", fields=_QUOTA_FIELDS)
        if not answer.ok:
            return self._failure(answer)
        self.quota = Quota.read(answer.body)
        return self.quota

    # ---- posting ---------------------------------------------------------------------------------------

    async def publish(self, part: Part) -> Outcome:
        try:
            ready = await self._prepare_container(part)
        except Exception as error:  # nothing is published before threads_publish: any failure is a retry
            outcome = transport_outcome(error, "Threads")
            return Retry(outcome.reason) if isinstance(outcome, Ambiguous) else outcome
        if not isinstance(ready, str):
            return ready
        try:
            answer = await self._call("POST", f"{self.user_id}/threads_publish", creation_id=ready)
        except Exception as error:  # classified, or raised again when not a transport failure
            return transport_outcome(error, "Threads")
        if not answer.ok:
            failed = self._failure(answer)
            if isinstance(failed, Permanent) and _gone(answer):  # expired since: the next attempt makes another
                self._containers.pop(part.key, None)
                return Retry("the post's container on Threads expired; a new one will be made")
            return failed
        self._containers.pop(part.key, None)
        if self.quota is not None:  # counted here too, so the preview need not ask Threads again
            used = self.quota
            grown = {"replies": used.replies + 1} if part.reply_to else {"posts": used.posts + 1}
            self.quota = replace(used, **grown)
        media = str(answer.body["id"])
        return Sent(media, await self._permalink(media))

    async def _prepare_container(self, part: Part) -> str | Outcome:
        """A container of this part that is ready to publish (its id), or why there is none now."""
        quota = await self._read_quota()
        if not isinstance(quota, Quota):
            return quota
        posts, replies = _thread_needs(part.total) if part.index == 0 else (0, 1)
        if refused := quota.refusal(posts, replies):
            return Permanent(refused)
        container = self._containers.get(part.key)
        if container is None:
            made = await self._make_container(part)
            if not isinstance(made, str):
                return made
            container = self._containers[part.key] = made
        return await self._ready(part, container)

    async def _make_container(self, part: Part) -> str | Outcome:
        """The part's container: text alone; one image (IMAGE); several, each an item container made and
        processed first, then a CAROUSEL of them (docs/threads/posts, "Carousel posts"). Threads fetches
        each image from its URL when its container is made."""
        post = {"text": part.text, "reply_to_id": part.reply_to, "reply_control": REPLY_CONTROL[self.replies]}
        if not part.images:
            return await self._create(media_type="TEXT", **post)
        if len(part.image_urls) != len(part.images):
            return Permanent(f"Threads fetches images from the bot: {NO_PUBLIC_URL}.")
        if len(part.images) == 1:
            return await self._create(
                media_type="IMAGE", image_url=part.image_urls[0], alt_text=part.images[0].alt or None, **post
            )
        children = []
        for image, url in zip(part.images, part.image_urls, strict=True):
            item = await self._create(
                media_type="IMAGE", image_url=url, alt_text=image.alt or None, is_carousel_item="true"
            )
            if not isinstance(item, str):
                return item
            ready = await self._status(item)
            if isinstance(ready, Answer):
                return self._failure(ready)
            if ready[0] != "FINISHED":
                return self._unready(ready, "an image of the post")
            children.append(item)
        return await self._create(media_type="CAROUSEL", children=",".join(children), **post)

    async def _create(self, **params: str | None) -> str | Outcome:
        created = await self._call("POST", f"{self.user_id}/threads", **params)
        return str(created.body["id"]) if created.ok else self._failure(created)

    def _unready(self, status: tuple[str, str], what: str) -> Outcome:
        state, why = status
        if state == "IN_PROGRESS":
            return Retry(f"Threads is still preparing {what}; it is published once ready", after=5.0)
        if state == "EXPIRED":
            return Retry(f"the container of {what} on Threads expired; a new one will be made")
        return Permanent(f"Threads could not prepare {what} ({why or state}).")

    async def _ready(self, part: Part, container: str) -> str | Outcome:
        """The container's id once Threads has it ready, or why not now."""
        status = await self._status(container)
        if isinstance(status, Answer):
            self._containers.pop(part.key, None)
            if _gone(status):  # unpublished, it was never shown: the next attempt makes another
                return Retry("Threads no longer knows the post's container; a new one will be made")
            return self._failure(status)
        state = status[0]
        if state == "FINISHED":
            return container
        if state == "PUBLISHED":  # an attempt whose answer was lost did publish it
            found = await self._look(part, part.created_at - 60)
            return found if isinstance(found, Sent) else Ambiguous("Threads published the post; it is not listed yet")
        if state != "IN_PROGRESS":
            self._containers.pop(part.key, None)
        return self._unready(status, "the post")

    async def _status(self, container: str) -> tuple[str, str] | Answer:
        """The container's status once it is no longer IN_PROGRESS, or IN_PROGRESS at the end of a bounded
        wait: Meta asks clients to wait for FINISHED, and a text container is usually ready at once."""
        deadline = time.monotonic() + self.container_wait
        pause = 0.25
        while True:
            answer = await self._call("GET", container, fields="status,error_message")
            if not answer.ok:
                return answer
            state = answer.field("status")
            if state != "IN_PROGRESS" or time.monotonic() + pause > deadline:
                return state, answer.field("error_message")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def _permalink(self, media: str) -> str | None:
        """The post's link; the post is made whatever happens here, so a failure only leaves it out."""
        try:
            answer = await self._call("GET", media, fields="permalink")
        except Exception as error:
            transport_outcome(error, "Threads")
            return None
        return (answer.field("permalink") or None) if answer.ok else None

    async def edit(self, remote_id: str, text: str) -> Outcome:
        return Permanent("Threads cannot edit a post through its API: retract it and post again.")

    async def delete(self, remote_id: str) -> Outcome:
        try:
            quota = await self._read_quota()
            if not isinstance(quota, Quota):
                return quota
            if refused := quota.delete_refusal():
                return Permanent(refused)
            answer = await self._call("DELETE", remote_id)
        except Exception as error:
            return transport_outcome(error, "Threads")
        if answer.ok or _gone(answer):  # deleted, or already gone
            if answer.ok and self.quota is not None:
                self.quota = replace(self.quota, deletes=self.quota.deletes + 1)
            return Sent(remote_id, None)
        return self._failure(answer)

    # ---- never twice -----------------------------------------------------------------------------------

    async def find(self, part: Part, since: float) -> FindResult:
        try:
            container = self._containers.get(part.key)
            if container is not None:
                status = await self._status_now(container)
                if status in ("FINISHED", "IN_PROGRESS", "EXPIRED", "ERROR"):
                    return None  # never published: the next attempt publishes it (or a new one)
            return await self._look(part, since)
        except Exception as error:
            transport_outcome(error, "Threads")
            return Retry("could not reach Threads to check whether the post landed")

    async def _status_now(self, container: str) -> str | None:
        answer = await self._call("GET", container, fields="status")
        return answer.field("status") if answer.ok else None

    async def _look(self, part: Part, since: float) -> FindResult:
        """The part among the account's recent posts (the first) or replies (the others)."""
        edge, fields = ("replies", "id,text,timestamp,permalink,replied_to") if part.reply_to else ("threads", "")
        answer = await self._call(
            "GET",
            f"{self.user_id}/{edge}",
            fields=fields or "id,text,timestamp,permalink",
            since=str(int(since)),
            limit="100",
        )
        if not answer.ok:
            outcome = self._failure(answer)
            if isinstance(outcome, Retry):
                return outcome
            return Unprovable(
                f"The post may or may not be on Threads, and Threads would not let the bot read the account's "
                f"recent {edge} to check: look at the account before posting it by hand."
            )
        for post in answer.body.get("data", []):
            recent = datetime.fromisoformat(str(post.get("timestamp"))).timestamp() >= since
            same_place = part.reply_to is None or str((post.get("replied_to") or {}).get("id")) == part.reply_to
            if recent and same_place and post.get("text") == part.text:
                return Sent(str(post["id"]), post.get("permalink"))
        return None

    # ---- what the leader reads -------------------------------------------------------------------------

    def _failure(self, answer: Answer) -> Outcome:
        error = answer.body.get("error") if isinstance(answer.body, dict) else None
        error = error if isinstance(error, dict) else {}
        code, subcode = int(error.get("code") or 0), int(error.get("error_subcode") or 0)
        message = str(error.get("error_user_msg") or error.get("message") or "").strip()
        trace = f" (Meta trace id {error['fbtrace_id']})" if error.get("fbtrace_id") else ""
        if code in _TOKEN or answer.status == 401:
            why = "the access token has expired" if subcode == _EXPIRED_SUBCODE else "it rejected the access token"
            return Permanent(f"Threads says {why}: {self.renew}.")
        if code in _THROTTLED or answer.status == 429:
            return Retry("Threads rate limit reached", server_hint(answer.headers))
        if code in _TRANSIENT or code == _NOT_READY or answer.status >= 500 or error.get("is_transient"):
            why = message or "a passing fault"
            return Retry(f"Threads answered {answer.status}: {why}", server_hint(answer.headers))
        if code in _PERMISSION or 200 <= code <= 299:
            return Permanent(
                f"Threads refused for want of a permission ({message}): the token needs {_PERMISSIONS}; {self.renew}."
            )
        if code == _LIMIT_REACHED:
            return Permanent(f"Threads' daily limit is reached: {message}. Send it later.")
        return Permanent(f"Threads rejected the post ({code or answer.status}): {message or 'no reason given'}{trace}.")

    async def prepare(self) -> None:
        """Read the day's usage, so the first preview can show it."""
        try:
            await self._read_quota()
        except Exception as error:  # the preview shows no usage until the first post reads it
            log.warning("could not read %s's Threads usage (%s)", self.name, type(error).__name__)

    def allowance(self, parts: int) -> Allowance:
        if self.quota is None:
            return Allowance()
        if refused := self.quota.refusal(*_thread_needs(parts)):
            return Allowance(error=f"{self.name}: {refused}")
        used = self.quota
        if used.posts + 1 > _WARN_AT * used.posts_total or used.replies + parts > _WARN_AT * used.replies_total:
            return Allowance(warning=f"{self.name}: {self.quota.usage()}.")
        return Allowance()

    def replies_note(self) -> str:
        return _REPLY_NOTES[self.replies]

    def pace_key(self) -> str:
        return f"threads:{self.name}"

    def limit_key(self) -> str:
        return f"threads:{self.name}"  # Threads' limits are per account

    def describe(self) -> str:
        return f"Threads account {self.user_id} via {self.url}"

    async def close(self) -> None:
        await self._http.close()


def _gone(answer: Answer) -> bool:
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    if not isinstance(error, dict):
        return answer.status == 404
    return (int(error.get("code") or 0), int(error.get("error_subcode") or 0)) in _GONE
