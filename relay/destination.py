"""The contract between the core and a network: what an adapter must do, and what it may answer.

An adapter is one file in `adapters/`. It declares its limits as data (`Limits`), posts one part of a
broadcast at a time (`publish`), and, when a post's fate is unclear, looks for it (`find`). It never
retries by itself: it answers with an `Outcome` and the outbox decides, so every attempt is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from relay.config import Settings


class Counting(Enum):
    """How a network measures a text against its limit."""

    CHARACTERS = "characters"  # Unicode code points (Slack)
    GRAPHEMES = "graphemes"  # user-perceived characters, links in full (Bluesky, as @atproto/api counts)
    X_WEIGHTED = "x-weighted"  # twitter-text 3.1.0's parseTweet: most scripts 1, CJK and emoji 2, links 23
    # Mastodon's StatusLengthValidator: graphemes, each link as `url_length`, a remote mention as its local part
    MASTODON = "mastodon"
    THREADS = "threads"  # code points, links in full, an emoji as its UTF-8 bytes (relay/threads_text.py)


class Markup(Enum):
    """What the network does with the leader's Slack mrkdwn."""

    MRKDWN = "mrkdwn"  # understood as written (Slack)
    PLAIN = "plain"  # markup stripped, links and mentions turned into words
    MARKDOWN = "markdown"  # **bold**, [label](url): what Teams renders


@dataclass(frozen=True)
class ImageLimits:
    """What a network accepts as images on one post; each adapter cites where its numbers come from."""

    max_count: int  # images on one post
    max_bytes: int  # one image's file size
    formats: frozenset[str]  # MIME types it takes as they are; others are converted to JPEG (or PNG)
    max_pixels: int | None = None  # width × height
    max_side: int | None = None  # the longer side, in pixels
    alt_length: int | None = None  # characters of alt text it keeps (None: no published limit)
    alt_required: bool = False  # a public audience: a screen-reader user must be told what the image shows
    max_text: int | None = None  # with images, the text may be at most this long (Slack: text in blocks)
    # The network fetches each image from a URL the bot serves under RELAY_PUBLIC_URL (relay/image_urls.py)
    # instead of taking an upload (Threads, Teams); `Part.image_urls` then holds them.
    by_url: bool = False
    refused: str | None = None  # why no image can go there now, and the fix ("set RELAY_PUBLIC_URL …")


@dataclass(frozen=True)
class Limits:
    """A network's rules, as data the renderer and the dispatcher read."""

    max_length: int
    counting: Counting
    markup: Markup
    url_length: int | None = None  # a link counts as this many, whatever its length
    max_thread_parts: int = 1  # 1: no threads, too-long text is refused
    concurrency: int = 4  # calls in flight to this network at once
    min_interval: float = 0.0  # seconds between two posts to the same place (see `pace_key`)
    rate: float = 0.0  # calls a second the network allows per `limit_key`, where it publishes one (0: none)
    reserved: str = ""  # characters the network needs escaped with a backslash (each counts twice)
    max_bytes: int | None = None  # a limit in UTF-8 bytes besides `max_length` (Bluesky's lexicon has both)
    # Words can be shown linked to a URL (Bluesky's link facets): a Slack `<url|label>` keeps its label, and a
    # link too long for a post is shown shortened (relay/linked.py).
    linked_text: bool = False
    max_links: int | None = None  # distinct links a post may carry (Threads: 5); a thread spreads them out
    images: ImageLimits | None = None  # None: this network takes no images from the relay
    # The network shows a link's preview card only when the post carries it (Bluesky): the relay reads the
    # first link's page and sends the card (relay/link_cards.py).
    link_cards: bool = False


@dataclass(frozen=True)
class Part:
    """One post to make: a whole message, or one piece of a thread."""

    text: str
    index: int  # 0-based position in the thread
    total: int
    key: str  # stable across retries and restarts: the idempotency key / metadata marker
    reply_to: str | None  # remote id of the previous part, for threads
    root: str | None = None  # remote id of the first part, for threads
    created_at: float = 0.0  # when the delivery was first attempted: stable, for record keys and dates
    # The images this part carries (a thread's first part only), already fitted to the network's limits:
    # the same bytes the preview described. Uploaded within the attempt, so no upload id outlives it.
    images: tuple[Image, ...] = ()
    # Where the network fetches each of `images` (the same bytes), for networks that take images `by_url`.
    image_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class Image:
    """One image as it is uploaded: metadata stripped, within the network's limits."""

    data: bytes = field(repr=False)
    mime: str
    width: int
    height: int
    alt: str

    @property
    def extension(self) -> str:
        return self.mime.partition("/")[2].replace("jpeg", "jpg")


