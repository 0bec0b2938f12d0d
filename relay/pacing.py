"""When the next call to a network may go: the pace a platform publishes, and the pause it asks for.

Three rules, each from the platforms' own limits:
- posts to one place are spaced by `limits.min_interval` (Slack: about one message a second per
  channel), counted from the end of the previous post so latency cannot bunch two together;
- calls sharing a `limit_key` (one workspace, tenant or account) start at most `limits.rate` in any
  second where the platform publishes such a figure (Teams: 50 a second per app per tenant);
- once a network answers "come back in T" (a 429's `Retry-After`, X's reset time), every call
  sharing that key waits until then, instead of each one in flight finding out with its own 429.
Slack publishes no workspace-wide figure ("several hundred messages per minute"), so there the
third rule alone keeps a large fan-out to the pace the workspace allows.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from relay.destination import Destination

RATE_WINDOW = 1.1  # seconds: `limits.rate` is per second, with 10% to spare for jitter on the way


class Pacer:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._place_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last_post: dict[str, float] = {}
        # Per network, when each of its most recent calls left (or, until it leaves, was let go).
        self._departures: dict[str, deque[list[float]]] = {}
        self._held_until: dict[str, float] = {}

    def hold(self, destination: Destination, seconds: float) -> None:
        """The network asked for a pause: no call sharing this destination's key starts before it ends."""
        key = destination.limit_key()
        self._held_until[key] = max(self._held_until.get(key, 0.0), self.clock() + seconds)

    def held_until(self, destination: Destination) -> float:
        """When the network's last asked-for pause ends (in the past: no pause)."""
        return self._held_until.get(destination.limit_key(), 0.0)

    async def call(self, destination: Destination) -> Callable[[], None]:
        """Wait until a call may go under the network's pause and rate; returns what to call the moment
        the request leaves, which the rate counts from (a write to the database may come in between)."""
        key = destination.limit_key()
        while (wait := self._held_until.get(key, 0.0) - self.clock()) > 0:
            await asyncio.sleep(wait)  # re-checked: a later 429 may have moved the pause
        rate = int(destination.limits.rate)
        if not rate:
            return lambda: None
        # At most `rate` calls leave in any window, as the platform counts them (Teams: 50 in a second), so
        # a burst goes at once; the window is a little longer than the platform's, for jitter on the way.
        recent = self._departures.setdefault(key, deque(maxlen=rate))
        while len(recent) == rate and (wait := min(left for [left] in recent) + RATE_WINDOW - self.clock()) > 0:
            await asyncio.sleep(wait)
        departure = [self.clock()]
        recent.append(departure)

        def leaving() -> None:
            departure[0] = self.clock()

        return leaving

    @asynccontextmanager
    async def post(self, destination: Destination) -> AsyncIterator[Callable[[], None]]:
        """Around one post: `call`'s waits, and the spacing of posts to the same place. Yields `call`'s
        `leaving`, to be called right before the request goes."""
        interval = destination.limits.min_interval
        if not interval:
            yield await self.call(destination)
            return
        key = destination.pace_key()
        async with self._place_locks[key]:
            wait = self._last_post.get(key, 0.0) + interval - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            leaving = await self.call(destination)
            try:
                yield leaving
            finally:
                self._last_post[key] = self.clock()
