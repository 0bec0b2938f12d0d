"""Loopback fakes of the Slack Web API and X API v2: record requests, inject faults."""

from .faults import Fault, FaultPlan
from .slack import Call, FakeSlack
from .x import FakeX, Tweet, XCall

__all__ = ["Call", "FakeSlack", "FakeX", "Fault", "FaultPlan", "Tweet", "XCall"]
