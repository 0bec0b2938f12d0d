"""Every network misbehaving at once, as in a bad hour on the internet: each post request may meet a 429
(with that platform's own rate-limit headers), a 500 or 503, a timeout, a connection dropped before or
after the post, or a slow answer. Every delivery still ends; attempts stay within the retry cap; no
request comes back before the time it was given; nothing is doubled where the network can prove it;
a post whose answer was lost is found, or reported unknown.

`--proof-scale=large` sends more broadcasts to more destinations.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bot import DISPATCHER
from relay.outbox import RetryPolicy
from tests.conftest import LEADER, Relay, preview_id
from tests.fakes import FakeMastodon, FakeSlack, Fault
from tests.fakes.faults import Draw
from tests.fleet import PROVABLE, Endpoint, Fleet, Place, Request, final_report, fleet
from tests.proof import tally

SEED = 20261129


@dataclass(frozen=True)
class Weather:
    broadcasts: int
    slack: int
    teams: int
    accounts: int  # of each public network


SCALES = {
    "small": Weather(broadcasts=1, slack=60, teams=8, accounts=2),
    "large": Weather(broadcasts=4, slack=150, teams=20, accounts=4),
}
# The production cap on attempts, with a backoff a hundred times shorter so the test does not sit out
# minutes of it; the servers' own waits (Retry-After, 1 s here) still apply in full.
QUICK = RetryPolicy(backoff_base=0.01, backoff_cap=3.0)
# Each network's way of saying it failed, as its API does.
SERVER_ERRORS: dict[str, tuple[dict[str, Any] | str, dict[str, Any] | str]] = {
    "slack": ("Internal Server Error", {"ok": False, "error": "service_unavailable"}),
    "teams": ({"error": {"code": "ServiceError", "message": "Internal error"}}, "Service Unavailable"),
    "x": ({"title": "Internal Server Error", "status": 500}, {"title": "Service Unavailable", "status": 503}),
    "mastodon": ({"error": "We're sorry, but something went wrong"}, "Service Unavailable"),
    "linkedin": ({"status": 500, "message": "Internal Server Error"}, {"status": 503, "message": "Unavailable"}),
}


def quicken(relay: Relay, policy: RetryPolicy = QUICK) -> None:
    """Give the running bot's dispatcher `policy` in place of the production one."""
    assert relay.server is not None
    relay.server.app[DISPATCHER].retry = policy


def weather(endpoint: Endpoint) -> list[tuple[Draw, float]]:
    """Six requests in ten answered well; the rest, every kind of failure alike."""
    crash, unavailable = SERVER_ERRORS[endpoint.kind]
    return [
        (None, 14),
        (endpoint.rate_limited, 2),
        (Fault.status(500, crash), 1),
        (Fault.status(503, unavailable), 1),
        (Fault.hang(), 1),  # longer than RELAY_HTTP_TIMEOUT: a timeout, after the post landed
        (Fault.drop_before(), 1),
        (Fault.drop_after(), 1),
        (Fault.delay(0.3), 2),  # slow, but within the timeout
    ]


def outage(endpoint: Endpoint) -> list[tuple[Draw, float]]:
    """A network that fails every request, each way it can."""
    crash, unavailable = SERVER_ERRORS[endpoint.kind]
    return [
        (endpoint.rate_limited, 1),
        (Fault.status(500, crash), 1),
        (Fault.status(503, unavailable), 1),
        (Fault.hang(), 1),
        (Fault.drop_before(), 1),
        (Fault.drop_after(), 1),
    ]


async def test_a_storm_of_faults_on_every_network_ends_every_delivery_without_doubling_or_retry_storms(
    start_relay: Callable[..., Awaitable[Relay]], slack: FakeSlack, proof_scale: str, backend: str
) -> None:
    """On PostgreSQL two instances share the work (and the pauses the networks ask for)."""
    scale = SCALES[proof_scale]
    rng = random.Random(SEED)
    async with fleet(
        slack,
        slack_channels=scale.slack,
        teams_channels=scale.teams,
        x=scale.accounts,
        mastodon=scale.accounts,
        linkedin=scale.accounts,
    ) as f:
        down = [f.of(kind)[0] for kind in SERVER_ERRORS]  # one destination on each network fails throughout
        for endpoint in [f.endpoint(place) for place in down]:
            endpoint.fake.faults.storm(endpoint.name, outage(endpoint), rng, when=endpoint.when)
        for endpoint in f.endpoints():
            endpoint.fake.faults.storm(endpoint.name, weather(endpoint), rng, when=endpoint.when)
        relay = await start_relay(f.config(), RELAY_HTTP_TIMEOUT="1", **f.env())
        quicken(relay)
        if backend == "postgres":
            quicken(await start_relay(f.config(), RELAY_HTTP_TIMEOUT="1", **f.env()))
        await f.add_to_teams(relay.url, relay.http)
        for number in range(1, scale.broadcasts + 1):
            text = f"Storm {number} of seed {SEED}: the office is closed today, work from home."
            broadcast = preview_id(await relay.command(LEADER, text))
            await relay.click(LEADER, "approve", broadcast)
            report = await final_report(slack, broadcast, timeout=60)
            said = f.said(report)
            problems = [problem for place in f.places for problem in await check(f, place, text, said)]
            if not any("gave up after" in said.get(place.name, "") for place in down):
                problems.append("no delivery reached the retry cap: the storm did not test it")
            assert not problems, f"seed {SEED}, broadcast {number}:\n" + "\n".join(problems)
            tally("deliveries checked after fault storms", len(f.places))
        tally(
            "faults injected at the fake networks",
            sum(call.fault is not None for fake in f.fakes for call in fake.calls),
        )


