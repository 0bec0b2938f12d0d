"""`python -m bench`: run every measurement and print the tables `docs/PERFORMANCE.md` quotes.

Options: `--sizes 10,100,1000` (channels per chat platform), `--latency 0.1` (seconds each fake takes to
answer, an emulated network), `--baseline-sizes 10,100` (the sequential loop is slow by nature),
`--no-acks` (skip the acknowledgement latency), `--databases sqlite,postgres,postgres*2` (the default: the
bot on SQLite, on PostgreSQL, and two instances on one PostgreSQL, each request going to the next instance;
PostgreSQL is a throwaway local server, as the suite starts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psycopg

from bench import platforms
from bench.ack import broadcast_id
from bench.baseline import sequential
from bench.bot import Bot
from tests.bot_process import free_port
from tests.fakes import FakeLinkedIn, FakeMastodon, FakeSlack, FakeX
from tests.fakes.teams import FakeConnector
from tests.postgres.cluster import Cluster, fresh_database
from tests.slack_requests import action_body, command_body, signed_headers
from tests.teams_activities import TEAM, TeamsClient, installed_in_team

SECRET = "bench-signing-secret-0123456789"
TOKEN = "xoxb-bench"
LEADER = "U0LEAD"
TEXT = "Our quarterly results are out: read the letter from the CEO at https://example.com/q3 ."
ACK_LOAD = {1: 100, 10: 200, 50: 500}  # requests in flight → how many of each kind to send


@dataclass
class Fakes:
    slack: FakeSlack
    teams: FakeConnector
    x: FakeX
    mastodon: FakeMastodon
    linkedin: FakeLinkedIn

    def reset(self, latency: float) -> None:
        """Fresh rate-limit windows, so one run's posts do not slow the next."""
        platforms.enforce(self.slack, self.teams, self.x, self.mastodon, self.linkedin, latency)

    @property
    def refused(self) -> int:
        return sum(f.limits.refused for f in (self.slack, self.teams, self.x, self.mastodon, self.linkedin))


@asynccontextmanager
async def fakes() -> AsyncIterator[Fakes]:
    async with AsyncExitStack() as stack:
        yield Fakes(
            await stack.enter_async_context(FakeSlack(token=TOKEN)),
            await stack.enter_async_context(FakeConnector({TEAM: []})),
            await stack.enter_async_context(FakeX()),
            await stack.enter_async_context(FakeMastodon()),
            await stack.enter_async_context(FakeLinkedIn()),
        )


def slack_channel(n: int) -> str:
    return f"C{n:08d}"


def teams_channel(n: int) -> str:
    return f"19:bench{n:05d}@thread.tacv2"


def config(slack: int, teams: int, public: Sequence[str]) -> str:
    """relay.toml for one leader and `slack` + `teams` channels plus the named public networks."""
    lines = ['[policy]\nleaders = ["slack:U0LEAD"]\ndefault_audience = "everyone"\n']
    names = []
    for n in range(slack):
        names.append(f"slack-{n}")
        lines.append(f'[destinations.slack-{n}]\nkind = "slack"\nchannel = "{slack_channel(n)}"\n')
    for n in range(teams):
        names.append(f"teams-{n}")
        lines.append(f'[destinations.teams-{n}]\nkind = "teams"\nchannel = "{teams_channel(n)}"\n')
    for kind in public:
        names.append(f"company-{kind}")
        extra = 'organization = "urn:li:organization:2414183"\n' if kind == "linkedin" else ""
        lines.append(f'[destinations.company-{kind}]\nkind = "{kind}"\n{extra}')
    lines.append(f"[audiences]\neveryone = {json.dumps(names)}\n")
    return "\n".join(lines)


