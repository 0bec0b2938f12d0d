"""Requests for one kind of statement, sent together: those that arrive while one is on its way to the
database go in the next, as one statement.

Where a fan-out starts, hundreds of deliveries each need the same small write at once (a post's place in
its channel's pace, its mark before it leaves). One at a time, each was a trip through the pool, and the
posts that the rest of the fan-out waits for (Teams', whose second window opens only once the first's
answers are back) queued behind the others'. Together they cost a few trips; and nothing waits to be
grouped: the first request of a quiet moment is sent at once (SQLite's commits are grouped the same way).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Grouped(Generic[K, V]):
    def __init__(self, send: Callable[[list[K]], Awaitable[Mapping[K, V]]], missing: V) -> None:
        """`send` makes one statement of the requests it is given and answers each (by the request; a request
        it does not answer gets `missing`)."""
        self._send = send
        self._missing = missing
        self._queued: dict[K, list[asyncio.Future[V]]] = {}
        self._sending: asyncio.Task[None] | None = None

    async def __call__(self, request: K) -> V:
        answer: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._queued.setdefault(request, []).append(answer)
        if self._sending is None:
            self._sending = asyncio.create_task(self._send_queued())
        return await answer

    async def _send_queued(self) -> None:
        try:
            while self._queued:
                group, self._queued = self._queued, {}
                try:
                    answers = await self._send(list(group))
                except Exception as error:
                    for waiting in group.values():
                        for answer in waiting:
                            if not answer.done():
                                answer.set_exception(error)
                    continue
                for request, waiting in group.items():
                    for answer in waiting:
                        if not answer.done():
                            answer.set_result(answers.get(request, self._missing))
        finally:
            self._sending = None
