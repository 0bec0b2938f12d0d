"""The outbox's worker against fake networks: bounded retries, concurrency, pacing, dry runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters import SPECS, build_destinations
from relay import dispatcher as dispatcher_module
from relay.audit import TERMINAL
from relay.broadcasts import Broadcasts
from relay.config import load_config, settings_from_env
from relay.dispatcher import Dispatcher
from relay.model import Delivery, DeliveryState
from relay.outbox import RetryPolicy
from relay.store import Store, store_for
from tests.conftest import bot_env
from tests.fakes import FakeSlack, FakeX, Fault

FAST = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_cap=0.05)
CHANNELS = [f"C0CHAN{i}" for i in range(5)]

CONFIG = (
    """
[policy]
leaders = ["slack:U0LEAD"]
default_audience = "everyone"

[destinations.company-x]
kind = "x"

[destinations.dry-x]
kind = "x"
dry_run = true
"""
    + "".join(f'\n[destinations.chan{i}]\nkind = "slack"\nchannel = "{c}"\n' for i, c in enumerate(CHANNELS))
    + f"""
[audiences]
everyone = [{", ".join(f'"chan{i}"' for i in range(5))}, "company-x"]
public = ["company-x"]
dry = ["dry-x"]
channel0 = ["chan0"]
"""
)


@dataclass
class World:
    broadcasts: Broadcasts
    changed: asyncio.Queue[str]

    async def send(self, text: str, audience: str) -> str:
        draft = await self.broadcasts.request("slack:U0LEAD", text, audience, "test", {}, where=TERMINAL)
        await self.broadcasts.approve("slack:U0LEAD", draft.id, where=TERMINAL)
        return draft.id

    async def settled(self, broadcast_id: str) -> list[Delivery]:
        """Wait (on the dispatcher's own change notices) until every delivery is final."""
        async with asyncio.timeout(15):
            while True:
                deliveries = await self.broadcasts.deliveries(broadcast_id)
                if all(d.state.final for d in deliveries):
                    return deliveries
                await self.changed.get()


@pytest.fixture
async def world(tmp_path: Path, slack: FakeSlack, x: FakeX) -> AsyncIterator[Callable[..., Awaitable[World]]]:
    running: list[tuple[asyncio.Task[None], Store, dict]] = []  # type: ignore[type-arg]

    async def make(retry: RetryPolicy = FAST) -> World:
        settings = settings_from_env(bot_env(tmp_path, slack, x, CONFIG))
        config = load_config(settings, SPECS)
        store = store_for(settings)
        await store.open()
        destinations = build_destinations(config, settings, store)
        changed: asyncio.Queue[str] = asyncio.Queue()
        dispatcher = Dispatcher(store, destinations, on_change=changed.put_nowait, retry=retry)
        broadcasts = Broadcasts(store, config, destinations, on_approved=dispatcher.poke)
        running.append((asyncio.create_task(dispatcher.run()), store, destinations))
        return World(broadcasts, changed)

    yield make
    for task, store, destinations in running:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for destination in destinations.values():
            await destination.close()
        await store.close()


async def test_retries_are_bounded_and_the_last_reason_is_kept(world, x: FakeX) -> None:
    x.faults.add("POST /2/tweets", Fault.status(503, {"title": "Service Unavailable"}), times=None)
    w = await world()
    [delivery] = await w.settled(await w.send("Hello", "public"))
    assert delivery.state is DeliveryState.FAILED
    assert delivery.last_error == "gave up after 4 attempts: X answered 503"
    assert len(x.calls_to("POST /2/tweets")) == 4 and not x.tweets


async def test_destinations_go_out_concurrently(world, slack: FakeSlack, x: FakeX) -> None:
    for channel in CHANNELS:
        slack.faults.add("chat.postMessage", Fault.hang(), when=lambda p, c=channel: p.get("channel") == c)
    x.faults.add("POST /2/tweets", Fault.hang())
    w = await world()
    broadcast = await w.send("All at once", "everyone")
    # Every post is on the wire while none has been answered: they were sent side by side.
    await slack.wait_for(lambda: len(slack.calls_to("chat.postMessage")) == len(CHANNELS))
    await x.wait_for(lambda: x.calls_to("POST /2/tweets"))
    slack.release()
    x.release()
    deliveries = await w.settled(broadcast)
    assert [d.state for d in deliveries] == [DeliveryState.SENT] * 6
    assert all(len(slack.messages(c)) == 1 for c in CHANNELS) and len(x.tweets) == 1


async def test_when_every_slot_is_taken_each_finished_delivery_lets_the_next_one_go(
    world, slack: FakeSlack, x: FakeX, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatcher_module, "MAX_IN_FLIGHT", 1)  # one at a time: the worker must notice each end
    w = await world()
    deliveries = await w.settled(await w.send("One by one", "everyone"))
    assert [d.state for d in deliveries] == [DeliveryState.SENT] * 6
    assert all(len(slack.messages(c)) == 1 for c in CHANNELS) and len(x.tweets) == 1


async def test_posts_to_one_slack_channel_are_a_second_apart(world, slack: FakeSlack) -> None:
    w = await world()
    first, second = await w.send("First", "channel0"), await w.send("Second", "channel0")
    await w.settled(first)
    await w.settled(second)
    one, two = slack.calls_to("chat.postMessage")
    assert two.at - one.at >= 1.0


async def test_a_dry_destination_is_recorded_and_never_posted(world, x: FakeX) -> None:
    w = await world()
    [delivery] = await w.settled(await w.send("Practice run", "dry"))
    assert delivery.state is DeliveryState.SENT and delivery.dry_run
    recorded = await w.broadcasts.store.call(
        lambda conn: conn.execute("SELECT parts FROM deliveries WHERE id = ?", (delivery.id,)).fetchone()[0]
    )
    assert recorded == '["Practice run"]' and delivery.link is None
    assert not x.calls