async def check(f: Fleet, place: Place, text: str, said: dict[str, str]) -> list[str]:
    """What is wrong with one destination after the storm, in words."""
    words = said.get(place.name)
    if words is None:
        return [f"{place.name}: missing from the report"]
    posts = await f.posts(place, text)
    requests = f.requests(place, text)
    problems = [f"{place.name}: {why}" for why in early_returns(requests)]
    if len(requests) > QUICK.max_attempts:
        problems.append(f"{place.name}: {len(requests)} post requests, over the cap of {QUICK.max_attempts}")
    gave_up = "gave up after" in words
    if words.startswith("posted"):
        if len(posts) != 1 or ("<" in words and posts[0] not in words):  # a link shown must lead to it
            problems.append(f"{place.name}: reported posted ({words}), the network holds {posts}")
    elif words.startswith("unknown"):
        if len(posts) > 1:
            problems.append(f"{place.name}: unknown, and posted {len(posts)} times")
        if place.kind in PROVABLE and not gave_up:
            problems.append(f"{place.name}: {words}, where it could have been proven")
    elif not (words.startswith("failed") and gave_up and not posts):
        problems.append(f"{place.name}: {words} ({len(posts)} posts)")
    return problems


def early_returns(requests: list[Request]) -> list[str]:
    """Requests that came back before the time the previous answer (a 429) gave."""
    found = []
    for limited, following in itertools.pairwise(requests):
        if limited.fault is None or limited.fault.code != 429:
            continue
        headers = dict(limited.fault.headers)
        waited = following.at - limited.at
        if "Retry-After" in headers and waited < float(headers["Retry-After"]):
            found.append(f"back {waited:.2f} s after a 429 saying Retry-After {headers['Retry-After']}")
        reset = headers.get("x-rate-limit-reset") or headers.get("X-RateLimit-Reset")
        if reset and following.wall is not None and following.wall < _epoch(reset):
            found.append(f"back {_epoch(reset) - following.wall:.2f} s before the rate-limit reset {reset}")
    return found


def _epoch(reset: str) -> float:
    """X's reset is epoch seconds; Mastodon's an ISO 8601 date."""
    return float(reset) if reset.isdigit() else datetime.fromisoformat(reset.replace("Z", "+00:00")).timestamp()


async def test_a_post_that_may_have_landed_is_never_reported_failed_when_its_retries_run_out(
    start_relay: Callable[..., Awaitable[Relay]],
) -> None:
    config = f"""
[policy]
leaders = ["slack:{LEADER}"]
default_audience = "mastodon"

[destinations.company-mastodon]
kind = "mastodon"

[audiences]
mastodon = ["company-mastodon"]
"""
    async with FakeMastodon() as mastodon:
        mastodon.faults.add("POST /api/v1/statuses", Fault.hang())  # it lands; the answer never comes
        mastodon.faults.add("POST /api/v1/statuses", Fault.status(503, "Service Unavailable"), times=None)
        env = {"MASTODON_URL": mastodon.url, "MASTODON_ACCESS_TOKEN": mastodon.token, "RELAY_HTTP_TIMEOUT": "1"}
        relay = await start_relay(config, **env)
        quicken(relay, replace(QUICK, max_attempts=3))
        await relay.click(LEADER, "approve", preview_id(await relay.command(LEADER, "Up, though nobody heard.")))
        report = await relay.final_report()
    assert "company-mastodon*: unknown, not posted again. gave up after 3 attempts" in report
    assert len(mastodon.statuses) == 1 and len(mastodon.calls_to("POST /api/v1/statuses")) == 3
