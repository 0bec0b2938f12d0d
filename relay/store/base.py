"""What the core asks of a database, whichever it is: run a function with a connection, and commit writes.

The outbox, the broadcasts and the audit trail are written as functions of a connection (`fn(conn)`) in SQL
that both backends understand; a backend runs them so that the event loop never blocks on the database
(SQLite on a thread of its own, PostgreSQL in greenlets whose statements the event loop awaits). The little
SQL that differs by dialect is a backend attribute (`Store.skip_locked`), not an `if` in the core. How a
write is committed is the backend's: SQLite commits writes in groups, PostgreSQL each on its own beside the
others (see each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

log = logging.getLogger("relay.store")

# Waits between tries of a write the database refused: short at first, since space is often freed (or a
# restarted server is back) within seconds, and never more than a few seconds once it is back; a few idle
# tries a minute, never a busy loop.
WRITE_RETRY_FIRST = 0.25
WRITE_RETRY_MAX = 5.0


class Row(Protocol):
    """A row read by name (`row["state"]`) or by position (`row[0]`): `sqlite3.Row`, and its twin for
    PostgreSQL."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """The part of the DB-API the core uses, with `?` placeholders on both backends."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


class StoreError(Exception):
    """The database cannot be used; the message says what to do."""


def unreadable_schema(where: str, version: int, readable: int) -> StoreError:
    """A database of another schema than this release's, opened only to be read: it cannot be migrated."""
    fix = (
        "start this release's bot on it once to bring it up to date"
        if version < readable
        else "use the release that wrote it"
    )
    return StoreError(f"{where} has schema {version}, this release reads schema {readable}: {fix}")


class Unwritable(StoreError):
    """The database refused a write and its transaction was rolled back whole: nothing was changed.
    `cause` is in words for the person whose action it was; the message, naming the database, for the operator."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


class Duplicate(Exception):
    """A write would have added a row whose key `table` already holds: nothing of the write was kept. Raised
    by the write, not by its statement: PostgreSQL tells it only when the transaction's answers come back."""

    def __init__(self, table: str) -> None:
        super().__init__(f"a row of {table} with this key is already there")
        self.table = table


