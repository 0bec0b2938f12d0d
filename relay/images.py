"""Images with a broadcast: cleaned once when the leader attaches them, fitted to each network's limits.

A photo from a phone carries where it was taken (EXIF GPS), the camera's serial number and more: every
image is decoded and encoded again by Pillow before anything is stored, so nothing but its pixels and its
colour profile survives (the orientation tag is applied to the pixels first, since it goes too; the ICC
profile stays, or a phone's wide-gamut photo would show washed out). Fitting is deterministic and
done the same way for the preview and for the delivery, from the same stored bytes and the same limits:
what the leader approved is what is uploaded. An image is resized or converted only where a network's
limit requires it; otherwise it goes as stored.

The stored images live in their own table, from the leader's request until every post of the broadcast
is final (`drop_when_final`): a PaaS disk is not a disk, so they are in the database, and only as long
as they are needed.
"""

from __future__ import annotations

import asyncio
import functools
import io
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import PIL.Image
from PIL import ImageOps

from relay.destination import Image, ImageLimits
from relay.render import InputError, Rendering
from relay.store import Connection, Store

# Slack's file_input takes at most 10 files, and X, Mastodon and Bluesky at most 4 on one post; a
# broadcast is one post, so 4 is the most that could ever go anywhere whole.
MAX_IMAGES = 4
# What a leader may attach: a phone's full-size photo (12 MB and more) must be accepted and fitted.
MAX_ATTACHED_BYTES = 30_000_000
# Pillow refuses to decode past twice its own bomb limit; a photo has far fewer pixels than this.
MAX_ATTACHED_PIXELS = 100_000_000
MAX_ALT = 2000  # the longest alt text any destination keeps (Bluesky's app: 2,000 characters)

# What Pillow reads here and the MIME type it is stored as.
_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
_NAMES = {mime: name for name, mime in _FORMATS.items()}
_QUALITY = 90  # JPEG quality of a cleaned or fitted photo: no visible loss, a fraction of a camera's size


@dataclass(frozen=True)
class Attachment:
    """An image as the leader attached it (raw bytes from the chat surface) with its alt text."""

    data: bytes = field(repr=False)
    alt: str = ""
    name: str = ""  # the file's name, for messages


@dataclass(frozen=True)
class Fitted:
    """One image as a destination will receive it, and what was done to it, in words."""

    image: Image
    note: str | None  # "resized from 4000×3000 (12.1 MB)"; None when it goes as stored


def clean(attachment: Attachment, number: int) -> Image:
    """The attachment's pixels only, re-encoded in its own format; refused with a message the leader can act on."""
    what = f"Image {number}{f' ({attachment.name})' if attachment.name else ''}"
    if len(attachment.data) > MAX_ATTACHED_BYTES:
        raise InputError(f"{what} is {_mb(len(attachment.data))}; attach images of at most {_mb(MAX_ATTACHED_BYTES)}.")
    alt = " ".join(attachment.alt.split())
    if len(alt) > MAX_ALT:
        raise InputError(f"The alt text of {what.lower()} is {len(alt):,} characters; keep it under {MAX_ALT:,}.")
    try:
        with PIL.Image.open(io.BytesIO(attachment.data)) as opened:
            kind = opened.format or ""
            if kind not in _FORMATS:
                raise InputError(f"{what} is not a JPEG, PNG, GIF or WebP image: attach it in one of those.")
            if opened.width * opened.height > MAX_ATTACHED_PIXELS:
                raise InputError(f"{what} is {opened.width}×{opened.height} pixels: attach a smaller one.")
            if getattr(opened, "n_frames", 1) > 1:
                raise InputError(f"{what} is animated; the relay sends still images only.")
            pixels = ImageOps.exif_transpose(opened)
            pixels.info = {"icc_profile": opened.info["icc_profile"]} if opened.info.get("icc_profile") else {}
    except InputError:
        raise
    except PIL.UnidentifiedImageError as error:
        raise InputError(f"{what} is not a JPEG, PNG, GIF or WebP image: attach it in one of those.") from error
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as error:
        raise InputError(f"{what} could not be read as an image ({type(error).__name__}).") from error
    data = _encode(pixels, kind, pixels.info.get("icc_profile"))
    return Image(data=data, mime=_FORMATS[kind], width=pixels.width, height=pixels.height, alt=alt)


def _encode(pixels: PIL.Image.Image, kind: str, icc: bytes | None) -> bytes:
    """Pixels into a file of `kind` with their colour profile and nothing else (Pillow writes metadata
    only when asked)."""
    out = io.BytesIO()
    profile = {"icc_profile": icc} if icc else {}
    if kind == "JPEG":
        pixels = pixels if pixels.mode in ("RGB", "L") else pixels.convert("RGB")
        pixels.save(out, "JPEG", quality=_QUALITY, optimize=True, **profile)
    elif kind == "WEBP":
        pixels.save(out, "WEBP", quality=_QUALITY, **profile)
    elif kind == "PNG":
        pixels.save(out, "PNG", optimize=True, **profile)
    else:
        pixels.save(out, kind, optimize=True)
    return out.getvalue()


