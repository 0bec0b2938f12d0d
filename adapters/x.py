"""X (Twitter) as a destination: API v2 `POST /2/tweets` with OAuth 1.0a user context, through tweepy.

X honours no idempotency key, so a post whose answer was lost is looked for among the account's recent
posts before it is tried again; an account whose plan cannot read its own timeline gets "unknown".
"""

from __future__ import annotations

import html
import io
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import regex
import tweepy
from oauthlib.oauth1 import Client as OAuthClient
from tweepy.asynchronous import AsyncClient
from yarl import URL

from relay import twitter_text, uploads
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
from relay.transport import LazySession, client_timeout, server_hint, transport_outcome

# tweepy logs whole request headers at DEBUG, OAuth token included: never let that reach a log.
logging.getLogger("tweepy").setLevel(logging.INFO)

SPEC = DestinationSpec(
    kind="x",
    secrets={
        "api_key": "X_API_KEY",
        "api_secret": "X_API_SECRET",
        "access_token": "X_ACCESS_TOKEN",
        "access_token_secret": "X_ACCESS_TOKEN_SECRET",
    },
    endpoints={"url": ("X_API_URL", "https://api.twitter.com")},
    replies=True,
)

# 280 weighted characters, links counted as 23 (docs.x.com, "Counting characters"), counted by twitter-text
# 3.1.0's parseTweet as X does (relay/twitter_text.py).
# A thread is capped at 10 posts: past that a broadcast is a document, and X's per-user post limits
# (docs.x.com, "Rate limits") would make it go out in pieces.
LIMITS = Limits(
    max_length=280,
    counting=Counting.X_WEIGHTED,
    markup=Markup.PLAIN,
    url_length=23,
    max_thread_parts=10,
    concurrency=2,
    # Images (docs.x.com, "Media": size restrictions and best practices; "Create Media metadata"): up to 4 on
    # a post, 5 MB each, JPEG, PNG, GIF or WebP; alt text up to 1,000 characters.
    images=ImageLimits(
        max_count=4,
        max_bytes=5 * 1024 * 1024,
        formats=frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"}),
        alt_length=1000,
        alt_required=True,
    ),
)
# The chunked upload's APPEND takes chunks of at most 5 MB (docs.x.com, "Chunked media upload"); smaller
# chunks keep each request well within the HTTP timeout.
CHUNK = 1024 * 1024

_URLISH = regex.compile(r"https?://\S+")


class _Client(AsyncClient):  # type: ignore[misc]
    """tweepy's AsyncClient with a configurable host.

    tweepy hard-codes https://api.twitter.com and signs for it, yet X_API_URL must be honoured and an
    OAuth 1.0a signature covers the host actually called; so `request` is redone here: same signing
    (oauthlib, as tweepy does), our session with its timeouts, and errors that survive a non-JSON answer.
    """

    def __init__(
        self, host: str, session: aiohttp.ClientSession, bearer: str | None = None, **credentials: str
    ) -> None:
        super().__init__(**credentials)
        self.host = host
        self.session = session
        self.bearer = bearer  # an OAuth 2.0 user token (a leader's own account): sent as is, not signed

    async def request(
        self,
        method: str,
        route: str,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        user_auth: bool = False,
        form: aiohttp.FormData | None = None,
    ) -> aiohttp.ClientResponse:
        """`form`, a multipart body (media upload), is not part of an OAuth 1.0a signature (RFC 5849 §3.4.1.3)."""
        headers = {"User-Agent": self.user_agent}
        if json is not None:
            headers["Content-Type"] = "application/json"
        url = str(URL(self.host + route).with_query(sorted((params or {}).items())))
        if self.bearer is not None:
            headers["Authorization"] = f"Bearer {self.bearer}"
        else:
            signer = OAuthClient(self.consumer_key, self.consumer_secret, self.access_token, self.access_token_secret)
            url, headers, _ = signer.sign(url, method, headers=headers)
        before, _, query = url.partition("?")
        target = URL(f"{before}?{query.replace(':', '%3A')}" if query else before, encoded=True)
        assert self.session is not None
        async with self.session.request(method, target, json=json, data=form, headers=headers) as response:
            await response.read()
        if 200 <= response.status < 300:
            return response
        try:
            body = await response.json(content_type=None)
        except ValueError:
            body = {}
        raise tweepy.HTTPException(response, response_json=body if isinstance(body, dict) else {})