class Store(ABC):
    """One database: its connections, and how a write is committed."""

    # Appended to the query that picks deliveries to claim: where several processes claim at once, each
    # skips the rows another is taking instead of waiting for them.
    skip_locked = ""
    # True where this process is the only one using the database (SQLite's lock file says so): whatever
    # was in flight when it started was left by a dead process, whatever its lease says.
    sole = False

    def __init__(self) -> None:
        # Who this process is, in the leases it takes (`lease_owner` starts with it): a new one every start,
        # so a restarted process never mistakes what its previous life held for its own.
        self.instance = uuid.uuid4().hex[:12]
        self._refusing = False  # the last write was refused: said once in the log, until one succeeds
        self._locks: dict[str, asyncio.Lock] = {}
        self._lockers: Counter[str] = Counter()

    @abstractmethod
    async def open(self, exclusive: bool = True) -> None:
        """Open (and migrate) the database; `exclusive` is for the bot, which dispatches."""

    @abstractmethod
    async def open_read_only(self) -> None:
        """Open for reading only (`list`, `audit`): nothing is created, migrated or locked, so an auditor can
        read a copy on a read-only disk, or with a database user that may only read."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def call(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn(connection)` outside any transaction, without blocking the event loop: for reads."""

    async def snapshot(self, fn: Callable[[Connection], T]) -> T:
        """`call`, for a read of several statements that must agree with each other (a report's counts and
        the rows it lists): they see the database as it was at one moment, whoever writes meanwhile.
        SQLite's one connection runs reads and writes one after another, so any read is one moment."""
        return await self.call(fn)

    @abstractmethod
    def _commit(self, fn: Callable[[Connection], T], leased: bool) -> Awaitable[T]:
        """Run `fn` in a transaction and commit it; raises Unwritable, having changed nothing, if the
        database refused it, or what `fn` raised, its changes undone. See `write` for `leased`."""

    async def gone(self, instances: set[str]) -> set[str]:
        """Which of these other processes have stopped, so that what they held can be taken back at once
        rather than when its lease runs out. The sole process on a database knows every other one stopped."""
        return instances if self.sole else set()

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """One at a time, in this process and in every other on the database: for what two instances must
        not do at once (draw the same live report, post it for the first time)."""
        self._lockers[name] += 1
        lock = self._locks.setdefault(name, asyncio.Lock())
        try:
            async with lock, self._across(name):
                yield
        finally:
            self._lockers[name] -= 1
            if not self._lockers[name]:
                del self._lockers[name], self._locks[name]

    @abstractmethod
    def _across(self, name: str) -> contextlib.AbstractAsyncContextManager[None]:
        """The other processes' part of `exclusive`."""

    @abstractmethod
    async def announce(self) -> None:
        """New work was committed: wake the other processes on this database."""

    @abstractmethod
    def listen(
        self, wake: Callable[[], None], paused: Callable[[str, float], None], recount: Callable[[], None]
    ) -> None:
        """Call `wake` (on the event loop) whenever another process announces new work, `paused(key,
        until)` when one was asked by a network to pause, and `recount` when one started or stopped (the
        networks' rates are shared out anew, see `alive`)."""

    # What paces calls to a network across processes (see `relay.pacing`).

    @abstractmethod
    async def reserve(self, key: str, interval: float, now: float) -> float:
        """When a post to place `key` may start, `interval` after the last one any process reserved."""

    @abstractmethod
    async def pause(self, key: str, until: float) -> None:
        """A network asked every call sharing `key` to wait until `until`: tell the other processes."""

    @abstractmethod
    async def pauses(self, now: float) -> dict[str, float]:
        """The pauses still running, for a process that starts in the middle of one."""

    @abstractmethod
    async def alive(self, now: float) -> int:
        """Say this process is alive; how many are (a rate a network publishes is shared out among them)."""

    @property
    def refusing_writes(self) -> bool:
        """The database refused the last write and has taken none since: the bot is up, and can neither take
        a person's action nor record an outcome, which a health check must say."""
        return self._refusing

    async def write(self, fn: Callable[[Connection], T], *, leased: bool = False) -> T:
        """Run `fn` in a transaction, answered once it is durable; raises Unwritable, having changed nothing,
        if the database refuses it.

        `leased`: every row `fn` changes is one it holds, checked in the change itself (`WHERE lease_owner =
        ?`, or locked with `skip_locked`), so what others commit meanwhile cannot make its change wrong: the
        outbox's writes. Where several processes write at once (PostgreSQL), such a write needs no isolation
        beyond each statement's; the others are kept exactly as safe as one writer at a time would be."""
        return await self._noting_refusals(self._commit(fn, leased))

    async def write_one(self, sql: str, values: Sequence[Any]) -> int:
        """`write` of one statement that is atomic on its own (an upsert): how many rows it changed."""
        return await self._noting_refusals(self._commit_one(sql, values))

    def _commit_one(self, sql: str, values: Sequence[Any]) -> Awaitable[int]:
        """Where a transaction of its own costs more than the statement (PostgreSQL's BEGIN and COMMIT are a
        round trip each), a backend sends the statement alone."""
        return self._commit(lambda conn: conn.execute(sql, values).rowcount, False)

    def _commit_returning(self, sql: str, values: Sequence[Any]) -> Awaitable[list[Row]]:
        """`_commit_one` of a statement that returns rows."""
        return self._commit(lambda conn: conn.execute(sql, values).fetchall(), False)

    async def _noting_refusals(self, commit: Awaitable[T]) -> T:
        try:
            result = await commit
        except Unwritable as error:
            if not self._refusing:
                log.error("%s. Until then people's commands are refused and deliveries wait; nothing is lost", error)
            self._refusing = True
            raise
        if self._refusing:
            log.warning("the database takes writes again")
            self._refusing = False
        return result

    async def persist(self, fn: Callable[[Connection], T], *, leased: bool = False) -> T:
        """`write`, tried again for as long as the database refuses it: for what the bot must write down
        whatever happens (the outcome of a post that went out), never for a person waiting for an answer."""
        return await self._until_taken(lambda: self.write(fn, leased=leased))

    async def persist_one(self, sql: str, values: Sequence[Any]) -> int:
        """`write_one`, tried again as `persist` is."""
        return await self._until_taken(lambda: self.write_one(sql, values))

    async def persist_returning(self, sql: str, values: Sequence[Any]) -> list[Row]:
        """`persist_one` of a statement that returns rows (`RETURNING`): its rows."""
        return await self._until_taken(lambda: self._noting_refusals(self._commit_returning(sql, values)))

    async def _until_taken(self, write: Callable[[], Awaitable[T]]) -> T:
        wait = WRITE_RETRY_FIRST
        while True:
            try:
                return await write()
            except Unwritable:
                await asyncio.sleep(wait)
                wait = min(wait * 2, WRITE_RETRY_MAX)
