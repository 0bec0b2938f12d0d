"""Platform-neutral fault injection shared by the loopback fakes.

A test queues `Fault`s in a fake's `FaultPlan`; each matching request consumes one
and the fake plays it out with `enact`, so Slack and X misbehave the same way. A `Storm`
draws each request's fault from a weighted mix instead, with a seeded `random.Random`.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

Params = Mapping[str, Any]
Predicate = Callable[[Params], bool]


class FaultKind(enum.Enum):
    """What the fake does instead of (or on top of) answering normally."""

    STATUS = "status"
    DROP_BEFORE = "drop_before"
    DROP_AFTER = "drop_after"
    HANG = "hang"
    DELAY = "delay"


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour; build it with the named constructors, not directly."""

    kind: FaultKind
    code: int = 0
    body: dict[str, Any] | str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0

    @classmethod
    def status(
        cls,
        code: int,
        body: dict[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Answer `code` with `body`/`headers` and leave the request unapplied."""
        return cls(
            FaultKind.STATUS,
            code=code,
            body=body,
            headers=tuple((headers or {}).items()),
        )

    @classmethod
    def drop_before(cls) -> Fault:
        """Close the connection without answering; the request is not applied."""
        return cls(FaultKind.DROP_BEFORE)

    @classmethod
    def drop_after(cls) -> Fault:
        """Apply the request, then close the connection: it landed, unbeknown to the client."""
        return cls(FaultKind.DROP_AFTER)

    @classmethod
    def hang(cls) -> Fault:
        """Apply the request, then hold the answer until `release()` or close (which drops)."""
        return cls(FaultKind.HANG)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Apply and answer normally, `seconds` late."""
        return cls(FaultKind.DELAY, seconds=seconds)

    def response(self) -> web.Response:
        """The canned answer of a STATUS fault."""
        headers = dict(self.headers)
        if isinstance(self.body, dict):
            return web.json_response(self.body, status=self.code, headers=headers)
        return web.Response(status=self.code, text=self.body, headers=headers)


# One outcome of a storm: a fault, a maker of one (a 429 whose reset is "now + n" is made when the
# request comes), or None for a normal answer.
Draw = Fault | Callable[[], Fault] | None


@dataclass(frozen=True)
class Storm:
    """A weighted mix of faults; each request it meets draws one (or a normal answer) from `rng`."""

    mix: tuple[tuple[Draw, float], ...]
    rng: random.Random

    def draw(self) -> Fault | None:
        [drawn] = self.rng.choices([draw for draw, _ in self.mix], weights=[weight for _, weight in self.mix])
        return drawn() if callable(drawn) else drawn


@dataclass
class _Rule:
    endpoint: str
    fault: Fault | Storm
    remaining: int | None
    when: Predicate | None

    def matches(self, endpoint: str, params: Params) -> bool:
        return self.endpoint == endpoint and (self.when is None or self.when(params))


class FaultPlan:
    """FIFO queue of faults per endpoint; each request consumes the first matching rule."""

    def __init__(self) -> None:
        self._rules: list[_Rule] = []

    def add(
        self,
        endpoint: str,
        fault: Fault,
        *,
        times: int | None = 1,
        when: Predicate | None = None,
    ) -> None:
        """Queue `fault` for the next `times` (None: all) `endpoint` requests matching `when`."""
        if times is not None and times < 1:
            raise ValueError(f"times must be >= 1 or None, got {times}")
        self._rules.append(_Rule(endpoint, fault, times, when))

    def storm(
        self,
        endpoint: str,
        mix: Iterable[tuple[Draw, float]],
        rng: random.Random,
        *,
        times: int | None = None,
        when: Predicate | None = None,
    ) -> None:
        """For the next `times` (None: all) `endpoint` requests matching `when`, a fault drawn from `mix`,
        pairs of a draw and its weight (None is a normal answer): `[(None, 6), (Fault.drop_after(), 1)]`."""
        if times is not None and times < 1:
            raise ValueError(f"times must be >= 1 or None, got {times}")
        self._rules.append(_Rule(endpoint, Storm(tuple(mix), rng), times, when))

    def take(self, endpoint: str, params: Params) -> Fault | None:
        """Consume and return the fault this request should suffer, if any."""
        for rule in self._rules:
            if rule.matches(endpoint, params):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                return rule.fault.draw() if isinstance(rule.fault, Storm) else rule.fault
        return None

    def clear(self) -> None:
        """Forget every queued fault, permanent ones included."""
        self._rules.clear()

    @property
    def pending(self) -> list[tuple[str, Fault | Storm]]:
        """Faults not yet consumed, so a test can assert its injected fault was hit."""
        return [(rule.endpoint, rule.fault) for rule in self._rules]


class Gate:
    """Holds hung/delayed answers: `release()` lets current ones answer, `close()` drops all."""

    def __init__(self) -> None:
        self._released = asyncio.Event()
        self._closed = asyncio.Event()

    def release(self) -> None:
        """Let every currently hung request answer; later hangs hang again."""
        self._released.set()
        self._released = asyncio.Event()

    def close(self) -> None:
        """Wake every held request for good so server shutdown never waits on them."""
        self._closed.set()
        self._released.set()

    async def hold(self) -> bool:
        """Wait for release or close; True if the fake is closing."""
        if not self._closed.is_set():
            await self._released.wait()
        return self._closed.is_set()

    async def wait_closed(self, seconds: float) -> bool:
        """Sleep `seconds` unless the fake closes first; True if it did."""
        try:
            await asyncio.wait_for(self._closed.wait(), seconds)
        except TimeoutError:
            return False
        return True


def _drop(request: web.Request) -> web.Response:
    """Close the TCP connection so the client sees a disconnect instead of an answer."""
    if request.transport is not None:
        request.transport.close()
    return web.Response()


async def enact(
    fault: Fault | None,
    request: web.Request,
    apply: Callable[[], Awaitable[web.StreamResponse]],
    gate: Gate,
) -> web.StreamResponse:
    """Play `fault` out around `apply`, which mutates fake state and builds the answer."""
    if fault is None:
        return await apply()
    if fault.kind is FaultKind.STATUS:
        return fault.response()
    if fault.kind is FaultKind.DROP_BEFORE:
        return _drop(request)
    response = await apply()
    if fault.kind is FaultKind.DROP_AFTER:
        return _drop(request)
    if fault.kind is FaultKind.HANG:
        closing = await gate.hold()
    else:
        closing = await gate.wait_closed(fault.seconds)
    return _drop(request) if closing else response
