"""When the next call to a network may go: the pace a platform publishes, and the pause it asks for.

Three rules, each from the platforms' own limits:
- posts to one place are spaced by `limits.min_interval` (Slack: about one message a second per
  channel), counted from the end of the previous post so latency cannot bunch two together;
- calls sharing a `limit_key` (one workspace, tenant or account) start at most `limits.rate` in any
  second where the platform publishes such a figure (Teams: 50 a second per app per tenant). A call
  counts from when its answer came back, and while it is unanswered it counts as now: the network
  saw it at some moment in between, so a window measured this way never overlaps the network's own,
  whatever the latency or its jitter;
- once a network answers "come back in T" (a 429's `Retry-After`, X's reset time), every call
  sharing that key waits until then, instead of each one in flight finding out with its own 429.
Slack publishes no workspace-wide figure ("several hundred messages per minute"), so there the
third rule alone keeps a large fan-out to the pace the workspace allows.

Where several instances share a PostgreSQL database, each rule holds across them (`Store` shares it): a post
to a place also reserves its start in the database after the last one any instance reserved; a pause one
instance is asked for reaches the others at once (NOTIFY); and a published rate is shared out among the
instances alive, so that together they never go faster than one may.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from relay.destination import Destination
from relay.store import Store

# `limits.rate` is per second. Counted from answers, calls of two windows reach the network more than a
# second apart whatever the latency, so the window needs nothing to spare.
RATE_WINDOW = 1.0


@dataclass
class _Call:
    """One call counted against a network's rate: until it is answered, it may still be on its way."""

    answered: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def answer(self, at: float) -> None:
        self.answered = at
        self.done.set()


class Pacer:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self.instances = 1  # how many processes share the networks' rates (see `Store.alive`)
        self._place_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last_post: dict[str, float] = {}
        self._counting: dict[str, list[_Call]] = {}  # per network, the calls its rate still counts
        self._queues: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)  # per network, for its rate
        self._held_until: dict[str, float] = {}

    async def hold(self, destination: Destination, seconds: float) -> None:
        """The network asked for a pause: no call sharing this destination's key starts before it ends, in
        any process."""
        until = self.clock() + seconds
        self.held(destination.limit_key(), until)
        await self.store.pause(destination.limit_key(), until)

    def held(self, key: str, until: float) -> None:
        """A pause asked for here or heard of from another process."""
        self._held_until[key] = max(self._held_until.get(key, 0.0), until)

    def held_until(self, destination: Destination) -> float:
        """When the network's last asked-for pause ends (in the past: no pause)."""
        return self._held_until.get(destination.limit_key(), 0.0)

    @asynccontextmanager
    async def call(self, destination: Destination) -> AsyncIterator[None]:
        """Around one call (a deletion, an edit): the network's pause and rate."""
        counted = await self._turn(destination)
        try:
            yield
        finally:
            if counted is not None:
                counted.answer(self.clock())

    @asynccontextmanager
    async def post(self, destination: Destination) -> AsyncIterator[None]:
        """Around one post: `call`'s waits, and the spacing of posts to the same place."""
        interval = destination.limits.min_interval
        if not interval:
            async with self.call(destination):
                yield
            return
        key = destination.pace_key()
        async with self._place_locks[key]:
            wait = self._last_post.get(key, 0.0) + interval - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            start = await self.store.reserve(key, interval, self.clock())
            if (wait := start - self.clock()) > 0:  # another process posted there just now
                await asyncio.sleep(wait)
            try:
                async with self.call(destination):
                    yield
            finally:
                self._last_post[key] = self.clock()

    async def _turn(self, destination: Destination) -> _Call | None:
        """Wait out the network's pause and for room under its rate; the call, counted, if it has a rate.
        Callers wait their turn in order: only the first looks, instead of every one of them recounting
        the window each time any call is answered."""
        key = destination.limit_key()
        rate = max(1, int(destination.limits.rate / self.instances)) if destination.limits.rate else 0
        counting = self._counting.setdefault(key, [])
        async with self._queues[key]:
            while True:
                if (held := self._held_until.get(key, 0.0) - self.clock()) > 0:
                    await asyncio.sleep(held)  # then looked at again: a later 429 may have moved the pause
                    continue
                if not rate:
                    return None
                since = self.clock() - RATE_WINDOW
                # Only what is still in the window stays; an unanswered call stays however old it is.
                counting[:] = [c for c in counting if c.answered is None or c.answered > since]
                if len(counting) < rate:
                    counted = _Call()
                    counting.append(counted)
                    return counted
                answered = [c.answered for c in counting if c.answered is not None]
                timeout = min(answered) - since if answered else None  # until the oldest answer leaves
                unanswered = next((c for c in counting if c.answered is None), None)  # the longest on its way
                if unanswered is None:
                    await asyncio.sleep(timeout or 0.0)
                    continue
                with contextlib.suppress(TimeoutError):  # asyncio.timeout keeps a cancellation (see dispatcher)
                    async with asyncio.timeout(timeout):
                        await unanswered.done.wait()
