"""Link cards for networks that show one only when the poster sends it (Bluesky's `app.bsky.embed.external`).

Bluesky's own app makes the card in the composer: it reads the first link of the post, fetches the page's
Open Graph title, description and image, and attaches them to that post. The relay does the same for each
post it writes (a thread's later parts too), at delivery time, as part of the attempt: the page is read
when the post goes, not when it was previewed. A post that carries images has no card (a post has one
embed). A card is a nicety: a page that cannot be had, is too big, too slow or not public gives no card,
and the post goes without one, never failing because of it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from urllib.parse import urljoin

import aiohttp

from relay import facets, images
from relay.addresses import Reach, Refused
from relay.destination import Image, Limits
from relay.pages import Pages, Unfetched
from relay.render import InputError, Rendering

log = logging.getLogger(__name__)

PATIENCE = 5.0  # seconds for the page and its image together, at most: a post is not held up for a card
MAX_PAGE = 1_000_000  # bytes of HTML read: the tags a card needs are in the page's head
# The thumbnail is read up to the PDS's default blob upload limit (@atproto/pds: blobUploadLimit, 5 MiB),
# then fitted to the network's own image limits like any attached image.
MAX_THUMB = 5 * 1024 * 1024
# The lexicon sets no length on a card's title and description; these keep a stranger's page from filling
# a record with a novel (Bluesky's app shows two lines of title and three of description).
MAX_TITLE, MAX_DESCRIPTION = 300, 1000


@dataclass(frozen=True)
class Card:
    uri: str  # the link as it is in the post
    title: str
    description: str
    thumb: Image | None  # cleaned of metadata like an attached image, not yet fitted to a network


def first_link(text: str, links: tuple[facets.Facet, ...] = ()) -> str | None:
    """The link a card is made for: the first in the post, as Bluesky's app picks it."""
    return next((facet.value for facet in facets.with_links(text, links) if facet.kind == "link"), None)


def describe(rendering: Rendering, limits: Limits, with_images: bool) -> Rendering:
    """The rendering with, per post that will try for a card, its link (the first part has none when it
    carries the broadcast's images)."""
    if not limits.link_cards:
        return rendering
    links = rendering.links or ((),) * len(rendering.parts)
    cards = tuple(
        uri
        for index, (text, spans) in enumerate(zip(rendering.parts, links, strict=True))
        if not (index == 0 and with_images) and (uri := first_link(text, spans)) is not None
    )
    return replace(rendering, cards=cards)


def note(cards: tuple[str, ...]) -> str:
    """What a preview says of the cards it will try for."""
    return "🪧 with a link card, read from the page when posted: " + " · ".join(cards)


class _Meta(HTMLParser):
    """The tags a card is made of: Open Graph's, then the page's own <title> and description."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: dict[str, str] = {}
        self._title: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and "title" not in self.found:
            self._title = []
        elif tag == "meta":
            given = dict(attrs)
            key = (given.get("property") or given.get("name") or "").strip().lower()
            if key in ("og:title", "og:description", "og:image", "og:image:url", "description"):
                self.found.setdefault(key, " ".join((given.get("content") or "").split()))

    def handle_data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._title is not None:
            self.found["title"] = " ".join("".join(self._title).split())
            self._title = None


def read_meta(html: str) -> dict[str, str]:
    """Title, description and image of a page, from its Open Graph tags or, failing them, its own."""
    parser = _Meta()
    parser.feed(html)
    parser.close()
    found = parser.found
    return {
        "title": (found.get("og:title") or found.get("title") or "")[:MAX_TITLE],
        "description": (found.get("og:description") or found.get("description") or "")[:MAX_DESCRIPTION],
        "image": found.get("og:image") or found.get("og:image:url") or "",
    }


class LinkCards:
    """Reads pages into cards. `reach` is `relay.addresses.public` in production (Settings.link_reach)."""

    def __init__(self, timeout: float, reach: Reach) -> None:
        self.patience = min(timeout, PATIENCE)
        self._pages = Pages(self.patience, reach)

    async def card(self, uri: str) -> Card | None:
        """The card for `uri`, or None when the page gives none (why is logged). The page and its image
        share `patience`: an image too slow to come leaves the card without it."""
        deadline = asyncio.get_running_loop().time() + self.patience
        try:
            async with asyncio.timeout_at(deadline):
                page = await self._pages.get(uri, MAX_PAGE, ("text/html", "application/xhtml+xml"))
            meta = read_meta(page.body.decode(page.charset or "utf-8", errors="replace"))
        except (Refused, Unfetched, aiohttp.ClientError, TimeoutError, LookupError) as error:
            log.info("no link card for %s: %s", uri, error or type(error).__name__)
            return None
        if not meta["title"] and not meta["description"]:
            log.info("no link card for %s: the page has no title or description", uri)
            return None
        thumb = await self._thumb(urljoin(page.url, meta["image"]), deadline) if meta["image"] else None
        return Card(uri, meta["title"], meta["description"], thumb)

    async def _thumb(self, url: str, deadline: float) -> Image | None:
        """The page's image, cleaned like an attached one; None when it cannot be had (the card goes without)."""
        try:
            async with asyncio.timeout_at(deadline):
                page = await self._pages.get(url, MAX_THUMB, ("image/",))
            return await asyncio.to_thread(images.clean, images.Attachment(page.body), 1)
        except (Refused, Unfetched, aiohttp.ClientError, TimeoutError, InputError) as error:
            log.info("no image for the link card of %s: %s", url, error or type(error).__name__)
            return None

    async def close(self) -> None:
        await self._pages.close()
