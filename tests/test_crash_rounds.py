"""The bot killed (SIGKILL) at random moments of a broadcast to 200 destinations, and started again, round
after round: at the end every destination holds exactly one post, or, where the network cannot prove it
either way (Teams), at most one and the report says "unknown". Nothing is lost, nothing doubled.

The fakes answer with a small random latency, so kills land between a post landing and the bot hearing
of it. `--proof-scale=large` runs more broadcasts and more kills.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.bot_process import BotProcess, free_port
from tests.conftest import LEADER, TEAMS_ENV, Relay, bot_env, preview_id
from tests.fakes import FakeSlack, FakeX, Fault
from tests.fakes.faults import Draw, FaultKind
from tests.fakes.teams import FakeConnector
from tests.fleet import PROVABLE, Fleet, final_report, finished, fleet
from tests.pds_fixture import Pds
from tests.proof import tally
from tests.teams_activities import ANNOUNCEMENTS, TeamsClient, installed_in_team

SEED = 20261128


@dataclass(frozen=True)
class Drill:
    broadcasts: int
    kills: int  # per broadcast


SCALES = {"small": Drill(broadcasts=1, kills=3), "large": Drill(broadcasts=8, kills=10)}
# 200 destinations: Slack channels, Teams channels, and accounts on every public network.
SLACK, TEAMS, X, MASTODON, LINKEDIN = 170, 16, 4, 4, 4  # and the PDS's 2 Bluesky accounts
# Answers come after a few milliseconds to a few hundred, as over a real network (the public networks'
# slower); each post lands first and is answered late, so a kill often falls between the two.
LATENCY: list[tuple[Draw, float]] = [(None, 3), (Fault.delay(0.02), 3), (Fault.delay(0.1), 2), (Fault.delay(0.4), 1)]
SLOW: list[tuple[Draw, float]] = [(None, 1), (Fault.delay(0.05), 2), (Fault.delay(0.3), 2), (Fault.delay(1.0), 1)]


async def test_killed_at_random_moments_every_destination_ends_with_one_post_or_says_unknown(
    tmp_path: Path, slack: FakeSlack, x: FakeX, pds: Pds, proof_scale: str, backend: str
) -> None:
    """On PostgreSQL a second instance runs beside the one killed again and again, as behind a load balancer:
    it takes over what each dead one held, while the restarted one joins in."""
    drill = SCALES[proof_scale]
    # Two generators, so where the kills fall does not depend on how many answers were drawn before.
    latency, moments = random.Random(f"{SEED} latency"), random.Random(f"{SEED} kills")
    sizes = {"slack_channels": SLACK, "teams_channels": TEAMS, "x": X, "mastodon": MASTODON, "linkedin": LINKEDIN}
    async with fleet(slack, **sizes, pds=pds) as f, aiohttp.ClientSession() as http:
        assert len(f.places) == 200
        for endpoint in f.endpoints():
            mix = LATENCY if endpoint.kind in ("slack", "teams") else SLOW
            endpoint.fake.faults.storm(endpoint.name, mix, latency, when=endpoint.when)
        slack.faults.storm("chat.getPermalink", LATENCY, latency)
        port = free_port()
        env = {**bot_env(tmp_path, slack, x, f.config()), **f.env(), "PORT": str(port), "RELAY_HTTP_TIMEOUT": "5"}
        process = BotProcess(env)
        beside = BotProcess({**env, "PORT": str(free_port())}) if backend == "postgres" else None
        relay = Relay(f"http://127.0.0.1:{port}", slack, http)
        kills: list[float] = []
        caught = 0
        try:
            await process.start()
            if beside is not None:
                await beside.start()
            await f.add_to_teams(relay.url, http)
            for number in range(1, drill.broadcasts + 1):
                # The PDS outlives a test: each backend's drill says something of its own.
                text = f"Drill {number} of seed {SEED} on {backend}: the fire doors are tested at noon, stay calm."
                broadcast = preview_id(await relay.command(LEADER, text))
                await relay.click(LEADER, "approve", broadcast)
                kills += await kill_and_restart(process, f, broadcast, text, drill.kills, moments)
                report = await final_report(slack, broadcast, timeout=60)
                said = f.said(report)
                problems = await disagreements(f, text, said)
                delivered = sum(words.startswith("posted") for words in said.values())
                if f"{delivered} of {len(f.places)} delivered." not in report.head:
                    problems.append(f"the headline says {report.head!r}, the lines and counts {delivered} posted")
                caught += unanswered(f, text, kills)
                why = f"seed {SEED}, broadcast {number}, after {len(kills)} kills catching {caught} posts unanswered"
                assert not problems, f"{why}:\n" + "\n".join(problems)
                tally("deliveries checked after crashes", len(f.places))
        finally:
            await process.stop()
            if beside is not None:
                await beside.stop()
    assert caught, f"seed {SEED}: no kill fell between a post landing and its answer; the drill proved little"
    tally("crashes survived with nothing lost or doubled", len(kills))


async def kill_and_restart(
    process: BotProcess, f: Fleet, broadcast: str, text: str, kills: int, rng: random.Random
) -> list[float]:
    """Kill the bot at `kills` random points of the broadcast (counted in destinations it has begun
    posting to), starting it again after each, until it is over; returns when each kill fell."""
    total = len([place for place in f.places if place.kind != "bluesky"])
    moments = []

    def over() -> bool:
        return finished(f.slack, broadcast) is not None

    for point in sorted(rng.sample(range(1, total), kills)):
        target = max(point, f.begun(text) + 1)  # at least one more destination begun since the last start

        def reached(target: int = target) -> bool:
            return f.begun(text) >= target or over()

        await f.wait_for(reached, timeout=60)
        if over():
            break
        moments.append(time.monotonic())
        await process.kill()
        await process.start()
    return moments


def unanswered(f: Fleet, text: str, kills: list[float]) -> int:
    """Posts that had landed and were still waiting for their (slow) answer when a kill fell."""
    requests = [r for place in f.places if place.kind != "bluesky" for r in f.requests(place, text)]
    return sum(
        1
        for r in requests
        for moment in kills
        if r.fault is not None and r.fault.kind is FaultKind.DELAY and r.at <= moment < r.at + r.fault.seconds
    )


async def disagreements(f: Fleet, text: str, said: dict[str, str]) -> list[str]:
    """Where the report and the networks disagree, or a post was lost or doubled."""
    problems = []
    for place in f.places:
        posts = await f.posts(place, text)
        words = said.get(place.name)
        if words is None:
            problems.append(f"{place.name}: missing from the report ({len(posts)} posts)")
        elif words.startswith("posted"):
            if len(posts) != 1 or ("<" in words and posts[0] not in words):  # a link shown must lead to it
                problems.append(f"{place.name}: reported posted ({words}), the network holds {posts}")
        elif words.startswith("unknown") and place.kind not in PROVABLE:
            if len(posts) > 1:
                problems.append(f"{place.name}: reported unknown, yet posted {len(posts)} times")
        else:
            problems.append(f"{place.name}: {words} ({len(posts)} posts), after crashes alone")
    return problems


async def test_a_post_still_waiting_its_turn_when_the_bot_dies_is_sent_after_the_restart_not_called_unknown(
    tmp_path: Path, slack: FakeSlack, x: FakeX, connector: FakeConnector
) -> None:
    # One Teams channel under two names, as a config grown by hand may have it: posts to one place are
    # spaced, so the second waits for the first to be answered, and the first never is. Killed then, only
    # the first may have landed; Teams cannot be searched, so it alone is "unknown".
    config = f"""
