"""Mastodon as a destination: `POST /api/v1/statuses` on any instance, with an Idempotency-Key.

Mastodon remembers an Idempotency-Key for an hour and answers a repeat with the status it already
made, so within that hour a post whose answer was lost is simply sent again; after it, the account's
recent statuses are searched first. The length limit is the instance's own, read at start-up.
"""

from __future__ import annotations

import html
import io
import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp

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
from relay.transport import Answer, LazySession, client_timeout, request, server_hint, transport_outcome

log = logging.getLogger(__name__)

_VISIBILITIES = ("public", "unlisted", "private")


def _check(options: Mapping[str, Any]) -> list[tuple[str, str]]:
    if options.get("visibility") in (None, *_VISIBILITIES):
        return []
    return [("visibility", f"{options['visibility']!r} is not a visibility; use one of {', '.join(_VISIBILITIES)}")]


SPEC = DestinationSpec(
    kind="mastodon",
    options={"visibility": str},
    secrets={"token": "MASTODON_ACCESS_TOKEN"},
    endpoints={"url": ("MASTODON_URL", None)},
    replies=True,
    check_options=_check,
)

# Mastodon's defaults (docs.joinmastodon.org, "Instance": configuration.statuses): 500 characters, every
# link counted as 23. An instance may allow more; `prepare` asks it. Counted as the server's
# StatusLengthValidator counts (relay/twitter_text.py): graphemes, links 23, remote mentions by local part.
# Images, Mastodon's defaults (docs.joinmastodon.org, "Instance": configuration.media_attachments and
# statuses.max_media_attachments; app/models/media_attachment.rb): 4 per status, 16 MB and 33,177,600 pixels
# (7680×4320) an image, alt text ("description") up to 1,500 characters. `prepare` reads the instance's own.
IMAGES = ImageLimits(
    max_count=4,
    max_bytes=16 * 1024 * 1024,
    max_pixels=33_177_600,
    formats=frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/heic", "image/avif"}),
    alt_length=1500,
    alt_required=True,
)
LIMITS = Limits(
    max_length=500,
    counting=Counting.MASTODON,
    markup=Markup.PLAIN,
    url_length=23,
    max_thread_parts=10,
    concurrency=2,
    images=IMAGES,
)

_TAG = re.compile(r"<[^>]+>")
_LINK = re.compile(r"https?://\S+")


def _plain(content: str) -> str:
    """A status's HTML content back to comparable text: links as placeholders, space folded."""
    text = html.unescape(_TAG.sub(" ", content.replace("</p><p>", "\n\n")))
    return " ".join(_LINK.sub("<link>", text).split())


