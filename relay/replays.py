"""Accepting a signed request once, across restarts and across instances sharing one database.

A chat platform's signature proves who sent a request, not that it was sent only once: a copy captured on
the way can be sent again while its timestamp is still accepted. The signatures already accepted are kept
in the database for that window, so neither a restart nor a second instance forgets them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from relay.store import Connection, Duplicate, Store, StoreError

T = TypeVar("T")

# One statement: a signature older than the window counts as new, so the old ones need clearing out only now
# and then, not on every request (where two instances clearing the same rows at once made each other's
# transactions start again).
_NOTE = (
    "INSERT INTO seen_requests (signature, seen_at) VALUES (?, ?) ON CONFLICT (signature)"
    " DO UPDATE SET seen_at = excluded.seen_at WHERE seen_requests.seen_at < ?"
)


class Copy(Exception):
    """The request was accepted before: what it asks is not done again, and its write is undone."""


class SeenRequests:
    def __init__(self, store: Store, window: float) -> None:
        self.store = store
        self.window = window
        self._purged_at = 0.0

    async def first_time(self, signature: str, now: float) -> bool:
        """Whether `signature` is new within the last `window` seconds (and from now on, seen). A database
        that cannot take the write lets the request by: its action cannot be written either, so it changes
        nothing."""
        try:
            added = await self.store.write_one(_NOTE, (signature, now, now - self.window))
        except StoreError:
            return True
        await self.tidy(now)
        return added == 1

    def note(self, conn: Connection, signature: str, now: float) -> None:
        """`first_time`, inside a transaction that writes what the request asks: a signature seen before makes
        the write raise Duplicate. Sent without waiting for its answer, so the transaction stays one round
        trip; and a signature is never sent again once it is older than the window (Slack's own window is
        shorter), so one that is there is a copy."""
        conn.execute("INSERT INTO seen_requests (signature, seen_at) VALUES (?, ?)", (signature, now))

    async def tidy(self, now: float) -> None:
        """Clears out the signatures older than the window, once a window; a database that refuses it
        now is cleared the next time."""
        if now - self._purged_at > self.window:
            self._purged_at = now
            with contextlib.suppress(StoreError):
                await self.store.write_one("DELETE FROM seen_requests WHERE seen_at < ?", (now - self.window,))


class Unseen:
    """A signed request whose signature is not yet noted as seen.

    It is noted in the transaction of the one thing the request writes (a draft), so that the request costs
    one write and a copy undoes it; or else on its own (`look`), started as early as its caller wants the
    answer."""

    def __init__(self, seen: SeenRequests, signature: str, at: float) -> None:
        self.seen = seen
        self.signature = signature
        self.at = at
        self._written = False
        self._looked: asyncio.Future[bool] | None = None

    def note(self, conn: Connection) -> None:
        """First in the request's own write, which must be made `within`. Once looked at on its own, it is not
        noted again (it would find itself)."""
        if self._looked is None:
            self.seen.note(conn, self.signature, self.at)

    async def within(self, write: Awaitable[T]) -> T:
        """The request's own write, which noted it: raises Copy, nothing of it written, for a copy."""
        try:
            result = await write
        except Duplicate as error:
            if error.table != "seen_requests":
                raise
            raise Copy from None
        self._written = True
        await self.seen.tidy(self.at)
        return result

    def look(self) -> asyncio.Future[bool]:
        """Notes it on its own, once, in the background: whether it is new."""
        if self._looked is None:
            self._looked = asyncio.ensure_future(self.seen.first_time(self.signature, self.at))
        return self._looked

    async def copy(self) -> bool:
        """Whether the request was seen before it: looked at on its own, unless its write noted it."""
        return not self._written and not await self.look()