def _detail(error: tweepy.HTTPException) -> str:
    messages = [m for m in error.api_messages if m] or [error.response.reason or ""]
    return "; ".join(str(m) for m in messages).strip()


def _classify(error: tweepy.HTTPException, env: Mapping[str, str], text: str = "") -> Outcome:
    status = error.response.status
    detail = _detail(error)
    if "too long" in detail.lower():  # X answers 403 for length too: not a permissions problem
        return Permanent(
            f"X refused the post as too long: {twitter_text.weighted_length(text):,} of "
            f"{twitter_text.MAX_WEIGHTED_LENGTH} weighted characters by its count ({detail}). Shorten the message."
        )
    if status == 429:
        return Retry("X rate limit reached", server_hint(dict(error.response.headers)))
    if status >= 500:
        return Retry(f"X answered {status}", server_hint(dict(error.response.headers)))
    if status == 401:
        return Permanent(
            f"X rejected the credentials: renew {env['access_token']} and {env['access_token_secret']} "
            f"(and check {env['api_key']} and {env['api_secret']})."
        )
    if status == 402:
        return Permanent(
            "X refused for payment: the app's API plan has no credits left (402). Top up in the X developer portal."
        )
    if "duplicate" in detail.lower():
        return Permanent("X rejected it as a duplicate of a recent post from this account.")
    if status == 403:
        return Permanent(
            f"X refused the post: {detail or 'forbidden'}. Check that the X app has Read and Write "
            f"permission, then regenerate {env['access_token']} and {env['access_token_secret']}."
        )
    return Permanent(f"X rejected the post ({status}): {detail or 'no reason given'}.")


def _same_text(ours: str, theirs: str) -> bool:
    """X rewrites links to t.co and escapes &, < and >; compare what is left."""

    def norm(text: str) -> str:
        return " ".join(_URLISH.sub("<link>", html.unescape(text)).split())

    return norm(ours) == norm(theirs)


# X API v2 `reply_settings` (docs.x.com, POST /2/tweets): who may reply, per reply policy.
_REPLY_SETTINGS = {Replies.OPEN: None, Replies.RESTRICTED: "following", Replies.NONE: "mentionedUsers"}
_REPLY_NOTES = {
    Replies.OPEN: "anyone can reply",
    Replies.RESTRICTED: "only accounts this account follows can reply",
    Replies.NONE: "nobody can reply (only accounts mentioned in the post could)",
}


