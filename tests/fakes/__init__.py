"""Loopback fakes of the Slack Web API, X API v2, Mastodon, LinkedIn and Threads: record requests, inject faults."""

from .faults import Fault, FaultPlan
from .linkedin import FakeLinkedIn, LinkedInCall, LinkedInPost
from .mastodon import FakeMastodon, MastodonCall, MastodonStatus
from .slack import Call, FakeSlack
from .threads import FakeThreads, ThreadsCall, ThreadsPost
from .x import FakeX, Tweet, XCall

__all__ = [
    "Call",
    "FakeLinkedIn",
    "FakeMastodon",
    "FakeSlack",
    "FakeThreads",
    "FakeX",
    "Fault",
    "FaultPlan",
    "LinkedInCall",
    "LinkedInPost",
    "MastodonCall",
    "MastodonStatus",
    "ThreadsCall",
    "ThreadsPost",
    "Tweet",
    "XCall",
]
