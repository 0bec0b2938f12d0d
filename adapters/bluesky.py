"""Bluesky as a destination: records written to the account's repository on its PDS (AT Protocol).

Each part's record key is chosen before the first attempt, from the delivery's own stable data, so a
retry writes the same key and can never create a second post. Links, #tags and @mentions become facets
with UTF-8 byte offsets, which is what the lexicon counts in; so do the words the renderer linked to a URL
(a Slack `<url|label>`, a shortened long link), which travel marked inside the part's text. One-way mode
is a threadgate (who may reply) and a postgate (no quoting), written with the post in one atomic call.
The session is created once and refreshed, never re-created per post: login is rate limited.
A post without images carries a card for its first link (`app.bsky.embed.external`), which Bluesky shows
only when the poster sends it (relay/link_cards.py); its image is uploaded like any other blob.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from relay import facets, images, linked, uploads
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
)
from relay.link_cards import Card, LinkCards, first_link
from relay.store import Store
from relay.transport import Answer, LazySession, client_timeout, request, server_hint, transport_outcome

log = logging.getLogger(__name__)

_HANDLE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)+$")


def _check(options: Mapping[str, Any]) -> list[tuple[str, str]]:
    if _HANDLE.match(str(options.get("handle", ""))):
        return []
    return [("handle", 'must be the account\'s handle, like "company.bsky.social" (no @)')]


SPEC = DestinationSpec(
    kind="bluesky",
    options={"handle": str},
    required=("handle",),
    secrets={"app_password": "BLUESKY_APP_PASSWORD"},
    endpoints={"pds": ("BLUESKY_PDS_URL", "https://bsky.social")},
    replies=True,
    check_options=_check,
)

# app.bsky.feed.post: text of at most 300 graphemes and 3,000 UTF-8 bytes (the lexicon's maxGraphemes and
# maxLength); links count in full.
LIMITS = Limits(
    max_length=facets.MAX_GRAPHEMES,
    max_bytes=facets.MAX_BYTES,
    counting=Counting.GRAPHEMES,
    markup=Markup.PLAIN,
    max_thread_parts=10,
    concurrency=2,
    linked_text=True,
    # app.bsky.embed.images: at most 4 images, each a blob of at most 1,000,000 bytes (the lexicon's maxLength
    # and maxSize); Bluesky's app sends at most 2,000 pixels a side and keeps 2,000 characters of alt text
    # (bluesky-social/social-app: POST_IMG_MAX, MAX_ALT_TEXT).
    images=ImageLimits(
        max_count=4,
        max_bytes=1_000_000,
        max_side=2000,
        formats=frozenset({"image/jpeg", "image/png", "image/webp"}),
        alt_length=2000,
        alt_required=True,
    ),
    link_cards=True,
)

POST = "app.bsky.feed.post"
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"


def record_key(part: Part) -> str:
    """A TID (atproto's time-ordered record key) that depends only on the part: its delivery's first
    attempt, its place in the thread, and the delivery's key. A retry computes the same one."""
    micros = int(part.created_at * 1_000_000) + part.index
    clock = zlib.crc32(part.key.rsplit("-", 1)[0].encode()) % 1024
    value = (micros << 10) | clock
    return "".join(_TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class BlueskyAccount:
    limits = LIMITS
    editable = False
    idempotency_window = float("inf")  # a record key, once written, can never be written again

    def __init__(self, config: DestinationConfig, settings: Settings, store: Store) -> None:
        self.name = config.name
        self.handle = str(config.options["handle"])
        self.pds = (settings.reveal(config.env["pds"]) or "https://bsky.social").rstrip("/")
        self.password_variable = config.env["app_password"]
        self._password = settings.reveal(config.env["app_password"])
        self.replies = config.replies
        self._http = LazySession(client_timeout(settings.http_timeout))
        self._cards = LinkCards(settings.http_timeout, settings.link_reach)
        self._access: str | None = None
        self._refresh: str | None = None
        self.did: str | None = None

    async def prepare(self) -> None:
        return None

    def replies_note(self) -> str:
        return {
            Replies.OPEN: "anyone can reply",
            Replies.RESTRICTED: "only accounts this account follows can reply (threadgate)",
            Replies.NONE: "nobody can reply or quote it (threadgate and postgate)",
        }[self.replies]

    # ---- the session ---------------------------------------------------------------------------------

    async def _xrpc(self, method: str, nsid: str, **options: Any) -> Answer:
        """An authenticated call; an expired access token is refreshed once (the call was refused, so
        repeating it cannot post twice)."""
        if self._access is None:
            failed = await self._login()
            if failed is not None:
                return failed
        answer = await self._call(method, nsid, self._access, **options)
        if answer.status in (400, 401) and answer.field("error") in ("ExpiredToken", "InvalidToken"):
            failed = await self._renew()
            if failed is not None:
                return failed
            answer = await self._call(method, nsid, self._access, **options)
        return answer

    async def _call(self, method: str, nsid: str, token: str | None, **options: Any) -> Answer:
        headers = {**options.pop("headers", {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        return await request(self._http(), method, f"{self.pds}/xrpc/{nsid}", headers=headers, **options)

    async def _login(self) -> Answer | None:
        answer = await self._call(
            "POST",
            "com.atproto.server.createSession",
            None,
            json={"identifier": self.handle, "password": self._password},
        )
        if not answer.ok:
            return answer
        self._access, self._refresh, self.did = answer.body["accessJwt"], answer.body["refreshJwt"], answer.body["did"]
        return None

    async def _renew(self) -> Answer | None:
        answer = await self._call("POST", "com.atproto.server.refreshSession", self._refresh)
        if answer.ok:
            self._access, self._refresh = answer.body["accessJwt"], answer.body["refreshJwt"]
            return None
        self._access = None
        return await self._login()

    # ---- posting ---------------------------------------------------------------------------------------

    async def publish(self, part: Part) -> Outcome:
        rkey = record_key(part)
        try:
            if self._access is None:
                failed = await self._login()
                if failed is not None:
                    return self._failure(failed)
            assert self.did is not None
            post_uri = f"at://{self.did}/{POST}/{rkey}"
            writes = await self._writes(part, rkey, post_uri)
            if part.images:
                writes[0]["value"]["embed"] = {
                    "$type": "app.bsky.embed.images",
                    "images": [await self._upload(image) for image in part.images],
                }
            elif (uri := first_link(*linked.read(part.text))) and (card := await self._cards.card(uri)):
                writes[0]["value"]["embed"] = await self._external(card)
            answer = await self._xrpc("POST", "com.atproto.repo.applyWrites", json={"repo": self.did, "writes": writes})
            if answer.ok:
                cid = answer.body["results"][0]["cid"]
                return Sent(f"{post_uri} {cid}", self._link(rkey))
            existing = await self._existing(rkey)
        except uploads.Unuploaded as failed:
            return failed.outcome
        except Exception as error:  # classified, or raised again when not a transport failure
            return transport_outcome(error, "Bluesky")
        if existing is not None:  # written by an earlier attempt whose answer was lost
            return existing
        return self._failure(answer)

    async def _upload(self, image: Image) -> dict[str, Any]:
        """The image as `app.bsky.embed.images#image` refers to it, once uploaded."""
        return {
            "image": await self._blob(image),
            "alt": image.alt,
            "aspectRatio": {"width": image.width, "height": image.height},
        }

    async def _external(self, card: Card) -> dict[str, Any]:
        """`app.bsky.embed.external`, its image fitted like an attached one. An image that will not upload
        leaves the card without it: the post is not held back for a card."""
        external: dict[str, Any] = {"uri": card.uri, "title": card.title, "description": card.description}
        if card.thumb is not None and LIMITS.images is not None:
            fitted = await asyncio.to_thread(images.fit, card.thumb, LIMITS.images)
            try:
                external["thumb"] = await self._blob(fitted.image)
            except uploads.Unuploaded as failed:
                log.info("the link card of %s goes without its image: %s", card.uri, failed)
        return {"$type": "app.bsky.embed.external", "external": external}

    async def _blob(self, image: Image) -> dict[str, Any]:
        """`com.atproto.repo.uploadBlob`. A blob no record refers to is deleted by the PDS: an upload whose
        post never came is harmless."""
        try:
            answer = await self._xrpc(
                "POST", "com.atproto.repo.uploadBlob", data=io.BytesIO(image.data), headers={"Content-Type": image.mime}
            )
        except Exception as error:
            raise uploads.fail(transport_outcome(error, "Bluesky"), "Bluesky") from error
        if not answer.ok:
            raise uploads.fail(self._failure(answer), "Bluesky")
        blob: dict[str, Any] = answer.body["blob"]
        return blob

    async def _writes(self, part: Part, rkey: str, post_uri: str) -> list[dict[str, Any]]:
        text, links = linked.read(part.text)
        record: dict[str, Any] = {"$type": POST, "text": text, "createdAt": _iso(part.created_at)}
        facets = await self._facets(text, links)
        if facets:
            record["facets"] = facets
        if part.reply_to:
            root, parent = (part.root or part.reply_to).split(" "), part.reply_to.split(" ")
            record["reply"] = {"root": {"uri": root[0], "cid": root[1]}, "parent": {"uri": parent[0], "cid": parent[1]}}
        writes = [{"$type": "com.atproto.repo.applyWrites#create", "collection": POST, "rkey": rkey, "value": record}]
        if part.index == 0 and self.replies is not Replies.OPEN:
            allow = [] if self.replies is Replies.NONE else [{"$type": "app.bsky.feed.threadgate#followingRule"}]
            gate = {
                "$type": "app.bsky.feed.threadgate",
                "post": post_uri,
                "allow": allow,
                "createdAt": record["createdAt"],
            }
            writes.append(
                {
                    "$type": "com.atproto.repo.applyWrites#create",
                    "collection": "app.bsky.feed.threadgate",
                    "rkey": rkey,
                    "value": gate,
                }
            )
        if part.index == 0 and self.replies is Replies.NONE:
            rules = [{"$type": "app.bsky.feed.postgate#disableRule"}]
            postgate = {
                "$type": "app.bsky.feed.postgate",
                "post": post_uri,
                "embeddingRules": rules,
                "createdAt": record["createdAt"],
            }
            writes.append(
                {
                    "$type": "com.atproto.repo.applyWrites#create",
                    "collection": "app.bsky.feed.postgate",
                    "rkey": rkey,
                    "value": postgate,
                }
            )
        return writes

    async def _facets(self, text: str, links: tuple[facets.Facet, ...]) -> list[dict[str, Any]]:
        """The linked words the renderer chose, then links, tags and resolvable mentions as @atproto/api
        detects them (relay/facets.py)."""
        found = []
        for facet in facets.with_links(text, links):
            start, end = facets.byte_span(text, facet)
            if facet.kind == "mention":
                did = await self._resolve(facet.value)
                if not did:
                    continue
                feature = {"$type": "app.bsky.richtext.facet#mention", "did": did}
            elif facet.kind == "link":
                feature = {"$type": "app.bsky.richtext.facet#link", "uri": facet.value}
            else:
                feature = {"$type": "app.bsky.richtext.facet#tag", "tag": facet.value}
            found.append({"index": {"byteStart": start, "byteEnd": end}, "features": [feature]})
        return found

    async def _resolve(self, handle: str) -> str | None:
        answer = await self._call("GET", "com.atproto.identity.resolveHandle", None, params={"handle": handle})
        return answer.field("did") or None

    async def _existing(self, rkey: str) -> Sent | None:
        answer = await self._xrpc(
            "GET", "com.atproto.repo.getRecord", params={"repo": self.did, "collection": POST, "rkey": rkey}
        )
        if not answer.ok:
            return None
        return Sent(f"{answer.body['uri']} {answer.body['cid']}", self._link(rkey))

    async def edit(self, remote_id: str, text: str) -> Outcome:
        return Permanent("Bluesky cannot edit a post: retract it and post again.")

    async def delete(self, remote_id: str) -> Outcome:
        """The post, and its threadgate and postgate if it had them (deleting a missing record is a no-op)."""
        rkey = remote_id.split(" ")[0].rsplit("/", 1)[1]
        try:
            for collection in (POST, "app.bsky.feed.threadgate", "app.bsky.feed.postgate"):
                answer = await self._xrpc(
                    "POST",
                    "com.atproto.repo.deleteRecord",
                    json={"repo": self.did, "collection": collection, "rkey": rkey},
                )
                if not answer.ok:
                    return self._failure(answer)
        except Exception as error:
            return transport_outcome(error, "Bluesky")
        return Sent(remote_id, None)

    async def find(self, part: Part, since: float) -> FindResult:
        try:
            return await self._existing(record_key(part))
        except Exception as error:
            transport_outcome(error, "Bluesky")
            return Retry("could not reach Bluesky to check whether the post landed")

    def _failure(self, answer: Answer) -> Outcome:
        error, message = answer.field("error"), answer.field("message")
        if answer.status == 429:
            return Retry("Bluesky rate limit reached", server_hint(answer.headers))
        if answer.status >= 500:
            return Retry(f"Bluesky answered {answer.status}", server_hint(answer.headers))
        if answer.status == 401 or error in (
            "AuthenticationRequired",
            "AccountTakedown",
            "ExpiredToken",
            "InvalidToken",
        ):
            return Permanent(
                f"Bluesky rejected the login of {self.handle} ({message or error}): create a new app password "
                f"and set {self.password_variable}."
            )
        return Permanent(f"Bluesky rejected the post ({error or answer.status}): {message or 'no reason given'}.")

    def _link(self, rkey: str) -> str:
        return f"https://bsky.app/profile/{self.handle}/post/{rkey}"

    def pace_key(self) -> str:
        return f"bluesky:{self.handle}"

    def limit_key(self) -> str:
        return f"bluesky:{self.handle}"

    def describe(self) -> str:
        return f"Bluesky account {self.handle} on {self.pds}"

    async def close(self) -> None:
        await self._http.close()
        await self._cards.close()
