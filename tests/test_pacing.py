"""Large fan-outs keep to each platform's pace: the pause a 429 asks for holds the whole workspace, a
published rate is never exceeded, and one network told to wait does not hold up the others."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import cast

from adapters.slack import LIMITS as SLACK_LIMITS
from relay.destination import Counting, Destination, Limits, Markup
from relay.pacing import Pacer
from relay.store.sqlite import SqliteStore
from tests.conftest import LEADER, TEAMS_ENV, preview_id
from tests.fakes import FakeSlack, FakeX, Fault
from tests.fakes.limits import Limit, RateLimits, Window
from tests.fakes.teams import FakeConnector
from tests.teams_activities import TEAM, TeamsClient, installed_in_team


def channels(count: int) -> list[str]:
    return [f"C{n:07d}" for n in range(count)]


def teams_channels(count: int) -> list[str]:
    return [f"19:pace{n:04d}@thread.tacv2" for n in range(count)]


def config(slack: list[str], teams: list[str] = (), x: bool = False) -> str:  # type: ignore[assignment]
    names, blocks = [], [f'[policy]\nleaders = ["slack:{LEADER}"]\ndefault_audience = "everyone"\n']
    for n, channel in enumerate(slack):
        names.append(f"slack-{n}")
        blocks.append(f'[destinations.slack-{n}]\nkind = "slack"\nchannel = "{channel}"\n')
    for n, channel in enumerate(teams):
        names.append(f"teams-{n}")
        blocks.append(f'[destinations.teams-{n}]\nkind = "teams"\nchannel = "{channel}"\n')
    if x:
        names.append("company-x")
        blocks.append('[destinations.company-x]\nkind = "x"\n')
    blocks.append(f"[audiences]\neveryone = {json.dumps(names)}\n")
    return "\n".join(blocks)


async def broadcast(relay, text: str) -> str:  # type: ignore[no-untyped-def]
    broadcast_id = preview_id(await relay.command(LEADER, text))
    await relay.click(LEADER, "approve", broadcast_id)
    return broadcast_id


async def test_a_busy_workspace_gets_the_pause_it_asks_for_and_every_channel_its_post_once(
    start_relay, slack: FakeSlack
) -> None:
    # Slack lets 10 messages a second through this workspace; 25 channels need three seconds' worth.
    slack.limits = RateLimits([Limit(("chat.postMessage",), (Window(10, 1.0),))])
    places = channels(25)
    relay = await start_relay(config(places))
    await broadcast(relay, "Paced to the workspace.")
    assert "25 of 25 delivered." in await relay.final_report(timeout=20)
    assert all(len(slack.messages(channel)) == 1 for channel in places)
    # Twice the workspace was full (after 10 and after 20): each time only the posts already on their way
    # met a 429; the others waited out the pause instead of each asking and being refused.
    assert 0 < slack.limits.refused <= 2 * SLACK_LIMITS.concurrency


async def test_teams_published_rate_is_kept_so_a_tenant_never_answers_429(
    start_relay, connector: FakeConnector, slack: FakeSlack
) -> None:
    places = teams_channels(60)
    connector.channels[TEAM] = [{"id": channel, "name": channel} for channel in places]
    relay = await start_relay(config([], places), **TEAMS_ENV)
    await TeamsClient(relay.url, relay.http).send(installed_in_team(connector.service_url))
    await connector.wait_for(lambda: connector.calls_to("GET channels"))
    connector.limits = RateLimits([Limit(("POST activities",), (Window(50, 1.0),))])  # 50 a second per tenant
    await broadcast(relay, "Paced to the tenant.")
    assert "60 of 60 delivered." in await relay.final_report(timeout=20)
    assert all(len(connector.posted(channel)) == 1 for channel in places)
    assert connector.limits.refused == 0


async def test_a_network_told_to_wait_does_not_hold_up_the_others(start_relay, slack: FakeSlack, x: FakeX) -> None:
    # More Slack channels than the bot works on at once, and Slack asks each post for a long pause.
    slack.faults.add(
        "chat.postMessage", slack.rate_limited(retry_after=60), times=None, when=lambda p: p.get("channel") != LEADER
    )
    relay = await start_relay(config(channels(80), x=True))
    await broadcast(relay, "X need not wait for Slack.")
    await x.wait_for(lambda: x.tweets, timeout=5)
    tried = [c for c in slack.calls_to("chat.postMessage") if c.params.get("channel") != LEADER]
    assert len(tried) <= SLACK_LIMITS.concurrency, "after the first 429, Slack's channels wait for the pause"


async def test_the_fakes_refuse_past_a_window_and_say_when_to_come_back(slack: FakeSlack) -> None:
    limits = RateLimits([Limit(("chat.postMessage",), (Window(2, 10.0),), scope=lambda p: p["channel"])])
    answers = [limits.admit("chat.postMessage", {"channel": c}) for c in ("C1", "C1", "C1", "C2")]
    assert answers[:2] == [None, None] and answers[3] is None
    assert answers[2] is not None and 9.0 < answers[2] <= 10.0
    assert limits.refused == 1
    assert isinstance(slack.rate_limited_for(answers[2]), Fault)


class _Tenant:
    """The little of a destination the pacer reads: a network allowing two calls a second."""

    limits = Limits(max_length=100, counting=Counting.CHARACTERS, markup=Markup.PLAIN, rate=2.0)

    def limit_key(self) -> str:
        return "tenant"

    def pace_key(self) -> str:
        return "channel"


async def test_a_pause_asked_for_while_a_call_waits_for_the_rate_holds_that_call_too(tmp_path: Path) -> None:
    pacer, tenant = Pacer(SqliteStore(tmp_path / "relay.db")), cast(Destination, _Tenant())
    first, second = pacer.call(tenant), pacer.call(tenant)
    await first.__aenter__()
    await second.__aenter__()
    third = asyncio.create_task(_started(pacer, tenant))  # the rate is full: it waits for room
    await asyncio.sleep(0)
    # The first answer is a 429 asking for 1.5 s; by the rate alone the third could go 1 s after the answers.
    await pacer.hold(tenant, 1.5)
    asked_until = time.time() + 1.5
    await first.__aexit__(None, None, None)
    await second.__aexit__(None, None, None)
    assert await third >= asked_until - 0.01  # time.time() is the pacer's clock; allow its resolution


async def _started(pacer: Pacer, destination: Destination) -> float:
    async with pacer.call(destination):
        return time.time()