class XAccount:
    """The company's X account, posted to with OAuth 1.0a user context."""

    limits = LIMITS
    editable = False
    idempotency_window = 0.0

    def __init__(self, config: DestinationConfig, settings: Settings, store: Store) -> None:
        self.name = config.name
        self.host = (settings.reveal(config.env["url"]) or "https://api.twitter.com").rstrip("/")
        self._session = LazySession(client_timeout(settings.http_timeout))
        self.env = config.env
        self.replies = config.replies
        self._credentials = {
            "consumer_key": settings.reveal(config.env["api_key"]),
            "consumer_secret": settings.reveal(config.env["api_secret"]),
            "access_token": settings.reveal(config.env["access_token"]),
            "access_token_secret": settings.reveal(config.env["access_token_secret"]),
        }
        # A leader's own account (adapters/own_accounts.py) speaks with an OAuth 2.0 user token instead.
        self._bearer = settings.reveal(config.env["user_token"]) if "user_token" in config.env else None
        self._client: _Client | None = None
        self._user_id: str | None = None

    def _api(self) -> _Client:
        if self._client is None:
            self._client = _Client(self.host, self._session(), self._bearer, **self._credentials)
        return self._client

    async def publish(self, part: Part) -> Outcome:
        try:
            media_ids = [await self._upload(image) for image in part.images] or None
        except uploads.Unuploaded as failed:
            return failed.outcome
        try:
            answer = await self._api().create_tweet(
                text=part.text,
                in_reply_to_tweet_id=part.reply_to,
                reply_settings=_REPLY_SETTINGS[self.replies],
                media_ids=media_ids,
                user_auth=True,
            )
        except tweepy.HTTPException as error:
            return _classify(error, self.env, part.text)
        except Exception as error:
            return transport_outcome(error, "X")
        tweet_id = str(answer.data["id"])
        return Sent(tweet_id, f"https://x.com/i/web/status/{tweet_id}")

    async def _upload(self, image: Image) -> str:
        """X API v2's chunked upload (`POST /2/media/upload`: INIT, APPEND, FINALIZE, then STATUS while it
        is processing), then the alt text (`POST /2/media/metadata`). The id is used at once: it expires."""
        try:
            init = await self._media(
                {
                    "command": "INIT",
                    "media_type": image.mime,
                    "total_bytes": str(len(image.data)),
                    "media_category": "tweet_image",
                }
            )
            media_id = str(init["data"]["id"])
            for index, start in enumerate(range(0, len(image.data), CHUNK)):
                chunk = {"command": "APPEND", "media_id": media_id, "segment_index": str(index)}
                await self._media(chunk, image.data[start : start + CHUNK])
            info = (await self._media({"command": "FINALIZE", "media_id": media_id}))["data"].get("processing_info")

            async def processed() -> bool:
                response = await self._api().request(
                    "GET", "/2/media/upload", params={"command": "STATUS", "media_id": media_id}, user_auth=True
                )
                state = ((await response.json())["data"].get("processing_info") or {}).get("state", "succeeded")
                if state == "failed":
                    raise uploads.Unuploaded(Permanent("X could not process an image: attach another."))
                return bool(state == "succeeded")

            if info and info.get("state") != "succeeded":
                await uploads.until_processed(processed, "X")
            if image.alt:
                metadata = {"id": media_id, "metadata": {"alt_text": {"text": image.alt}}}
                await self._api().request("POST", "/2/media/metadata", json=metadata, user_auth=True)
        except tweepy.HTTPException as error:
            raise uploads.fail(_classify(error, self.env), "X") from error
        except (TimeoutError, aiohttp.ClientError) as error:
            raise uploads.fail(transport_outcome(error, "X"), "X") from error
        return media_id

    async def _media(self, fields: dict[str, str], data: bytes | None = None) -> Any:
        form = aiohttp.FormData(fields, default_to_multipart=True)
        if data is not None:
            form.add_field("media", io.BytesIO(data), filename="media", content_type="application/octet-stream")
        response = await self._api().request("POST", "/2/media/upload", form=form, user_auth=True)
        body = await response.text()  # APPEND answers 204, with no body
        return json.loads(body) if body else {}

    async def edit(self, remote_id: str, text: str) -> Outcome:
        return Permanent("X cannot edit a post: retract it and post again.")

    async def delete(self, remote_id: str) -> Outcome:
        try:
            await self._api().delete_tweet(remote_id, user_auth=True)
        except tweepy.HTTPException as error:
            if error.response.status == 404:
                return Sent(remote_id, None)  # already gone
            return _classify(error, self.env)
        except Exception as error:
            return transport_outcome(error, "X")
        return Sent(remote_id, None)

    async def find(self, part: Part, since: float) -> FindResult:
        try:
            if self._user_id is None:
                me = await self._api().get_me(user_auth=True)
                self._user_id = str(me.data.id)
            page = await self._api().get_users_tweets(
                self._user_id,
                user_auth=True,
                max_results=100,
                start_time=datetime.fromtimestamp(int(since), tz=UTC),
                tweet_fields=["created_at", "referenced_tweets"],
            )
        except tweepy.HTTPException as error:
            outcome = _classify(error, self.env)
            if isinstance(outcome, Retry):
                return outcome
            return Unprovable(
                f"The post may or may not be on X, and X would not let the bot read the account's recent "
                f"posts to check ({error.response.status}): look at the account before posting it by hand."
            )
        except Exception as error:
            transport_outcome(error, "X")
            return Retry("could not reach X to check whether the post landed")
        for tweet in page.data or []:
            replied_to = {ref.id for ref in (tweet.referenced_tweets or []) if ref.type == "replied_to"}
            if _same_text(part.text, tweet.text) and (
                part.reply_to is None or int(part.reply_to) in replied_to or part.reply_to in replied_to
            ):
                return Sent(str(tweet.id), f"https://x.com/i/web/status/{tweet.id}")
        return None

    async def prepare(self) -> None:
        return None

    def replies_note(self) -> str:
        return _REPLY_NOTES[self.replies]

    def pace_key(self) -> str:
        return f"x:{self.name}"

    def limit_key(self) -> str:
        return f"x:{self.name}"  # limits are per account

    def describe(self) -> str:
        return f"X account via {self.host} (key {_mask(self._credentials['consumer_key'])})"

    async def close(self) -> None:
        await self._session.close()


def _mask(value: str) -> str:
    return f"{value[:3]}…" if len(value) > 6 else "…"