@dataclass(frozen=True)
class Sent:
    remote_id: str
    link: str | None


@dataclass(frozen=True)
class Retry:
    """The post surely did not land (rate limit, 5xx, refused connection): try again later."""

    reason: str
    after: float | None = None  # seconds the server asked us to wait, if it said


@dataclass(frozen=True)
class Ambiguous:
    """The request went out and no answer came back: it may have landed."""

    reason: str


@dataclass(frozen=True)
class Permanent:
    """Retrying cannot help; `reason` is written for the leader and names the fix."""

    reason: str


Outcome = Sent | Retry | Ambiguous | Permanent


@dataclass(frozen=True)
class Unprovable:
    """A `find` that could not tell whether the post exists."""

    reason: str


FindResult = Sent | None | Unprovable | Retry


@dataclass(frozen=True)
class Allowance:
    """What an account's daily allowance leaves for one broadcast, as last seen (Threads: 250 posts a day)."""

    warning: str | None = None  # shown in the preview: little is left
    error: str | None = None  # this broadcast cannot go out now; approval is refused


@runtime_checkable
class Rationed(Protocol):
    """A destination whose network caps posts per account per day: the preview shows what is left and
    refuses a broadcast it cannot carry, rather than a report failing after approval."""

    def allowance(self, parts: int) -> Allowance:
        """What posting `parts` posts (a thread) now would meet."""
        ...


@runtime_checkable
class RedrawsImages(Protocol):
    """A staff post whose images are part of the message the bot sends (a Teams card naming them by URL):
    an edit replaces the whole message, so a correction sends them again to keep them."""

    async def edit_with_images(
        self, remote_id: str, text: str, images: tuple[Image, ...], image_urls: tuple[str, ...]
    ) -> Outcome: ...


@dataclass(frozen=True)
class DestinationSpec:
    """What a kind of destination accepts in the TOML, and which secrets it needs from the environment."""

    kind: str
    options: Mapping[str, type] = field(default_factory=dict)  # option name → expected type
    required: tuple[str, ...] = ()  # options that must be present
    # Secrets by role → the variable that holds them by default; a destination may name another with
    # `<role>_env = "…"`, so two accounts of one network can sit side by side.
    secrets: Mapping[str, str] = field(default_factory=dict)
    # Addresses by role → (default variable, default value; None: the variable is required).
    endpoints: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    replies: bool = False  # whether a reply policy applies (a public network)
    # Problems with the options' values, as (option, message): an id in the wrong format, say.
    check_options: Callable[[Mapping[str, Any]], list[tuple[str, str]]] | None = None
    # What is missing to post for real (credentials that are not plain variables), or None.
    check_ready: Callable[[Settings], str | None] | None = None


class Destination(Protocol):
    """One configured place a broadcast goes to (a Slack channel, an X account)."""

    limits: Limits
    editable: bool  # whether posts can be corrected in place (Slack, Teams); public networks cannot
    # For how long after the first attempt re-sending a part with the same key cannot post twice
    # (Mastodon keeps an Idempotency-Key an hour; a Bluesky record key, forever; Slack, X: never).
    idempotency_window: float

    async def publish(self, part: Part) -> Outcome: ...

    async def find(self, part: Part, since: float) -> FindResult:
        """Look for `part` posted at or after `since` (epoch seconds); `None` means surely not there."""
        ...

    async def prepare(self) -> None:
        """At start-up: learn what can only be asked (an instance's length limit, say); never fail."""
        ...

    def replies_note(self) -> str | None:
        """What the reply policy will be on this network, for the preview (None: not a public network)."""
        ...

    async def edit(self, remote_id: str, text: str) -> Outcome:
        """Replace a posted message's text (staff channels only: see `editable`)."""
        ...

    async def delete(self, remote_id: str) -> Outcome:
        """Take back one posted part (a retraction). Already gone counts as deleted: `Sent`; a network
        that cannot delete answers `Permanent`, saying so."""
        ...

    def pace_key(self) -> str:
        """Posts sharing a key are spaced by `limits.min_interval` (one Slack channel, say)."""
        ...

    def limit_key(self) -> str:
        """Destinations sharing a key share `limits.concurrency` (one workspace, tenant or account)."""
        ...

    def describe(self) -> str:
        """A one-line description for logs and the preview, without secrets."""
        ...

    async def close(self) -> None: ...