def environment(fake: Fakes, folder: Path, relay_toml: str) -> dict[str, str]:
    (folder / "relay.toml").write_text(relay_toml)
    x = fake.x.credentials
    return {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake.slack.api_url,
        "X_API_KEY": x.consumer_key,
        "X_API_SECRET": x.consumer_secret,
        "X_ACCESS_TOKEN": x.access_token,
        "X_ACCESS_TOKEN_SECRET": x.access_token_secret,
        "X_API_URL": fake.x.api_url,
        "MASTODON_URL": fake.mastodon.url,
        "MASTODON_ACCESS_TOKEN": fake.mastodon.token,
        "LINKEDIN_API_URL": fake.linkedin.url,
        "LINKEDIN_ACCESS_TOKEN": fake.linkedin.token,
        "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__ANONYMOUS_ALLOWED": "true",
        "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__TENANTID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "RELAY_CONFIG": str(folder / "relay.toml"),
        "RELAY_DB": str(folder / "relay.db"),
    }


@dataclass(frozen=True)
class Database:
    """Where the bots keep their outbox: SQLite (one bot), or one PostgreSQL database shared by `instances`."""

    name: str
    instances: int = 1
    server: str | None = None  # the PostgreSQL server's URL; None: SQLite

    @staticmethod
    def parse(text: str, server: str | None) -> Database:
        kind, _, count = text.partition("*")
        return Database(text.replace("*", " ×"), int(count or 1), server if kind == "postgres" else None)


@dataclass
class Bots:
    """One bot, or several instances on one database; requests go to each in turn."""

    all: list[Bot]

    @property
    def urls(self) -> str:
        return ",".join(bot.url for bot in self.all)

    def at(self, turn: int) -> Bot:
        return self.all[turn % len(self.all)]

    def cpu_seconds(self) -> tuple[float, float]:
        times = [bot.cpu_seconds() for bot in self.all]
        return sum(user for user, _ in times), sum(system for _, system in times)

    def peak_memory_mb(self) -> float:
        return max(bot.peak_memory_mb() for bot in self.all)


@asynccontextmanager
async def running(fake: Fakes, relay_toml: str, database: Database) -> AsyncIterator[tuple[Bots, float]]:
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        env = environment(fake, Path(folder), relay_toml)
        if database.server is not None:
            env["DATABASE_URL"] = stack.enter_context(contextmanager(fresh_database)(database.server))
        bots = Bots([Bot(env, free_port(), Path(folder) / "relay.db") for _ in range(database.instances)])
        try:
            yield bots, max(await asyncio.gather(*(bot.start() for bot in bots.all)))
        finally:
            await asyncio.gather(*(bot.stop() for bot in bots.all))


async def signed(http: aiohttp.ClientSession, bot: Bot, body: str) -> str:
    async with http.post(f"{bot.url}/slack/events", data=body, headers=signed_headers(SECRET, body)) as answer:
        text = await answer.text()
        if answer.status != 200:
            raise RuntimeError(f"the bot answered {answer.status}: {text[:300]}")
        return text


# 1. Acknowledgement latency ------------------------------------------------------------------------------


async def acknowledgements(fake: Fakes, latency: float, database: Database) -> list[str]:
    """Each load on a bot of its own, so what one level leaves the bot to do (the posts and reports of
    hundreds of approvals) does not weigh on the next."""
    rows: list[str] = []
    firsts: list[float] = []
    for in_flight, count in ACK_LOAD.items():
        async with running(fake, config(1, 0, ()), database) as (bots, _):
            fake.reset(latency)
            load = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.ack",
                bots.urls,
                SECRET,
                LEADER,
                fake.slack.response_url("bench"),
                str(in_flight),
                str(count),
                stdout=subprocess.PIPE,
            )
            out, _ = await load.communicate()
        measured = json.loads(out)
        firsts.extend(measured.pop("first"))
        for kind, seconds in measured.items():
            rows.append(
                f"| `{'/broadcast' if kind == 'command' else 'Approve'}` | {in_flight} | {len(seconds)} | "
                f"{_ms(_percentile(seconds, 50))} | {_ms(_percentile(seconds, 99))} | {_ms(max(seconds))} |"
            )
    rows.append(f"\nThe first `/broadcast` after start-up (Bolt's one auth.test): {', '.join(map(_ms, firsts))}.")
    return rows


def _percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# 2 and 3. Fan-out, CPU, memory, start-up -----------------------------------------------------------------