class MastodonAccount:
    limits = LIMITS
    # Mastodon keeps an Idempotency-Key for one hour (docs.joinmastodon.org, "POST /api/v1/statuses");
    # a margin keeps a slow retry from arriving just after it is forgotten.
    editable = False
    idempotency_window = 50 * 60.0

    def __init__(self, config: DestinationConfig, settings: Settings, store: Store) -> None:
        self.name = config.name
        self.url = settings.reveal(config.env["url"]).rstrip("/")
        self.token_variable = config.env["token"]
        self._token = settings.reveal(config.env["token"])
        self.visibility = str(config.options.get("visibility") or "public")
        self.replies = config.replies
        self._http = LazySession(client_timeout(settings.http_timeout), {"Authorization": f"Bearer {self._token}"})

    async def prepare(self) -> None:
        """Learn the instance's own length limit and link length."""
        try:
            answer = await request(self._http(), "GET", f"{self.url}/api/v2/instance")
            statuses = answer.body["configuration"]["statuses"]
            media = answer.body["configuration"].get("media_attachments") or {}
            images = replace(
                IMAGES,
                max_count=int(statuses.get("max_media_attachments", IMAGES.max_count)),
                max_bytes=int(media.get("image_size_limit", IMAGES.max_bytes)),
                max_pixels=int(media.get("image_matrix_limit", 33_177_600)),
                formats=frozenset(media.get("supported_mime_types", IMAGES.formats)) & IMAGES.formats,
            )
            self.limits = replace(
                LIMITS,
                max_length=int(statuses["max_characters"]),
                url_length=int(statuses.get("characters_reserved_per_url", 23)),
                images=images,
            )
        except Exception as error:  # the default limit is safe on every instance
            log.warning("could not read %s's limits (%s); using 500 characters", self.name, type(error).__name__)

    def replies_note(self) -> str:
        if self.replies is Replies.OPEN:
            return "anyone can reply"
        return "Mastodon cannot restrict replies: anyone who can see the post can reply"

    async def publish(self, part: Part) -> Outcome:
        status: dict[str, Any] = {"status": part.text, "visibility": self.visibility, "in_reply_to_id": part.reply_to}
        try:
            if part.images:
                status["media_ids"] = [await self._upload(image) for image in part.images]
        except uploads.Unuploaded as failed:
            return failed.outcome
        try:
            answer = await request(
                self._http(),
                "POST",
                f"{self.url}/api/v1/statuses",
                json={k: v for k, v in status.items() if v is not None},
                headers={"Idempotency-Key": part.key},
            )
        except Exception as error:  # classified, or raised again when not a transport failure
            return transport_outcome(error, "Mastodon")
        if answer.ok:
            return Sent(str(answer.body["id"]), answer.field("url") or None)
        return self._failure(answer, part.text)

    async def _upload(self, image: Image) -> str:
        """`POST /api/v2/media` with its description; a 202 is still processing, and a status refers to it
        only once `GET /api/v1/media/:id` answers 200 (206 meanwhile) (docs.joinmastodon.org, "media")."""
        form = aiohttp.FormData()
        form.add_field("file", io.BytesIO(image.data), filename=f"image.{image.extension}", content_type=image.mime)
        form.add_field("description", image.alt)
        try:
            answer = await request(self._http(), "POST", f"{self.url}/api/v2/media", data=form)
        except Exception as error:
            raise uploads.fail(transport_outcome(error, "Mastodon"), "Mastodon") from error
        if answer.status not in (200, 202):
            raise uploads.fail(self._failure(answer), "Mastodon")
        media_id = str(answer.body["id"])

        async def processed() -> bool:
            try:
                look = await request(self._http(), "GET", f"{self.url}/api/v1/media/{media_id}")
            except Exception as error:
                raise uploads.fail(transport_outcome(error, "Mastodon"), "Mastodon") from error
            if look.status not in (200, 206):
                raise uploads.fail(self._failure(look), "Mastodon")
            return look.status == 200

        if answer.status == 202:
            await uploads.until_processed(processed, "Mastodon")
        return media_id

    async def edit(self, remote_id: str, text: str) -> Outcome:
        return Permanent("Mastodon cannot edit a post: retract it and post again.")

    async def delete(self, remote_id: str) -> Outcome:
        try:
            answer = await request(self._http(), "DELETE", f"{self.url}/api/v1/statuses/{remote_id}")
        except Exception as error:
            return transport_outcome(error, "Mastodon")
        if answer.ok or answer.status == 404:  # deleted, or already gone
            return Sent(remote_id, None)
        return self._failure(answer)

    async def find(self, part: Part, since: float) -> FindResult:
        try:
            me = await request(self._http(), "GET", f"{self.url}/api/v1/accounts/verify_credentials")
            if not me.ok:
                return self._unprovable(me)
            answer = await request(
                self._http(), "GET", f"{self.url}/api/v1/accounts/{me.body['id']}/statuses", params={"limit": "40"}
            )
        except Exception as error:
            transport_outcome(error, "Mastodon")
            return Retry("could not reach Mastodon to check whether the post landed")
        if not answer.ok:
            return self._unprovable(answer)
        wanted = _plain(html.escape(part.text))
        for status in answer.body:
            created = datetime.fromisoformat(str(status["created_at"]).replace("Z", "+00:00"))
            same_place = part.reply_to is None or str(status.get("in_reply_to_id")) == part.reply_to
            if created.timestamp() >= since and same_place and _plain(str(status.get("content", ""))) == wanted:
                return Sent(str(status["id"]), status.get("url"))
        return None

    def _unprovable(self, answer: Answer) -> FindResult:
        outcome = self._failure(answer)
        if isinstance(outcome, Retry):
            return outcome
        return Unprovable(
            f"The post may or may not be on Mastodon, and the instance would not let the bot check "
            f"({answer.status}): look at the account before posting it by hand."
        )

    def _failure(self, answer: Answer, text: str = "") -> Outcome:
        error = answer.field("error")
        if answer.status == 429:
            return Retry("Mastodon rate limit reached", server_hint(answer.headers, datetime.now(UTC).timestamp()))
        if answer.status >= 500:
            return Retry(f"Mastodon answered {answer.status}", server_hint(answer.headers))
        if answer.status in (401, 403):
            return Permanent(
                f"Mastodon rejected the access token ({error or answer.status}): renew {self.token_variable}."
            )
        if answer.status == 404:
            return Permanent("Mastodon no longer has the post this part replies to; the thread was broken.")
        if answer.status == 422 and "character limit" in str(error):
            size = twitter_text.mastodon_length(text, self.limits.url_length or twitter_text.URL_LENGTH)
            return Permanent(
                f"Mastodon refused the post as too long: {size:,} of {self.limits.max_length:,} characters by "
                f"its count ({error}). Shorten the message."
            )
        return Permanent(f"Mastodon rejected the post ({answer.status}): {error or 'no reason given'}.")

    def pace_key(self) -> str:
        return f"mastodon:{self.name}"

    def limit_key(self) -> str:
        return f"mastodon:{self.url}:{self.token_variable}"  # limits are per account per instance

    def describe(self) -> str:
        return f"Mastodon account on {self.url}"

    async def close(self) -> None:
        await self._http.close()
