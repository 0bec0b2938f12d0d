"""The platforms as the benchmark emulates them: each one's published limits, and the floor they set.

The figures come from the platforms' own pages; where a platform publishes none (Slack's
workspace-wide cap is "several hundred messages per minute"), the value chosen is said below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.fakes import FakeLinkedIn, FakeMastodon, FakeSlack, FakeX
from tests.fakes.limits import Limit, RateLimits, Window
from tests.fakes.teams import FakeConnector


def _channel(params: Mapping[str, Any]) -> str:
    return str(params.get("channel", ""))


def _conversation(params: Mapping[str, Any]) -> str:
    return str(params.get("conversation", ""))


# chat.postMessage: "1 message per second per channel", and a workspace-wide limit of "several hundred
# messages per minute" (docs.slack.dev, chat.postMessage and "Rate limits"): taken here as 600 a minute.
# chat.update is a Tier 3 method: 50+ a minute.
SLACK_WORKSPACE = Window(600, 60.0)
SLACK = (
    Limit(("chat.postMessage",), (Window(1, 1.0),), scope=_channel),
    Limit(("chat.postMessage",), (SLACK_WORKSPACE,)),
    Limit(("chat.update",), (Window(50, 60.0),)),
)
# Teams: per bot per conversation 7 in 1 s, 8 in 2 s, 60 in 30 s, 1800 in an hour; all of an app's calls
# in a tenant, 50 a second (learn.microsoft.com/microsoftteams/platform/bots/how-to/rate-limit).
TEAMS_CALLS = ("POST activities", "POST reply", "PUT activity", "DELETE activity", "GET channels")
TEAMS_TENANT = Window(50, 1.0)
TEAMS = (
    Limit(TEAMS_CALLS, (Window(7, 1.0), Window(8, 2.0), Window(60, 30.0), Window(1800, 3600.0)), scope=_conversation),
    Limit(TEAMS_CALLS, (TEAMS_TENANT,)),
)
# X: POST /2/tweets, 100 per 15 minutes per user (developer.x.com rate-limit table; tier dependent).
X = (Limit(("POST /2/tweets",), (Window(100, 900.0),)),)
# Mastodon: 300 calls per 5 minutes per account (docs.joinmastodon.org, "Rate limits").
MASTODON = (
    Limit(
        ("POST /api/v1/statuses", "DELETE /api/v1/statuses/:id", "GET /api/v1/accounts/verify_credentials"),
        (Window(300, 300.0),),
    ),
)
# LinkedIn: posts are capped per member and app per day (learn.microsoft.com/linkedin, "Rate limits";
# the figure is in each app's developer portal): taken here as 150 a day.
LINKEDIN = (Limit(("POST /rest/posts",), (Window(150, 86_400.0),)),)


def enforce(
    slack: FakeSlack, connector: FakeConnector, x: FakeX, mastodon: FakeMastodon, linkedin: FakeLinkedIn, latency: float
) -> None:
    """Make each fake answer after `latency` seconds and refuse calls over its platform's limits."""
    for fake, limits in ((slack, SLACK), (connector, TEAMS), (x, X), (mastodon, MASTODON), (linkedin, LINKEDIN)):
        fake.limits = RateLimits(limits)
        fake.latency = latency


def floor(slack_channels: int, teams_channels: int, latency: float) -> float:
    """The least time the emulated limits allow for one post to each place: the slowest network's.

    Each post takes one round trip; beyond that, Slack's workspace window and Teams' tenant budget each
    let `count` posts through per window. The public networks take one post each, well inside their
    windows, and one post per channel is inside every per-channel limit.
    """
    return max(_waits(slack_channels, SLACK_WORKSPACE), _waits(teams_channels, TEAMS_TENANT)) + latency


def _waits(posts: int, window: Window) -> float:
    """How long the last of `posts` sent at once waits for `window` to let it through."""
    return window.seconds * ((posts - 1) // window.count) if posts else 0.0
