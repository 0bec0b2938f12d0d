"""The worker that empties the outbox: claims due deliveries, calls adapters, records outcomes.

Network calls happen outside any transaction. Calls to one network are bounded by its
`limits.concurrency`, and posts to one place (a Slack channel) are spaced by `limits.min_interval`.
An outcome that may have landed is never posted again on a guess: the next attempt first asks the
adapter to find it, unless the network honours an idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from relay import outbox
from relay.destination import Ambiguous, Destination, Part, Permanent, Retry, Sent, Unprovable
from relay.model import Delivery, DeliveryState
from relay.store import Store

log = logging.getLogger(__name__)

DRY_RUN_ID = "dry-run"
REPORTS_REFRESHED_AT_START = 24 * 3600.0  # seconds of recent activity whose reports are redrawn at start-up


class Dispatcher:
    def __init__(
        self,
        store: Store,
        destinations: Mapping[str, Destination],
        on_change: Callable[[str], None] = lambda broadcast_id: None,
        clock: Callable[[], float] = time.time,
        retry: outbox.RetryPolicy = outbox.DEFAULT_RETRY,
    ) -> None:
        self.store = store
        self.retry = retry
        self.destinations = destinations
        self.on_change = on_change
        self.clock = clock
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._limits = {
            d.limit_key(): asyncio.Semaphore(d.limits.concurrency) for d in destinations.values()
        }  # one per workspace, tenant or account
        self._pace_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last_post: dict[str, float] = {}

    def poke(self) -> None:
        """New work was committed: look now instead of at the next timer."""
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: resume what a previous process left, then serve the queue."""
        recovered = await outbox.recover(self.store, self.clock())
        if recovered:
            log.warning("resuming %d deliveries that were in flight when the bot stopped", recovered)
        for broadcast_id in await outbox.recently_active(self.store, self.clock() - REPORTS_REFRESHED_AT_START):
            self.on_change(broadcast_id)
        try:
            while True:
                self._wake.clear()
                capacity = max(1, 64 - len(self._tasks))
                for delivery in await outbox.claim_due(self.store, self.clock(), capacity):
                    task = asyncio.create_task(self._deliver(delivery))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                await self._sleep_until_due()
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _sleep_until_due(self) -> None:
        due = await outbox.next_due(self.store)
        timeout = None if due is None else max(0.0, due - self.clock())
        if timeout == 0.0:
            await asyncio.sleep(0)  # let running deliveries record before claiming again
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            await self._attempt(delivery)
        except Exception:  # a bug must not kill the worker; the lease makes the row come back
            log.exception("delivery %s to %s crashed", delivery.id, delivery.destination)
            await outbox.retry_at(
                self.store,
                delivery,
                self.clock() + self.retry.delay(delivery.attempts, None),
                "an internal error interrupted this delivery",
                check_first=True,
                now=self.clock(),
            )
        finally:
            self.on_change(delivery.broadcast_id)
            self.poke()

    async def _attempt(self, delivery: Delivery) -> None:
        destination = self.destinations.get(delivery.destination)
        if destination is None:
            await self._finish(delivery, DeliveryState.FAILED, "this destination is no longer in relay.toml")
            return
        if delivery.action == "delete":
            await self._take_back(delivery, destination)
            return
        if delivery.action.startswith("edit-"):
            await self._correct(delivery, destination)
            return
        if delivery.dry_run:
            for _ in delivery.parts[len(delivery.posted) :]:
                await outbox.record_part(self.store, delivery.id, DRY_RUN_ID, None, self.clock())
            await self._finish(delivery, DeliveryState.SENT, None)
            return
        await self._post(delivery, destination)

    async def _post(self, delivery: Delivery, destination: Destination) -> None:
        """Post the parts not yet posted, one by one, each recorded as it lands; look first where the
        last attempt may have landed and the network would not recognise a repeat."""
        self.on_change(delivery.broadcast_id)  # the report shows it as sending
        posted = list(delivery.posted)
        check_first = delivery.check_first
        async with self._limits[destination.limit_key()]:
            for index in range(len(posted), len(delivery.parts)):
                if await outbox.retracted(self.store, delivery.broadcast_id):
                    gone = f"; {len(posted)} of {len(delivery.parts)} parts had gone out" if posted else ""
                    await self._finish(delivery, DeliveryState.CANCELLED, f"retracted before it was sent{gone}")
                    return
                part = Part(
                    text=delivery.parts[index],
                    index=index,
                    total=len(delivery.parts),
                    key=f"{delivery.broadcast_id}-{delivery.id}-{index}",
                    reply_to=posted[-1] if posted else None,
                    root=posted[0] if posted else None,
                    created_at=delivery.first_attempt_at or self.clock(),
                )
                age = self.clock() - (delivery.first_attempt_at or self.clock())
                if check_first and age >= destination.idempotency_window:
                    found = await destination.find(part, since=(delivery.first_attempt_at or 0) - 60)
                    if isinstance(found, Unprovable):
                        await self._finish(delivery, DeliveryState.UNKNOWN, found.reason)
                        return
                    if isinstance(found, Retry):
                        await self._retry(delivery, found, check_first=True)
                        return
                    if isinstance(found, Sent):
                        await outbox.record_part(self.store, delivery.id, found.remote_id, found.link, self.clock())
                        posted.append(found.remote_id)
                        check_first = False
                        continue
                async with self._paced(destination):
                    outcome = await destination.publish(part)
                check_first = False
                if isinstance(outcome, Sent):
                    await outbox.record_part(self.store, delivery.id, outcome.remote_id, outcome.link, self.clock())
                    posted.append(outcome.remote_id)
                elif isinstance(outcome, Permanent):
                    await self._finish(delivery, DeliveryState.FAILED, outcome.reason)
                    return
                elif isinstance(outcome, Ambiguous):
                    await self._retry(delivery, _as_retry(outcome), check_first=True)
                    return
                else:
                    await self._retry(delivery, outcome, check_first=False)
                    return
        await self._finish(delivery, DeliveryState.SENT, None)

    async def _correct(self, delivery: Delivery, destination: Destination) -> None:
        """An edit: put the corrected text in place of the staff post its twin made."""
        post = await outbox.twin(self.store, delivery)
        if not post.posted:
            await self._finish(delivery, DeliveryState.FAILED, "the post it corrects never went out")
            return
        if delivery.dry_run:
            await self._finish(delivery, DeliveryState.SENT, None)
            return
        async with self._limits[destination.limit_key()]:
            outcome = await destination.edit(post.posted[0], delivery.parts[0])
        if isinstance(outcome, Sent):
            await self._finish(delivery, DeliveryState.SENT, None)
        elif isinstance(outcome, Permanent):
            await self._finish(delivery, DeliveryState.FAILED, outcome.reason)
        else:  # replacing a text twice is harmless: a lost answer is simply retried
            await self._retry(delivery, _as_retry(outcome), check_first=False)

    async def _take_back(self, delivery: Delivery, destination: Destination) -> None:
        """A retraction: delete every part its twin post put out, the last first (replies before roots)."""
        post = await outbox.twin(self.store, delivery)
        done = set(delivery.posted)
        for remote_id in reversed(post.posted):
            if remote_id in done or remote_id == DRY_RUN_ID:
                continue
            async with self._limits[destination.limit_key()]:
                outcome = await destination.delete(remote_id)
            if isinstance(outcome, Sent):
                await outbox.record_part(self.store, delivery.id, remote_id, None, self.clock())
            elif isinstance(outcome, Permanent):
                await self._finish(delivery, DeliveryState.FAILED, outcome.reason)
                return
            else:  # deleting again is harmless: a lost answer is simply retried
                await self._retry(delivery, _as_retry(outcome), check_first=False)
                return
        if post.state is DeliveryState.UNKNOWN:
            await self._finish(
                delivery,
                DeliveryState.UNKNOWN,
                "a part whose fate was never known may still be there: check by hand",
            )
            return
        await self._finish(delivery, DeliveryState.SENT, None)

    @asynccontextmanager
    async def _paced(self, destination: Destination) -> AsyncIterator[None]:
        """Space posts to one place by the network's minimum interval (Slack: about one a second),
        counted from the end of the previous post, so latency cannot bunch two together."""
        interval = destination.limits.min_interval
        if not interval:
            yield
            return
        key = destination.pace_key()
        async with self._pace_locks[key]:
            wait = self._last_post.get(key, 0.0) + interval - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._last_post[key] = self.clock()

    async def _retry(self, delivery: Delivery, outcome: Retry, check_first: bool) -> None:
        now = self.clock()
        delay = self.retry.delay(delivery.attempts, outcome.after)
        if self.retry.exhausted(delivery.attempts, delivery.first_attempt_at or now, now + delay):
            final = DeliveryState.UNKNOWN if check_first else DeliveryState.FAILED
            await self._finish(delivery, final, f"gave up after {delivery.attempts} attempts: {outcome.reason}")
            return
        log.info("delivery %s to %s: retry in %.1fs (%s)", delivery.id, delivery.destination, delay, outcome.reason)
        await outbox.retry_at(self.store, delivery, now + delay, outcome.reason, check_first, now)

    async def _finish(self, delivery: Delivery, state: DeliveryState, error: str | None) -> None:
        log.info(
            "delivery %s to %s: %s%s", delivery.id, delivery.destination, state.value, f" ({error})" if error else ""
        )
        await outbox.finish(self.store, delivery, state, error, self.clock())


def _as_retry(outcome: Retry | Ambiguous) -> Retry:
    """For a call that is harmless to repeat (an edit, a deletion), a lost answer is just another retry."""
    return outcome if isinstance(outcome, Retry) else Retry(outcome.reason)