[policy]
leaders = ["slack:{LEADER}"]
default_audience = "announcements"

[destinations.announcements]
kind = "teams"
channel = "{ANNOUNCEMENTS}"

[destinations.announcements-again]
kind = "teams"
channel = "{ANNOUNCEMENTS}"

[audiences]
announcements = ["announcements", "announcements-again"]
"""
    connector.faults.add("POST activities", Fault.hang(), when=lambda params: params["conversation"] == ANNOUNCEMENTS)
    port = free_port()
    process = BotProcess({**bot_env(tmp_path, slack, x, config), **TEAMS_ENV, "PORT": str(port)})
    async with aiohttp.ClientSession() as http:
        relay = Relay(f"http://127.0.0.1:{port}", slack, http)
        try:
            await process.start()
            await TeamsClient(relay.url, http).send(installed_in_team(connector.service_url))
            broadcast = preview_id(await relay.command(LEADER, "Waiting my turn."))
            await relay.click(LEADER, "approve", broadcast)
            await connector.wait_for(lambda: connector.calls_to("POST activities"))
            await process.kill()
            await process.start()
            report = await final_report(slack, broadcast, timeout=20)
        finally:
            await process.stop()
    assert len(connector.posted(ANNOUNCEMENTS)) == 2, "the post that hung, and the one that waited its turn"
    assert sorted(words.split(" ")[0] for words in report.lines.values()) == ["posted", "unknown,"]