@functools.lru_cache(maxsize=64)
def fit(image: Image, limits: ImageLimits) -> Fitted:
    """The image within `limits`: converted where its format is not taken, scaled down where its pixels or
    its size are too many, as it is otherwise. Cached: the preview and each delivery ask for the same one."""
    kind = _NAMES[image.mime]
    target = kind
    if image.mime not in limits.formats:
        target = "PNG" if _has_alpha(image) and "image/png" in limits.formats else "JPEG"
    scale = 1.0
    if limits.max_pixels and image.width * image.height > limits.max_pixels:
        scale = math.sqrt(limits.max_pixels / (image.width * image.height))
    if limits.max_side and max(image.width, image.height) * scale > limits.max_side:
        scale = limits.max_side / max(image.width, image.height)
    if target == kind and scale == 1.0 and len(image.data) <= limits.max_bytes:
        return Fitted(image, None)
    with PIL.Image.open(io.BytesIO(image.data)) as opened:
        icc = opened.info.get("icc_profile")
        pixels = opened.convert("RGBA" if _has_alpha(image) and target != "JPEG" else "RGB")
    data, size = _encode(pixels, target, icc), pixels.size
    for _ in range(12):  # each round shrinks by at least 10%: a 30 MB photo fits 1 MB well within it
        if scale < 1.0 or len(data) > limits.max_bytes:
            if len(data) > limits.max_bytes:
                scale *= min(0.9, math.sqrt(limits.max_bytes / len(data)) * 0.95)
            size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
            data = _encode(pixels.resize(size, PIL.Image.Resampling.LANCZOS), target, icc)
        if len(data) <= limits.max_bytes:
            break
    fitted = replace(image, data=data, mime=_FORMATS[target], width=size[0], height=size[1])
    done = []
    if target != kind:
        done.append(f"converted from {kind} to {target}")
    if size != (image.width, image.height):
        done.append(f"resized from {image.width}×{image.height} to {size[0]}×{size[1]}")
    elif len(data) != len(image.data):
        done.append("compressed")
    return Fitted(fitted, f"{', '.join(done)} ({_mb(len(image.data))} → {_mb(len(data))})")


def _has_alpha(image: Image) -> bool:
    return image.mime in ("image/png", "image/webp", "image/gif")


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def describe(rendering: Rendering, images: Sequence[Image], limits: ImageLimits | None, kind_name: str) -> Rendering:
    """The rendering with, per image, what this destination will receive; an error where one cannot go
    (no images at all, too many, no alt text where the audience is public, alt text too long)."""
    if not images:
        return rendering
    destination = rendering.destination
    problem = None
    notes: list[str] = []
    if limits is None:
        problem = f"{destination} ({kind_name}) cannot carry images: choose an audience without it, or send text only."
    elif limits.refused:
        problem = f"{destination} cannot carry images now: {limits.refused}."
    elif len(images) > limits.max_count:
        problem = (
            f"{destination} takes at most {limits.max_count} image{'s' * (limits.max_count > 1)} on a post, "
            f"and {len(images)} are attached: remove {len(images) - limits.max_count}."
        )
    elif limits.max_text is not None and any(len(part) > limits.max_text for part in rendering.parts):
        problem = (
            f"With images, a post to {destination} holds at most {limits.max_text:,} characters: shorten the "
            "message, or send the images without it."
        )
    else:
        for number, image in enumerate(images, start=1):
            if limits.alt_required and not image.alt:
                problem = f"Image {number} has no alt text, which {destination} needs: describe what it shows."
                break
            if limits.alt_length is not None and len(image.alt) > limits.alt_length:
                problem = (
                    f"The alt text of image {number} is {len(image.alt):,} characters; {destination} keeps at "
                    f"most {limits.alt_length:,}. Shorten it."
                )
                break
            fitted = fit(image, limits)
            notes.append(f"image {number}: {fitted.note or 'as attached'}")
    error = " ".join(filter(None, (rendering.error, problem)))
    return replace(rendering, images=tuple(notes), error=error or None)


def for_part(images: Sequence[Image], limits: ImageLimits | None) -> tuple[Image, ...]:
    """What a delivery uploads: each stored image fitted as the preview showed."""
    if limits is None:
        return ()
    return tuple(fit(image, limits).image for image in images)


def insert(conn: Connection, broadcast_id: str, images: Sequence[Image]) -> None:
    """Inside the request's transaction: the cleaned images, in the order attached. Most broadcasts carry
    none, and an empty batch still costs PostgreSQL's driver a pipeline."""
    if not images:
        return
    conn.executemany(
        "INSERT INTO broadcast_images (broadcast_id, position, mime, width, height, alt, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(broadcast_id, n, i.mime, i.width, i.height, i.alt, i.data) for n, i in enumerate(images)],
    )