@dataclass
class FanOut:
    slack: int
    teams: int
    public: tuple[str, ...]
    startup: float = 0.0
    seconds: float = 0.0
    floor: float = 0.0
    refused: int = 0
    deliveries: int = 0
    attempts: Counter[int] | None = None
    not_sent: list[str] | None = None  # "destination: state (why)"
    doubled: int = 0
    missing: int = 0
    cpu: float = 0.0  # user and system
    system: float = 0.0
    peak_mb: float = 0.0


async def fan_out(fake: Fakes, run: FanOut, latency: float, database: Database) -> FanOut:
    fake.teams.channels[TEAM] = [{"id": teams_channel(n), "name": f"Bench {n}"} for n in range(run.teams)]
    before = _posts(fake, run)
    async with (
        running(fake, config(run.slack, run.teams, run.public), database) as (bots, startup),
        aiohttp.ClientSession() as http,
    ):
        run.startup = startup
        if run.teams:
            await TeamsClient(bots.at(0).url, http).send(installed_in_team(fake.teams.service_url))
            await fake.teams.wait_for(lambda: fake.teams.calls_to("GET channels"), timeout=30)
        fake.reset(latency)
        for bot in bots.all:  # an instance's first request waits for Bolt's one auth.test: not the fan-out's
            await signed(http, bot, command_body(LEADER, "status", fake.slack.response_url("bench")))
        cpu = bots.cpu_seconds()
        text = f"{TEXT} ({run.slack}, {run.teams}, {time.time():.0f})"  # networks refuse a repeated text
        answer = await signed(http, bots.at(0), command_body(LEADER, text, fake.slack.response_url("bench")))
        broadcast = _broadcast_id(answer)
        started = time.time()
        approve = action_body(LEADER, "approve", broadcast, fake.slack.response_url("bench"))
        await signed(http, bots.at(1), approve)  # on another instance, where there are several
        last, rows = await bots.at(0).all_final(broadcast)
        run.seconds = last - started
        user, system = bots.cpu_seconds()
        run.cpu, run.system = user + system - sum(cpu), system - cpu[1]
        run.peak_mb = bots.peak_memory_mb()
    run.floor = platforms.floor(run.slack, run.teams, latency)
    run.refused = fake.refused
    run.deliveries = len(rows)
    run.attempts = Counter(row["attempts"] for row in rows)
    run.not_sent = [f"{r['destination']}: {r['state']} ({r['last_error']})" for r in rows if r["state"] != "sent"]
    after = _posts(fake, run)
    counts = {place: after[place] - before.get(place, 0) for place in after}
    run.doubled = sum(count > 1 for count in counts.values())
    run.missing = sum(count == 0 for count in counts.values())
    run.not_sent += [f"{place}: no post at the fake" for place, count in counts.items() if count == 0]
    return run


def _broadcast_id(answer: str) -> str:
    found = broadcast_id(answer)
    if found is None:
        raise RuntimeError(f"no preview in {answer[:300]}")
    return found


def _posts(fake: Fakes, run: FanOut) -> dict[str, int]:
    """Posts each destination has received so far, counted at the fakes."""
    counts = {f"slack {n}": len(fake.slack.messages(slack_channel(n))) for n in range(run.slack)}
    counts |= {f"teams {n}": len(fake.teams.posted(teams_channel(n))) for n in range(run.teams)}
    public = {"x": len(fake.x.tweets), "mastodon": len(fake.mastodon.statuses), "linkedin": len(fake.linkedin.posts)}
    return counts | {kind: public[kind] for kind in run.public}


# 4. The sequential loop ----------------------------------------------------------------------------------


async def baseline(fake: Fakes, channels: int, latency: float, database: Database) -> tuple[float, FanOut]:
    """The loop and the relay, each posting to `channels` Slack channels and X, on fresh limits."""
    fake.reset(latency)
    names = [slack_channel(n) for n in range(channels)]
    text = f"{TEXT} (the loop, {channels}, {time.time():.0f})"
    loop = await asyncio.to_thread(
        sequential, fake.slack.api_url, TOKEN, names, fake.x.api_url, fake.x.credentials, text
    )
    relay = await fan_out(fake, FanOut(channels, 0, ("x",)), latency, database)
    return loop, relay


