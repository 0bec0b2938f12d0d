"""The live report's redraw scheduling: every change is drawn, however it falls against the redraw loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from relay.reports import ReportRefresher


@contextlib.asynccontextmanager
async def _alone(name: str) -> AsyncIterator[None]:
    yield


async def test_a_change_arriving_just_as_the_redraw_loop_ends_is_still_drawn() -> None:
    """The last outcome of a fan-out can land in the instant between the loop's last look for changes and
    the moment its end is seen: that change is the final state, and the report must show it."""
    loop = asyncio.get_running_loop()
    draws: list[str] = []
    drawn_again = asyncio.Event()

    async def draw(broadcast_id: str) -> int:
        draws.append(broadcast_id)
        if len(draws) == 1:
            # Two turns of the loop from now: after the loop found nothing more to draw and ended, before
            # the callbacks that see its end have run.
            loop.call_soon(loop.call_soon, refresher.refresh, broadcast_id)
        else:
            drawn_again.set()
        return 0  # drew nothing: the loop waits no longer than a turn before looking again

    refresher = ReportRefresher(draw, 0.0, _alone)
    refresher.refresh("b1")
    async with asyncio.timeout(5):
        await drawn_again.wait()
    assert draws == ["b1", "b1"]
