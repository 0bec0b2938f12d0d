"""Images by URL, for the networks that fetch an image rather than take an upload (Threads, Teams).

Threads is given an `image_url` and downloads it itself; a Teams card names its images by URL, and Teams
fetches them to show them. So the bot serves each image it sends there, fitted for that destination, at
`RELAY_PUBLIC_URL/images/<token>.<extension>`, from the database: any instance answers, whichever made
the post. The URL holds what to serve (broadcast, position, destination) and a MAC of it whose key is
the stored image itself (SHA-256 of its bytes): no one can make the URL of an image without having that
image already, so there is no secret to configure, rotate or keep, and nothing guessable is served. An
image is served for as long as it is stored (`relay.images`: until every post of its broadcast is final,
and for Teams while a post that shows it stands), then the URL answers 404 like any forged one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from relay import images
from relay.destination import Image, ImageLimits
from relay.store import Store

_MAC_BYTES = 24  # 192 bits: unguessable


@dataclass(frozen=True)
class Where:
    """What an image URL points at: the stored image, and the destination it is fitted for."""

    broadcast_id: str
    position: int
    destination: str
    extension: str


@functools.lru_cache(maxsize=64)
def _key(stored: Image) -> bytes:
    """The stored image's digest (cached: a broadcast to a thousand Teams channels hashes it once)."""
    return hashlib.sha256(stored.data).digest()


def _mac(stored: Image, where: Where) -> bytes:
    message = f"{where.broadcast_id}\n{where.position}\n{where.destination}\n{where.extension}".encode()
    return hmac.new(_key(stored), message, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def url(base: str, stored: Image, where: Where) -> str:
    """The public URL of `stored` (as attached, cleaned) fitted for `where.destination`."""
    payload = f"{where.broadcast_id}\n{where.position}\n{where.destination}".encode()
    return f"{base.rstrip('/')}/images/{_b64(payload)}.{_b64(_mac(stored, where))}.{where.extension}"


def read(token: str) -> tuple[Where, bytes] | None:
    """What a URL's last segment claims to point at, and its MAC; None when it is not one of ours."""
    pieces = token.split(".")
    if len(pieces) != 3:
        return None
    try:
        broadcast_id, position, destination = _unb64(pieces[0]).decode().split("\n")
        mac = _unb64(pieces[1])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not position.isdigit() or len(mac) != _MAC_BYTES:
        return None
    return Where(broadcast_id, int(position), destination, pieces[2]), mac


def genuine(stored: Image, where: Where, mac: bytes) -> bool:
    """Whether the URL was made by the bot for this stored image (compared in constant time)."""
    return hmac.compare_digest(_mac(stored, where), mac)


class Served:
    """`GET /images/{token}`: the image a genuine URL points at, fitted as the destination was sent it;
    404 for anything else (a forged or altered URL, an image no longer stored, a destination gone)."""

    def __init__(self, store: Store, limits: Callable[[str], ImageLimits | None]) -> None:
        """`limits` answers a destination's image limits by its name (they may change at start-up)."""
        self.store = store
        self.limits = limits

    async def handle(self, request: web.Request) -> web.Response:
        claimed = read(request.match_info["token"])
        if claimed is None:
            return _not_found()
        where, mac = claimed
        limits = self.limits(where.destination)
        if limits is None or not limits.by_url:
            return _not_found()
        stored = await images.load_one(self.store, where.broadcast_id, where.position)
        if stored is None or not genuine(stored, where, mac):
            return _not_found()
        fitted = (await asyncio.to_thread(images.fit, stored, limits)).image
        if fitted.extension != where.extension:
            return _not_found()
        return web.Response(body=fitted.data, content_type=fitted.mime)


def _not_found() -> web.Response:
    return web.Response(status=404, text="Not found")
