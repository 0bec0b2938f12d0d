"""Hundreds of destinations on every network at once: the fakes behind them, the relay.toml that names
them, and, destination by destination, what each network received and what the leader's report says.

The crash rounds and the fault storms share it. Slack and Teams destinations are channels of one
workspace and one tenant; X, Mastodon and LinkedIn destinations are accounts, each with its own fake,
named in relay.toml through `<role>_env` as a company with several accounts would; Bluesky accounts
live on the reference PDS, behind a proxy that can slow or break its answers.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import aiohttp

from tests.conftest import LEADER, TEAMS_ENV
from tests.fakes import FakeLinkedIn, FakeMastodon, FakeSlack, FakeX, Fault
from tests.fakes.faults import Params, Predicate
from tests.fakes.linkedin import read_little_text
from tests.fakes.proxy import FaultyProxy
from tests.fakes.server import LoopbackServer
from tests.fakes.teams import FakeConnector
from tests.pds_fixture import Pds
from tests.teams_activities import TEAM, TeamsClient, installed_in_team

# Networks where a post whose answer was lost can be proven there or not (looked for, or repeated under
# an idempotency key). Teams gives a bot no way to read a channel back: there, such a post is "unknown".
PROVABLE = frozenset({"slack", "x", "mastodon", "linkedin", "bluesky"})
BLUESKY_WRITE = "POST /xrpc/com.atproto.repo.applyWrites"
_LINE = re.compile(r"^:[a-z_]+: \*(?P<name>[^*]+)\*: (?P<words>.*)$")
_TALLY = re.compile(r"^:[a-z_]+: (?P<count>\d+) (?P<kind>[a-z]+) destinations?: (?P<status>.*)$")


@dataclass(frozen=True)
class Place:
    """One destination: its name in relay.toml, its network, and where on it (a channel id, or the
    number of the account among that network's fakes)."""

    name: str
    kind: str
    where: str = ""
    account: int = 0


@dataclass(frozen=True)
class Request:
    """One post request as a fake recorded it: when (monotonic; `wall` on the epoch clock where the
    fake keeps it, for the resets given as dates) and what was injected."""

    at: float
    wall: float | None
    fault: Fault | None


@dataclass(frozen=True)
class Endpoint:
    """Where one network takes posts (limited to the fleet's destinations), and its own "slow down"."""

    kind: str
    fake: LoopbackServer[Any]
    name: str
    when: Predicate | None
    rate_limited: Callable[[], Fault]


@dataclass(frozen=True)
class Report:
    """The leader's live report once every delivery is final: its headline, a line for each destination
    it names, and, past a few dozen, how many of each network it only counts ("170 slack destinations:
    posted")."""

    head: str
    lines: dict[str, str]  # destination → what follows its name ("posted · <link|view>", "unknown, …")
    tallies: dict[tuple[str, str], int]  # (kind, state) → how many


class Fleet:
    """The running fakes of every network, and the destinations on them."""

    def __init__(
        self,
        slack: FakeSlack,
        connector: FakeConnector,
        xs: list[FakeX],
        mastodons: list[FakeMastodon],
        linkedins: list[FakeLinkedIn],
        places: list[Place],
        pds: Pds | None = None,
        proxy: FaultyProxy | None = None,
    ) -> None:
        self.slack = slack
        self.connector = connector
        self.xs = xs
        self.mastodons = mastodons
        self.linkedins = linkedins
        self.places = places
        self.pds = pds
        self.proxy = proxy

    def of(self, kind: str) -> list[Place]:
        return [place for place in self.places if place.kind == kind]

    @property
    def fakes(self) -> list[LoopbackServer[Any]]:
        proxies: list[LoopbackServer[Any]] = [self.proxy] if self.proxy else []
        return [self.slack, self.connector, *self.xs, *self.mastodons, *self.linkedins, *proxies]

    def said(self, report: Report) -> dict[str, str]:
        """What the report says of each destination: its own line; or, where it only counts them, the
        state it counts them in, when the counts of that network add up to exactly the ones not named."""
        said = dict(report.lines)
        for kind in {place.kind for place in self.places}:
            unnamed = [place for place in self.of(kind) if place.name not in said]
            counted = {state: n for (k, state), n in report.tallies.items() if k == kind}
            if len(counted) == 1 and sum(counted.values()) == len(unnamed):
                said.update({place.name: next(iter(counted)) for place in unnamed})
        return said

    def config(self) -> str:
        """relay.toml: every destination, all in the audience `everyone`, the leader approving alone."""
        blocks = [f'[policy]\nleaders = ["slack:{LEADER}"]\ndefault_audience = "everyone"\n']
        for place in self.places:
            options = {"kind": place.kind, **_options(place, self.pds)}
            blocks.append(
                f"[destinations.{place.name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in options.items())
            )
        blocks.append(f"[audiences]\neveryone = {json.dumps([place.name for place in self.places])}\n")
        return "\n".join(blocks)

    def env(self) -> dict[str, str]:
        """The accounts' variables (beside the Slack and X ones of `bot_env`), and Teams on."""
        env = dict(TEAMS_ENV)
        for i, x in enumerate(self.xs):
            env.update(
                {
                    f"X{i}_API_KEY": x.credentials.consumer_key,
                    f"X{i}_API_SECRET": x.credentials.consumer_secret,
                    f"X{i}_ACCESS_TOKEN": x.credentials.access_token,
                    f"X{i}_ACCESS_TOKEN_SECRET": x.credentials.access_token_secret,
                    f"X{i}_API_URL": x.api_url,
                }
            )
        for i, mastodon in enumerate(self.mastodons):
            env.update({f"MASTODON{i}_URL": mastodon.url, f"MASTODON{i}_ACCESS_TOKEN": mastodon.token})
        for i, linkedin in enumerate(self.linkedins):
            env.update({f"LINKEDIN{i}_API_URL": linkedin.url, f"LINKEDIN{i}_ACCESS_TOKEN": linkedin.token})
        if self.pds and self.proxy:
            env["BLUESKY_PDS_URL"] = self.proxy.url
            for place in self.of("bluesky"):
                env[f"BLUESKY{place.account}_APP_PASSWORD"] = self.pds.accounts[place.account].app_password
        return env

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Until `predicate` holds, re-checked whenever any fake of the fleet receives or answers a request."""
        waits = [asyncio.ensure_future(fake.wait_for(predicate, timeout)) for fake in self.fakes]
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in pending:
            waiting.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        errors = [error for finished in done if (error := finished.exception()) is not None]
        if len(errors) == len(done):
            raise errors[0]  # a timeout's AssertionError, naming what that fake received

    def begun(self, text: str) -> int:
        """How many destinations (Bluesky's aside) have been asked to post `text` so far."""
        slack = {place.where for place in self.of("slack")}
        teams = {place.where for place in self.of("teams")}
        asked = {
            c.params.get("channel") for c in self.slack.calls_to("chat.postMessage") if c.params.get("text") == text
        }
        asked |= {c.conversation for c in self.connector.calls_to("POST activities") if c.body.get("text") == text}
        accounts = [place for place in self.places if place.kind in ("x", "mastodon", "linkedin")]
        return len(asked & slack) + len(asked & teams) + sum(1 for place in accounts if self.requests(place, text))

    async def add_to_teams(self, relay_url: str, http: aiohttp.ClientSession) -> None:
        """Install the app in the team, as an admin would: the bot learns the team's channels."""
        status, _ = await TeamsClient(relay_url, http).send(installed_in_team(self.connector.service_url))
        assert status in (200, 202), status

    def endpoints(self) -> list[Endpoint]:
        """Each network's post endpoint; Slack's and Teams' only for the fleet's channels (not the
        leader's report)."""
        channels = {place.where for place in self.of("slack")}
        teams = {place.where for place in self.of("teams")}
        found = [
            Endpoint(
                "slack",
                self.slack,
                "chat.postMessage",
                lambda params: params.get("channel") in channels,
                lambda: self.slack.rate_limited(retry_after=1),
            ),
            Endpoint(
                "teams",
                self.connector,
                "POST activities",
                lambda params: params["conversation"] in teams,
                lambda: self.connector.throttled(retry_after=1),
            ),
        ]
        found += [Endpoint("x", x, "POST /2/tweets", None, partial(x.rate_limited, reset_in=1)) for x in self.xs]
        found += [
            Endpoint("mastodon", m, "POST /api/v1/statuses", None, partial(m.rate_limited, reset_in=1))
            for m in self.mastodons
        ]
        found += [Endpoint("linkedin", li, "POST /rest/posts", None, li.throttled) for li in self.linkedins]
        if self.proxy:
            limited = Fault.status(
                429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, {"Retry-After": "1"}
            )
            found.append(Endpoint("bluesky", self.proxy, BLUESKY_WRITE, None, lambda: limited))
        return found

    def endpoint(self, place: Place) -> Endpoint:
        """Where posts to this one destination go."""
        same = [endpoint for endpoint in self.endpoints() if endpoint.kind == place.kind]
        key = {"slack": "channel", "teams": "conversation"}.get(place.kind)
        if key is None:
            return same[place.account]

        def here(params: Params) -> bool:
            return params.get(key) == place.where

        return replace(same[0], when=here)

    async def posts(self, place: Place, text: str) -> list[str]:
        """The posts of `text` at `place` now, each by the id its link in a report carries."""
        match place.kind:
            case "slack":
                messages = self.slack.messages(place.where)
                return ["p" + m["ts"].replace(".", "") for m in messages if m.get("text") == text]
            case "teams":
                return [m["id"] for m in self.connector.posted(place.where) if m.get("text") == text]
            case "x":
                return [tweet.id for tweet in self.xs[place.account].tweets if tweet.text == text]
            case "mastodon":
                return [status.id for status in self.mastodons[place.account].statuses if status.text == text]
            case "linkedin":
                return [post.id for post in self.linkedins[place.account].posts if post.shown == text]
            case "bluesky":
                return await self._bluesky_posts(place, text)
        raise ValueError(place.kind)

    def requests(self, place: Place, text: str) -> list[Request]:
        """Every request that tried to post `text` at `place`, in the order they came."""
        match place.kind:
            case "slack":
                calls = self.slack.calls_to("chat.postMessage")
                return [
                    Request(c.at, None, c.fault)
                    for c in calls
                    if c.params.get("channel") == place.where and c.params.get("text") == text
                ]
            case "teams":
                activities = self.connector.calls_to("POST activities")
                return [
                    Request(c.at, None, c.fault)
                    for c in activities
                    if c.conversation == place.where and c.body.get("text") == text
                ]
            case "x":
                tweets = self.xs[place.account].calls_to("POST /2/tweets")
                return [Request(c.at, c.wall, c.fault) for c in tweets if (c.json or {}).get("text") == text]
            case "mastodon":
                statuses = self.mastodons[place.account].calls_to("POST /api/v1/statuses")
                return [Request(c.at, c.wall, c.fault) for c in statuses if c.params.get("status") == text]
            case "linkedin":
                posts = self.linkedins[place.account].calls_to("POST /rest/posts")
                return [
                    Request(c.at, c.wall, c.fault)
                    for c in posts
                    if read_little_text(str(c.params.get("commentary")))[0] == text
                ]
        raise ValueError(f"requests are not told apart by destination on {place.kind}")

    async def _bluesky_posts(self, place: Place, text: str) -> list[str]:
        assert self.pds is not None
        params = {"repo": self.pds.accounts[place.account].did, "collection": "app.bsky.feed.post", "limit": "100"}
        url = f"{self.pds.url}/xrpc/com.atproto.repo.listRecords"
        async with aiohttp.ClientSession() as http, http.get(url, params=params) as response:
            records = (await response.json())["records"]
        return [record["uri"].rsplit("/", 1)[1] for record in records if record["value"].get("text") == text]


def _options(place: Place, pds: Pds | None) -> dict[str, str]:
    """A destination's table in relay.toml (beyond its kind)."""
    n = place.account
    match place.kind:
        case "slack" | "teams":
            return {"channel": place.where}
        case "x":
            roles = ("api_key", "api_secret", "access_token", "access_token_secret")
            return {**{f"{role}_env": f"X{n}_{role.upper()}" for role in roles}, "url_env": f"X{n}_API_URL"}
        case "mastodon":
            return {"url_env": f"MASTODON{n}_URL", "token_env": f"MASTODON{n}_ACCESS_TOKEN"}
        case "linkedin":
            return {
                "organization": "urn:li:organization:2414183",
                "url_env": f"LINKEDIN{n}_API_URL",
                "token_env": f"LINKEDIN{n}_ACCESS_TOKEN",
            }
        case "bluesky":
            assert pds is not None
            return {"handle": pds.accounts[n].handle, "app_password_env": f"BLUESKY{n}_APP_PASSWORD"}
    raise ValueError(place.kind)


@asynccontextmanager
async def fleet(
    slack: FakeSlack,
    *,
    slack_channels: int,
    teams_channels: int,
    x: int,
    mastodon: int,
    linkedin: int,
    pds: Pds | None = None,
) -> AsyncIterator[Fleet]:
    """The fakes and destinations of a fan-out (Bluesky: one destination per account of `pds`)."""
    places = [Place(f"slack-{i:03d}", "slack", f"CFLEET{i:03d}") for i in range(slack_channels)]
    places += [Place(f"teams-{i:02d}", "teams", f"19:fleet-{i:02d}@thread.tacv2") for i in range(teams_channels)]
    for kind, count in (("x", x), ("mastodon", mastodon), ("linkedin", linkedin)):
        places += [Place(f"{kind}-{i}", kind, account=i) for i in range(count)]
    places += [Place(f"bluesky-{i}", "bluesky", account=i) for i in range(len(pds.accounts) if pds else 0)]
    channels = [{"id": TEAM, "name": "General"}]
    channels += [{"id": p.where, "name": p.name} for p in places if p.kind == "teams"]
    async with AsyncExitStack() as stack:

        async def started(fake: Any) -> Any:
            return await stack.enter_async_context(fake)

        yield Fleet(
            slack,
            await started(FakeConnector({TEAM: channels})),
            [await started(FakeX(f"x{i}-key", f"x{i}-secret", f"x{i}-token", f"x{i}-token-secret")) for i in range(x)],
            [await started(FakeMastodon(f"mastodon-{i}-token")) for i in range(mastodon)],
            [await started(FakeLinkedIn(f"linkedin-{i}-token")) for i in range(linkedin)],
            places,
            pds,
            await started(FaultyProxy(pds.url)) if pds else None,
        )


def finished(slack: FakeSlack, broadcast_id: str) -> dict[str, Any] | None:
    """The leader's live report of this broadcast, once it says every delivery is final."""
    for message in slack.messages(f"D{LEADER}"):
        text = message.get("text", "")
        if text.startswith(f"Broadcast {broadcast_id} ") and text.endswith("delivered."):
            return message
    return None


async def final_report(slack: FakeSlack, broadcast_id: str, timeout: float) -> Report:
    """Wait until the leader's live report of this broadcast says every delivery is final; read it."""
    message = await slack.wait_for(lambda: finished(slack, broadcast_id), timeout)
    assert message is not None
    # The lines are packed into sections of at most 3,000 characters, a line never split between two.
    sections = [b["text"]["text"] for b in message["blocks"][1:] if b["type"] == "section"]
    lines, tallies = {}, {}
    for row in "\n".join(sections).split("\n"):
        if match := _LINE.match(row):
            lines[match["name"]] = match["words"]
        elif match := _TALLY.match(row):
            tallies[(match["kind"], match["status"])] = int(match["count"])
        else:
            raise AssertionError(f"a report line that neither names nor counts destinations: {row!r}")
    return Report(message["text"], lines, tallies)
