"""What every HTTP adapter shares: timeouts, and the reading of transport failures and rate-limit hints.

The line that matters is whether a request may have landed. A refused or failed connection means the
request never left; a timeout or a connection dropped after sending means it may have been posted.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
import weakref
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import aiohttp

from relay.destination import Ambiguous, Retry

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """Every call is bounded: by `seconds` in all (RELAY_HTTP_TIMEOUT), and a connection that takes more
    than 5 s to open will not open at all."""
    return aiohttp.ClientTimeout(total=seconds, connect=min(5.0, seconds), sock_read=seconds)


def failure(error: BaseException, network: str) -> Retry | Ambiguous | None:
    """Classify a transport exception; None when it is not one (a bug, to be raised)."""
    if isinstance(error, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return Retry(f"could not connect to {network}")
    if isinstance(error, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return Ambiguous(f"{network} did not answer in time; the post may have gone through")
    if isinstance(error, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError)):
        return Ambiguous(f"the connection to {network} dropped before it answered; the post may have gone through")
    if isinstance(error, aiohttp.ClientError):
        return Ambiguous(f"{network} could not be reached properly ({type(error).__name__})")
    return None


def transport_outcome(error: Exception, network: str) -> Retry | Ambiguous:
    """The outcome of a call that failed in transport; anything else is a bug and is raised again."""
    classified = failure(error, network)
    if classified is None:
        raise error
    return classified


def server_hint(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: `Retry-After` (seconds or an HTTP date), or a rate-limit
    reset given as epoch seconds (X: `x-rate-limit-reset`) or as a date (Mastodon: `X-RateLimit-Reset`)."""
    now = time.time() if now is None else now
    lowered = {k.lower(): v for k, v in headers.items()}
    waits = []
    if "retry-after" in lowered:
        waits.append(_seconds_or_date(lowered["retry-after"], now, relative=True))
    for name in ("x-rate-limit-reset", "x-ratelimit-reset"):
        if name in lowered:
            waits.append(_seconds_or_date(lowered[name], now, relative=False))
    known = [w for w in waits if w is not None]
    return max(known) if known else None


def _seconds_or_date(value: str, now: float, relative: bool) -> float | None:
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        return _date(value, now)
    wait = number if relative else number - now
    return max(0.0, min(wait, 24 * 3600.0))


def _date(value: str, now: float) -> float | None:
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        try:
            stamp = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return None
    return max(0.0, stamp - now)


@dataclass(frozen=True)
class Answer:
    """A network's HTTP answer, read whole: the adapters classify it."""

    status: int
    headers: Mapping[str, str]
    body: Any  # the JSON, or the text when it is not JSON

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def field(self, *names: str) -> str:
        """The first of `names` present in a JSON object body, as text ("" when none)."""
        if isinstance(self.body, dict):
            for name in names:
                if self.body.get(name):
                    return str(self.body[name])
        return ""


async def request(session: aiohttp.ClientSession, method: str, url: str, **options: Any) -> Answer:
    """One HTTP call, no retries (the outbox retries); transport failures are raised for `transport_outcome`."""
    async with session.request(method, url, **options) as response:
        text = await response.text()
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = text
        return Answer(response.status, dict(response.headers), body)


async def read_at_most(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, or its first `limit` bytes (`StreamReader.read(n)` answers only what has arrived
    so far: a photo came through cut at its first 64 KB)."""
    data = bytearray()
    async for chunk in stream.iter_chunked(64 * 1024):
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data[:limit])


class LazySession:
    """An aiohttp session made on first use: adapters are built before the event loop runs, and a
    session belongs to the loop it was made in. Call it to get the session; close it with the adapter."""

    def __init__(self, timeout: aiohttp.ClientTimeout, headers: Mapping[str, str] | None = None) -> None:
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None

    def __call__(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout, headers=self.headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class PerLoop(Generic[K, T]):
    """One shared object per event loop and key: what every destination of one account should share (a
    thousand channels, one connection pool and one token), made in the loop it belongs to, as a session
    must be. The first destination to close takes it out (`pop`) and closes it: the app is stopping."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[K, T]] = weakref.WeakKeyDictionary()

    def get(self, key: K, make: Callable[[], T]) -> T:
        shared = self._by_loop.setdefault(asyncio.get_running_loop(), {})
        if key not in shared:
            shared[key] = make()
        return shared[key]

    def pop(self, key: K) -> T | None:
        return self._by_loop.get(asyncio.get_running_loop(), {}).pop(key, None)
