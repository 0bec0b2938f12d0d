"""Loopback aiohttp server base: lifecycle, call recording, fault plan and `wait_for`.

Both fakes inherit this so tests drive them identically and nothing is copy-pasted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Generic, Self, TypeVar

from aiohttp import web

from .faults import Fault, FaultPlan, Gate, enact
from .limits import Params, RateLimits

CallT = TypeVar("CallT")
T = TypeVar("T")

# Held requests are woken on close, so shutdown only needs a short grace period.
_SHUTDOWN_TIMEOUT = 1.0


class LoopbackServer(Generic[CallT]):
    """An aiohttp app served on 127.0.0.1 at a random port inside an `async with`."""

    def __init__(self) -> None:
        self.calls: list[CallT] = []
        self.faults = FaultPlan()
        self.limits = RateLimits()  # none unless a test or the benchmark sets the platform's own
        self.latency = 0.0  # seconds each answer takes, to emulate a real network's round trip
        # Bodies as large as any network takes (a 16 MB Mastodon image); each fake refuses past its own limits.
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self._gate = Gate()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._origin: str | None = None

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:PORT` of the running server."""
        if self._origin is None:
            raise RuntimeError(f"{type(self).__name__} is not running; use `async with`")
        return self._origin

    async def __aenter__(self) -> Self:
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        self._runner = runner
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        self._origin = f"http://{host}:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Drop held requests, then stop the server; safe to call twice."""
        self._gate.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def release(self) -> None:
        """Let requests held by `Fault.hang()` answer now."""
        self._gate.release()

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Return predicate()'s first truthy value, re-checked as requests arrive and apply."""
        async with self._changed:
            try:
                async with asyncio.timeout(timeout):
                    while not (result := predicate()):
                        await self._changed.wait()
                    return result
            except TimeoutError:
                recorded = "\n".join(f"  {call!r}" for call in self.calls) or "  (nothing)"
                raise AssertionError(
                    f"{type(self).__name__}: condition not met within {timeout}s; recorded calls:\n{recorded}"
                ) from None

    def rate_limited_for(self, seconds: float) -> Fault:
        """This platform's own 429 saying "come back in `seconds`"; fakes with `limits` override it."""
        raise NotImplementedError(f"{type(self).__name__} does not emulate rate limits")

    def _fault_for(self, endpoint: str, params: Params) -> Fault | None:
        """The injected fault this request suffers, else the 429 its platform's limits call for."""
        fault = self.faults.take(endpoint, params)
        if fault is None and (wait := self.limits.admit(endpoint, params)) is not None:
            fault = self.rate_limited_for(wait)
        return fault

    async def _serve(
        self,
        request: web.Request,
        call: CallT,
        fault: Fault | None,
        apply: Callable[[], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Record `call`, answer via `apply` under `fault`, waking `wait_for` at each step."""
        self.calls.append(call)
        await self._notify()
        if self.latency:
            await asyncio.sleep(self.latency)  # the emulated network's round trip, not a test waiting

        async def applied() -> web.StreamResponse:
            response = await apply()
            await self._notify()
            return response

        return await enact(fault, request, applied, self._gate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
