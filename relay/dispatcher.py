"""The worker that empties the outbox: claims due deliveries, calls adapters, records outcomes.

Network calls happen outside any transaction. Calls to one network are bounded by its
`limits.concurrency` and paced by `relay.pacing` (per place, per network, and after a 429).
An outcome that may have landed is never posted again on a guess: the next attempt first asks the
adapter to find it, unless the network honours an idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping

from relay import image_urls, images, outbox
from relay.destination import (
    Ambiguous,
    Destination,
    Image,
    Part,
    Permanent,
    RedrawsImages,
    Retry,
    Sent,
    Unprovable,
)
from relay.model import Delivery, DeliveryState
from relay.outbox import Landed
from relay.pacing import Pacer
from relay.store import Store, StoreError

log = logging.getLogger(__name__)

Pictures = tuple[tuple[Image, ...], tuple[str, ...]]  # images fitted for a destination, and their URLs if it fetches

DRY_RUN_ID = "dry-run"
REPORTS_REFRESHED_AT_START = 24 * 3600.0  # seconds of recent activity whose reports are redrawn at start-up
MAX_IN_FLIGHT = 64  # deliveries worked on at once for destinations of no named kind
# How often this process renews the leases it holds and takes back those another let run out: well within
# a lease, so a live process never loses one, and a dead one's deliveries wait at most a lease and this.
# It is also the timed look for work where other processes share the database: announcements (`new_work`)
# are hints, and a process that missed one finds the work at its next look.
LEASE_CHECK_EVERY = 10.0
# How long a process told to stop (SIGTERM: a deploy, a PaaS's daily restart) lets what is under way
# finish; what is left after it is taken over by another instance, or by this one's successor. Heroku
# kills 30 s after SIGTERM, and a post rarely takes more than a second.
DRAIN_SECONDS = 10.0


class Dispatcher:
    def __init__(
        self,
        store: Store,
        destinations: Mapping[str, Destination],
        on_change: Callable[[str], None] = lambda broadcast_id: None,
        clock: Callable[[], float] = time.time,
        retry: outbox.RetryPolicy = outbox.DEFAULT_RETRY,
        kinds: Mapping[str, str] | None = None,
        find: Callable[[Delivery], Awaitable[Destination | None]] | None = None,
        public_url: str | None = None,
    ) -> None:
        """`kinds` names each destination's kind of network (as its delivery rows do), so each kind is
        claimed only as fast as its networks take calls; without it, all share one pool. `find`: where a
        delivery to a destination not configured goes (a leader's own account: relay.own), or None.
        `public_url` (RELAY_PUBLIC_URL) is where networks that fetch images by URL find them."""
        self.store = store
        self.public_url = public_url
        self.retry = retry
        self.destinations = destinations
        self.find = find
        self.on_change = on_change
        self.clock = clock
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._counting: set[asyncio.Task[None]] = set()  # recounts of the instances alive (`_recount`)
        self._limits = {
            d.limit_key(): asyncio.Semaphore(d.limits.concurrency) for d in destinations.values()
        }  # one per workspace, tenant or account
        self._pacer = Pacer(store, clock)
        self._departures = outbox.Departures(store)
        self._images = images.Loaded(store)
        self._networks: defaultdict[str, dict[str, Destination]] = defaultdict(dict)  # kind → limit key → one
        for name, kind in (kinds or {}).items():
            if name in destinations:
                self._networks[kind][destinations[name].limit_key()] = destinations[name]
        self._in_flight: Counter[str] = Counter()  # deliveries being worked on, per kind ("" for the rest)
        self._held: dict[int, str] = {}  # delivery id → the token of this process's lease on it
        self._draining = False

    def _unrated(self, delivery: Delivery) -> bool:
        """Deliveries to a network with a published rate start first (False sorts first): its next window
        counts from its first answers, so they gate the whole fan-out (Teams' 50 a second per tenant), where
        the others only wait for their turn in the database."""
        return not any(d.limits.rate for d in self._networks.get(delivery.kind, {}).values())

    def _limit(self, destination: Destination) -> asyncio.Semaphore:
        """The calls in flight to one workspace, tenant or account (a leader's own: made when first used)."""
        key = destination.limit_key()
        if key not in self._limits:
            self._limits[key] = asyncio.Semaphore(destination.limits.concurrency)
        return self._limits[key]

    def poke(self) -> None:
        """Look now instead of at the next timer: work or room arrived."""
        self._wake.set()

    def new_work(self) -> None:
        """New work was committed here: look now, and tell the other processes on the database."""
        self.poke()
        if not self.store.sole:
            task = asyncio.create_task(self.store.announce())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        """Until cancelled: resume what a previous process left, then serve the queue."""
        recovered = await outbox.recover(self.store, self.clock())
        if recovered:
            log.warning("resuming %d deliveries that were in flight when the bot stopped", recovered)
        for broadcast_id in await outbox.recently_active(self.store, self.clock() - REPORTS_REFRESHED_AT_START):
            self.on_change(broadcast_id)
        self.store.listen(self.poke, self._pacer.held, self._recount)
        await self._count()
        for key, until in (await self.store.pauses(self.clock())).items():
            self._pacer.held(key, until)
        leases = asyncio.create_task(self._keep_leases(), name="leases")
        try:
            while True:
                self._wake.clear()
                room, others, reopens = self._room()
                due = None
                if not self._draining and (others > 0 or any(limit > 0 for limit in room.values())):
                    claimed, due = await outbox.claim_due(self.store, self.clock(), room, others)
                    for delivery in sorted(claimed, key=self._unrated):
                        self._start(delivery)
                await self._sleep_until(due, reopens)
        finally:
            leases.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(leases, *self._tasks, return_exceptions=True)

    async def drain(self, grace: float = DRAIN_SECONDS) -> None:
        """Take no new work, and give what is under way up to `grace` seconds to finish: a deploy or a
        restart then leaves little for another instance to look for."""
        self._draining = True
        under_way = [task for task in self._tasks if not task.done()]
        if under_way:
            log.info("stopping: %d deliveries under way get up to %.0f s to finish", len(under_way), grace)
            await asyncio.wait(under_way, timeout=grace)

    async def _keep_leases(self) -> None:
        """Renew what this process holds; take back what another process (a dead instance) let run out."""
        while True:
            await asyncio.sleep(LEASE_CHECK_EVERY)
            try:
                await self._count()
                await outbox.renew(self.store, self._held.values(), self.clock())
                if await outbox.recover(self.store, self.clock(), held=set(self._held.values())):
                    log.warning("took back deliveries of stopped processes, of run-out leases, or of lost claims")
            except StoreError as error:  # the database is away: the next look tries again
                log.warning("could not look at leases: %s", error)
            if not self.store.sole:
                self.poke()

    async def _count(self) -> None:
        """Say this process is alive, and share the networks' rates out among the instances that are."""
        self._pacer.instances = await self.store.alive(self.clock())

    def _recount(self) -> None:
        """Another instance started or stopped: share the networks' rates out anew."""
        task = asyncio.create_task(self._count())
        self._counting.add(task)
        task.add_done_callback(self._counting.discard)

    def _room(self) -> tuple[dict[str, int], int, float | None]:
        """How many more deliveries each kind of network can take now: its concurrency less what is in
        flight, none while the network asked us to wait; and when the first such wait ends."""
        now = self.clock()
        room: dict[str, int] = {}
        reopens: float | None = None
        for kind, networks in self._networks.items():
            waits = [self._pacer.held_until(destination) for destination in networks.values()]
            if min(waits) > now:
                room[kind] = 0
                reopens = min(waits) if reopens is None else min(reopens, min(waits))
            else:
                room[kind] = sum(d.limits.concurrency for d in networks.values()) - self._in_flight[kind]
        return room, MAX_IN_FLIGHT - self._in_flight[""], reopens

    def _start(self, delivery: Delivery) -> None:
        lane = delivery.kind if delivery.kind in self._networks else ""
        self._in_flight[lane] += 1
        if delivery.lease_owner is not None:
            self._held[delivery.id] = delivery.lease_owner
        task = asyncio.create_task(self._deliver(delivery))
        self._tasks.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            self._held.pop(delivery.id, None)
            self._in_flight[lane] -= 1
            self.poke()  # its room is free: only now can the loop see it

        task.add_done_callback(done)

    async def _sleep_until(self, due: float | None, reopens: float | None) -> None:
        """Until the next delivery a network can take is due, or a network's wait ends, or new work or
        room arrives (`poke`)."""
        wakes = [when for when in (due, reopens) if when is not None]
        timeout = max(0.0, min(wakes) - self.clock()) if wakes else None
        if timeout == 0.0:
            await asyncio.sleep(0)  # let running deliveries record before claiming again
            return
        # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation that arrives as the
        # event is set (a delivery ending while the app shuts down), and the loop would go on for ever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            await self._attempt(delivery)
        except outbox.LeaseLost:
            log.warning(
                "delivery %s to %s: another instance took it over; this one stops", delivery.id, delivery.destination
            )
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

    async def _attempt(self, delivery: Delivery) -> None:
        destination = self.destinations.get(delivery.destination)
        if destination is None and self.find is not None:
            destination = await self.find(delivery)
        if destination is None:
            await self._finish(
                delivery, DeliveryState.FAILED, "this destination is no longer in relay.toml, nor a connected account"
            )
            return
        if delivery.action == "delete":
            await self._take_back(delivery, destination)
            return
        if delivery.action.startswith("edit-"):
            await self._correct(delivery, destination)
            return
        if delivery.dry_run:
            posted = delivery.posted
            for _ in delivery.parts[len(posted) :]:
                posted = (*posted, DRY_RUN_ID)
                await outbox.record_part(self.store, delivery, Landed(posted), self.clock())
            await self._finish(delivery, DeliveryState.SENT, None)
            return
        await self._post(delivery, destination)

    async def _post(self, delivery: Delivery, destination: Destination) -> None:
        """Post the parts not yet posted, one by one, each recorded as it lands; look first where the
        last attempt may have landed and the network would not recognise a repeat."""
        self.on_change(delivery.broadcast_id)  # the report shows it as sending
        posted = list(delivery.posted)
        check_first = delivery.check_first
        attached: tuple[Image, ...] = ()
        urls: tuple[str, ...] = ()
        if not posted:  # a thread's images go on its first part
            attached, urls = await self._pictures(delivery, destination)
        async with self._limit(destination):
            for index in range(len(posted), len(delivery.parts)):
                part = Part(
                    text=delivery.parts[index],
                    index=index,
                    total=len(delivery.parts),
                    key=f"{delivery.broadcast_id}-{delivery.id}-{index}",
                    reply_to=posted[-1] if posted else None,
                    root=posted[0] if posted else None,
                    created_at=delivery.first_attempt_at or self.clock(),
                    images=attached if index == 0 else (),
                    image_urls=urls if index == 0 else (),
                )
                age = self.clock() - (delivery.first_attempt_at or self.clock())
                if check_first and age >= destination.idempotency_window:
                    found = await destination.find(part, since=(delivery.first_attempt_at or 0) - 60)
                    if isinstance(found, Unprovable):
                        await self._finish(delivery, DeliveryState.UNKNOWN, found.reason)
                        return
                    if isinstance(found, Retry):
                        await self._retry(delivery, destination, found, check_first=True)
                        return
                    if isinstance(found, Sent):
                        posted.append(found.remote_id)
                        await outbox.record_part(self.store, delivery, Landed(tuple(posted), found.link), self.clock())
                        check_first = False
                        continue
                async with self._pacer.post(destination):
                    # After any wait for the network's pace: a retraction since then stops it here.
                    if not await self._departures.going_out(delivery):
                        gone = f"; {len(posted)} of {len(delivery.parts)} parts had gone out" if posted else ""
                        await self._finish(delivery, DeliveryState.CANCELLED, f"retracted before it was sent{gone}")
                        return
                    outcome = await destination.publish(part)
                check_first = False
                if isinstance(outcome, Sent) and index == len(delivery.parts) - 1:
                    landed = Landed((*posted, outcome.remote_id), outcome.link)
                    await self._finish(delivery, DeliveryState.SENT, None, last_part=landed)
                    return
                if isinstance(outcome, Sent):
                    posted.append(outcome.remote_id)
                    await outbox.record_part(self.store, delivery, Landed(tuple(posted), outcome.link), self.clock())
                elif isinstance(outcome, Permanent):
                    await self._finish(delivery, DeliveryState.FAILED, outcome.reason)
                    return
                elif isinstance(outcome, Ambiguous):
                    await self._retry(delivery, destination, _as_retry(outcome), check_first=True)
                    return
                else:  # refused, so this request did not land; one whose answer was lost, unlooked for, may have
                    unproven = delivery.check_first and index == len(delivery.posted)
                    await self._retry(
                        delivery, destination, outcome, check_first=unproven and age < destination.idempotency_window
                    )
                    return
        await self._finish(delivery, DeliveryState.SENT, None)

    async def _pictures(
        self, delivery: Delivery, destination: Destination
    ) -> tuple[tuple[Image, ...], tuple[str, ...]]:
        """The broadcast's images fitted for `destination`, and where it fetches them if it takes them by URL."""
        stored = await self._images.of(delivery.broadcast_id)
        if not stored:
            return (), ()
        limits = destination.limits.images
        attached = await asyncio.to_thread(images.for_part, stored, limits)
        if limits is None or not limits.by_url or self.public_url is None:
            return attached, ()
        urls = tuple(
            image_urls.url(
                self.public_url,
                original,
                image_urls.Where(delivery.broadcast_id, position, delivery.destination, fitted.extension),
            )
            for position, (original, fitted) in enumerate(zip(stored, attached, strict=True))
        )
        return attached, urls

    async def _correct(self, delivery: Delivery, destination: Destination) -> None:
        """An edit: put the corrected text in place of the staff post its twin made."""
        post = await outbox.twin(self.store, delivery)
        if not post.posted:
            await self._finish(delivery, DeliveryState.FAILED, "the post it corrects never went out")
            return
        if delivery.dry_run:
            await self._finish(delivery, DeliveryState.SENT, None)
            return
        async with self._limit(destination), self._pacer.call(destination):
            if isinstance(destination, RedrawsImages):
                attached, urls = await self._pictures(delivery, destination)
                outcome = await destination.edit_with_images(post.posted[0], delivery.parts[0], attached, urls)
            else:
                outcome = await destination.edit(post.posted[0], delivery.parts[0])
        if isinstance(outcome, Sent):
            await self._finish(delivery, DeliveryState.SENT, None)
        elif isinstance(outcome, Permanent):
            await self._finish(delivery, DeliveryState.FAILED, outcome.reason)
        else:  # replacing a text twice is harmless: a lost answer is simply retried
            await self._retry(delivery, destination, _as_retry(outcome), check_first=False)

    async def _take_back(self, delivery: Delivery, destination: Destination) -> None:
        """A retraction: delete every part its twin post put out, the last first (replies before roots)."""
        post = await outbox.twin(self.store, delivery)
        deleted = delivery.posted
        for remote_id in reversed(post.posted):
            if remote_id in deleted or remote_id == DRY_RUN_ID:
                continue
            async with self._limit(destination), self._pacer.call(destination):
                outcome = await destination.delete(remote_id)
            if isinstance(outcome, Sent):
                deleted = (*deleted, remote_id)
                await outbox.record_part(self.store, delivery, Landed(deleted), self.clock())
            elif isinstance(outcome, Permanent):
                await self._finish(delivery, DeliveryState.FAILED, outcome.reason)
                return
            else:  # deleting again is harmless: a lost answer is simply retried
                await self._retry(delivery, destination, _as_retry(outcome), check_first=False)
                return
        if post.state is DeliveryState.UNKNOWN:
            await self._finish(
                delivery,
                DeliveryState.UNKNOWN,
                "a part whose fate was never known may still be there: check by hand",
            )
            return
        await self._finish(delivery, DeliveryState.SENT, None)

    async def _retry(self, delivery: Delivery, destination: Destination, outcome: Retry, check_first: bool) -> None:
        if outcome.after:
            await self._pacer.hold(destination, outcome.after)
        now = self.clock()
        delay = self.retry.delay(delivery.attempts, outcome.after)
        if self.retry.exhausted(delivery.attempts, delivery.first_attempt_at or now, now + delay):
            final = DeliveryState.UNKNOWN if check_first else DeliveryState.FAILED
            await self._finish(delivery, final, f"gave up after {delivery.attempts} attempts: {outcome.reason}")
            return
        log.info("delivery %s to %s: retry in %.1fs (%s)", delivery.id, delivery.destination, delay, outcome.reason)
        await outbox.retry_at(self.store, delivery, now + delay, outcome.reason, check_first, now)

    async def _finish(
        self, delivery: Delivery, state: DeliveryState, error: str | None, last_part: Landed | None = None
    ) -> None:
        log.info(
            "delivery %s to %s: %s%s", delivery.id, delivery.destination, state.value, f" ({error})" if error else ""
        )
        with_images = delivery.action not in ("post", "delete") or await self._may_have_images(delivery.broadcast_id)
        await outbox.finish(self.store, delivery, state, error, self.clock(), last_part, with_images=with_images)

    async def _may_have_images(self, broadcast_id: str) -> bool:
        """Images are attached when a broadcast is requested or never: one read without any has none to let
        go. Where the database cannot say now, the outcome's own transaction looks."""
        try:
            return bool(await self._images.of(broadcast_id))
        except StoreError:
            return True


def _as_retry(outcome: Retry | Ambiguous) -> Retry:
    """For a call that is harmless to repeat (an edit, a deletion), a lost answer is just another retry."""
    return outcome if isinstance(outcome, Retry) else Retry(outcome.reason)