class Loaded:
    """The images of the broadcasts going out, read once each: a broadcast to a thousand channels holds one
    copy of its images, not one per delivery in flight. What is stored for a broadcast never changes."""

    def __init__(self, store: Store, keep: int = 4) -> None:
        self.store = store
        self.keep = keep
        self._held: OrderedDict[str, asyncio.Task[tuple[Image, ...]]] = OrderedDict()

    async def of(self, broadcast_id: str) -> tuple[Image, ...]:
        task = self._held.get(broadcast_id)
        if task is None:
            task = self._held[broadcast_id] = asyncio.create_task(load(self.store, broadcast_id))
            while len(self._held) > self.keep:
                self._held.popitem(last=False)
        self._held.move_to_end(broadcast_id)
        try:
            return await asyncio.shield(task)
        except Exception:
            self._held.pop(broadcast_id, None)  # the database was away: the next delivery reads again
            raise


async def load_one(store: Store, broadcast_id: str, position: int) -> Image | None:
    """One stored image (as attached, cleaned), or None once it has left the database."""

    def run(conn: Connection) -> Image | None:
        r = conn.execute(
            "SELECT mime, width, height, alt, data FROM broadcast_images WHERE broadcast_id = ? AND position = ?",
            (broadcast_id, position),
        ).fetchone()
        if r is None:
            return None
        return Image(data=bytes(r["data"]), mime=r["mime"], width=r["width"], height=r["height"], alt=r["alt"])

    return await store.call(run)


async def load(store: Store, broadcast_id: str) -> tuple[Image, ...]:
    def run(conn: Connection) -> tuple[Image, ...]:
        rows = conn.execute(
            "SELECT mime, width, height, alt, data FROM broadcast_images WHERE broadcast_id = ? ORDER BY position",
            (broadcast_id,),
        ).fetchall()
        return tuple(
            Image(data=bytes(r["data"]), mime=r["mime"], width=r["width"], height=r["height"], alt=r["alt"])
            for r in rows
        )

    return await store.call(run)


# A broadcast's images are needed while a post of it may still be made: a draft or a request waiting, an
# approved broadcast with a post pending or going out. And while a Teams post of it stands: a Teams card
# names its images by URL and Teams fetches them whenever it shows the card (learn.microsoft.com, "Types
# of cards": images are linked, not uploaded), so they are served until that post is retracted. Threads
# copies an image when its container is made, and every other network takes an upload.
_NOT_NEEDED = (
    "DELETE FROM broadcast_images WHERE broadcast_id = ? AND NOT EXISTS (SELECT 1 FROM broadcasts WHERE id = ?"
    " AND state IN ('draft', 'pending')) AND NOT EXISTS (SELECT 1 FROM deliveries WHERE broadcast_id = ?"
    " AND action = 'post' AND state IN ('pending', 'sending')) AND NOT EXISTS (SELECT 1 FROM deliveries p"
    " WHERE p.broadcast_id = ? AND p.action = 'post' AND p.kind = 'teams' AND p.state = 'sent' AND p.dry_run = 0"
    " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.broadcast_id = p.broadcast_id"
    " AND d.destination = p.destination AND d.action = 'delete' AND d.state = 'sent'))"
)


def drop_when_final(conn: Connection, broadcast_id: str) -> None:
    """Inside any transaction that may have ended the last post of a broadcast, the broadcast itself, or
    the retraction of a Teams post. A broadcast without images (most) is looked at no further: on
    PostgreSQL, reading every sibling delivery in each outcome's serializable transaction made the
    outcomes of one fan-out conflict with each other and start again."""
    if conn.execute("SELECT 1 FROM broadcast_images WHERE broadcast_id = ? LIMIT 1", (broadcast_id,)).fetchone():
        # The last two outcomes of a broadcast, committed side by side by the outbox's read-committed writes
        # (`Store.write`), would each see the other's post still going, and both keep the images: writing the
        # broadcast's row makes them take turns, and the second one's next statement sees the first's.
        conn.execute("UPDATE broadcasts SET expires_at = expires_at WHERE id = ?", (broadcast_id,))
        conn.execute(_NOT_NEEDED, (broadcast_id, broadcast_id, broadcast_id, broadcast_id))


def drop_unconfirmed(conn: Connection, now: float) -> None:
    """The images of drafts and requests left to expire (a broadcast is marked expired only when someone
    acts on it again, which may be never). Only where there are images to look at: this reads the
    broadcasts table whole, which in a serializable transaction beside others writing broadcasts makes them
    start again (see `Broadcasts.request`)."""
    if conn.execute("SELECT 1 FROM broadcast_images LIMIT 1").fetchone():
        conn.execute(
            "DELETE FROM broadcast_images WHERE broadcast_id IN (SELECT id FROM broadcasts"
            " WHERE state IN ('draft', 'pending') AND expires_at <= ?)",
            (now,),
        )
