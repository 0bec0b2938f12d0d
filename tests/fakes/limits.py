"""Platform rate limits, enforced by the fakes the way the platforms describe them.

A fake given `Limit`s counts each call of an endpoint per scope (a channel, the workspace, the
tenant) in sliding windows, and answers a call over any window with its platform's own 429 and the
seconds until that window frees up. Calls it refuses do not count, as on the real services.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Params = Mapping[str, Any]


@dataclass(frozen=True)
class Window:
    """At most `count` calls in any `seconds`."""

    count: int
    seconds: float


@dataclass(frozen=True)
class Limit:
    """Calls of any of `endpoints`, counted together per `scope(params)` (say, per channel), under every
    window (Teams counts all of a bot's calls in a tenant in one budget)."""

    endpoints: tuple[str, ...]
    windows: tuple[Window, ...]
    scope: Callable[[Params], str] = field(default=lambda params: "")


class RateLimits:
    def __init__(self, limits: Iterable[Limit] = (), clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = list(limits)
        self.clock = clock
        self.refused = 0  # 429s answered, for the benchmark's table
        self._seen: defaultdict[tuple[int, str], list[float]] = defaultdict(list)  # call times, oldest first

    def admit(self, endpoint: str, params: Params) -> float | None:
        """Count the call and return None, or return the seconds until every window would take it."""
        now = self.clock()
        logs = []
        wait = 0.0
        for index, limit in enumerate(self.limits):
            if endpoint not in limit.endpoints:
                continue
            log = self._seen[(index, limit.scope(params))]
            del log[: bisect_right(log, now - max(window.seconds for window in limit.windows))]
            for window in limit.windows:
                recent = len(log) - bisect_right(log, now - window.seconds)
                if recent >= window.count:
                    wait = max(wait, log[len(log) - window.count] + window.seconds - now)
            logs.append(log)
        if wait > 0:
            self.refused += 1
            return wait
        for log in logs:
            log.append(now)
        return None
