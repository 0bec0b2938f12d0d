"""Keeping a live report up to date without flooding the chat platform.

Deliveries change in bursts; a report is redrawn at most once per `spacing` seconds per broadcast, and a
change that arrives while it is being drawn makes it draw once more, so it always ends on the latest state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class ReportRefresher:
    def __init__(self, draw: Callable[[str], Awaitable[None]], spacing: float) -> None:
        self.draw = draw  # redraws one broadcast's report from the database
        self.spacing = spacing
        self._dirty: set[str] = set()
        self._running: dict[str, asyncio.Task[None]] = {}

    def refresh(self, broadcast_id: str) -> None:
        """Something changed: redraw soon."""
        self._dirty.add(broadcast_id)
        if broadcast_id not in self._running:
            task = asyncio.create_task(self._loop(broadcast_id))
            self._running[broadcast_id] = task
            task.add_done_callback(lambda _: self._running.pop(broadcast_id, None))

    async def _loop(self, broadcast_id: str) -> None:
        while broadcast_id in self._dirty:
            self._dirty.discard(broadcast_id)
            try:
                await self.draw(broadcast_id)
            except Exception:  # a report that fails to draw must not stop the next one
                log.exception("could not redraw the report of broadcast %s", broadcast_id)
            await asyncio.sleep(self.spacing)

    async def close(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