# The report ----------------------------------------------------------------------------------------------


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    return (
        f"{os.cpu_count()} × {cpu}, {memory} GiB, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, SQLite on {_filesystem()}"
    )


def _filesystem() -> str:
    out = subprocess.run(["df", "-T", tempfile.gettempdir()], capture_output=True, text=True).stdout.splitlines()
    return out[-1].split()[1] if len(out) > 1 else "?"


async def main(sizes: list[int], baseline_sizes: list[int], latency: float, acks: bool, databases: list[str]) -> None:
    print(f"Machine: {machine()}")
    print(f"Emulated round trip: {latency * 1000:.0f} ms per call; limits: see bench/platforms.py\n")
    with ExitStack() as stack:
        server = None
        if any(name.startswith("postgres") for name in databases):
            cluster = Cluster()
            cluster.start()
            stack.callback(cluster.stop)
            server = cluster.url
            print(f"PostgreSQL: {_postgres_version(server)}, a local server (fsync off, as the suite runs it)\n")
        async with fakes() as fake:
            for database in (Database.parse(name, server) for name in databases):
                await _measure(fake, database, sizes, baseline_sizes, latency, acks)


async def _measure(
    fake: Fakes, database: Database, sizes: list[int], baseline_sizes: list[int], latency: float, acks: bool
) -> None:
    print(f"\n## {database.name}\n")
    if acks:
        print("### Acknowledgement latency (Slack's deadline: 3 s)\n")
        print("| request | in flight | sent | p50 | p99 | max |\n|---|---|---|---|---|---|")
        for row in await acknowledgements(fake, latency, database):
            print(row)
    print("\n### One broadcast to N Slack channels, N Teams channels, X, Mastodon and LinkedIn\n")
    print(
        "| N | deliveries | all final after | floor | ratio | 429s | attempts (count: deliveries) "
        "| not sent | doubled | CPU per 1,000 | peak memory | start-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    problems: list[str] = []
    for size in sizes:
        run = await fan_out(fake, FanOut(size, size, ("x", "mastodon", "linkedin")), latency, database)
        attempts = ", ".join(f"{a}: {n}" for a, n in sorted((run.attempts or Counter()).items()))
        print(
            f"| {size:,} | {run.deliveries:,} | {run.seconds:.2f} s | {run.floor:.2f} s | "
            f"{run.seconds / run.floor:.2f}× | {run.refused} | {attempts} | {len(run.not_sent or [])} | "
            f"{run.doubled} (missing {run.missing}) | {run.cpu / run.deliveries * 1000:.2f} s "
            f"({run.system / run.deliveries * 1000:.2f} s system) | "
            f"{run.peak_mb:.0f} MB | {run.startup:.2f} s |"
        )
        problems.extend(run.not_sent or [])
    for problem in problems:
        print(f"\n- {problem}")
    if baseline_sizes:
        print("\n### Against the sequential loop (slack_sdk + tweepy), N Slack channels and X\n")
        print("| N | sequential loop | relay | relay faster by | relay's 429s |\n|---|---|---|---|---|")
        for size in baseline_sizes:
            loop, relay = await baseline(fake, size, latency, database)
            print(
                f"| {size:,} | {loop:.2f} s | {relay.seconds:.2f} s | {loop / relay.seconds:.1f}× | {relay.refused} |"
            )


def _postgres_version(url: str) -> str:
    with psycopg.connect(url) as pg:
        return str(pg.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]


def _numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--sizes", type=_numbers, default=[10, 100, 1000])
    parser.add_argument("--baseline-sizes", type=_numbers, default=[10, 100])
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--no-acks", dest="acks", action="store_false", help="skip the acknowledgement latency")
    parser.add_argument("--databases", type=lambda text: text.split(","), default=["sqlite", "postgres", "postgres*2"])
    options = parser.parse_args()
    asyncio.run(main(options.sizes, options.baseline_sizes, options.latency, options.acks, options.databases))
