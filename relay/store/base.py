"""What the core asks of a database, whichever it is: run a function with a connection, and commit writes.

The outbox, the broadcasts and the audit trail are written as functions of a connection (`fn(conn)`) in SQL
that both backends understand; a backend runs them on a thread of its own, so the event loop never blocks on
the database. The little SQL that differs by dialect is a backend attribute (`Store.skip_locked`), not an `if`
in the core.

Writes are committed in groups: those that arrive while one commit is on its way to the disk share the next
(see `Store.write`). With a durable commit each costs an fsync and a trip to the database thread; a fan-out
records hundreds of outcomes a second, and one commit for each cost more CPU than the posts themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
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


Outcomes = list[tuple[Any, Exception | None]]


class Store(ABC):
    """One database, its connections on threads of their own, and the queue of writes waiting for a commit."""

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
        self._queued: list[tuple[Callable[[Connection], Any], asyncio.Future[Any]]] = []
        self._committing: asyncio.Task[None] | None = None

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
        """Run `fn(connection)` on a database thread, outside any transaction: for reads."""

    async def snapshot(self, fn: Callable[[Connection], T]) -> T:
        """`call`, for a read of several statements that must agree with each other (a report's counts and
        the rows it lists): they see the database as it was at one moment, whoever writes meanwhile.
        SQLite's one connection runs reads and writes one after another, so any read is one moment."""
        return await self.call(fn)

    @abstractmethod
    def _commit(self, fns: list[Callable[[Connection], Any]]) -> Outcomes:
        """On a database thread: run each `fn` in its own savepoint inside one transaction, and commit. Each
        one's result, or the error that undid it alone; raises Unwritable (nothing written) if the database
        refused the transaction."""

    @abstractmethod
    async def _on_commit_thread(self, fn: Callable[[], Outcomes]) -> Outcomes: ...

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
    def listen(self, wake: Callable[[], None], paused: Callable[[str, float], None]) -> None:
        """Call `wake` (on the event loop) whenever another process announces new work, and `paused(key,
        until)` when one was asked by a network to pause."""

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

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in a transaction, answered once it is durable; raises Unwritable, having changed nothing,
        if the database refuses it. Writes that arrive while a commit is under way are committed together
        next, each in its own savepoint: one that raises is undone alone and raises to its own caller only,
        and none is answered before the commit that holds it (group commit, as PostgreSQL does it)."""
        try:
            result = await self._queue(fn)
        except Unwritable as error:
            if not self._refusing:
                log.error("%s. Until then people's commands are refused and deliveries wait; nothing is lost", error)
            self._refusing = True
            raise
        if self._refusing:
            log.warning("the database takes writes again")
            self._refusing = False
        return result

    async def persist(self, fn: Callable[[Connection], T]) -> T:
        """`write`, tried again for as long as the database refuses it: for what the bot must write down
        whatever happens (the outcome of a post that went out), never for a person waiting for an answer."""
        wait = WRITE_RETRY_FIRST
        while True:
            try:
                return await self.write(fn)
            except Unwritable:
                await asyncio.sleep(wait)
                wait = min(wait * 2, WRITE_RETRY_MAX)

    def _queue(self, fn: Callable[[Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        self._queued.append((fn, answer))
        if self._committing is None:
            self._committing = loop.create_task(self._commit_queued())
        return answer

    async def _commit_queued(self) -> None:
        """Until nothing is queued: commit everything queued so far in one transaction, then answer each."""
        group: list[tuple[Callable[[Connection], Any], asyncio.Future[Any]]] = []
        try:
            while self._queued:
                group, self._queued = self._queued, []
                try:
                    outcomes = await self._on_commit_thread(functools.partial(self._commit, [fn for fn, _ in group]))
                except Exception as failure:  # the transaction failed whole: none of the group was written
                    outcomes = [(None, failure)] * len(group)
                for (_, answer), (result, error) in zip(group, outcomes, strict=True):
                    if answer.done():  # its caller stopped waiting
                        continue
                    if error is None:
                        answer.set_result(result)
                    else:
                        answer.set_exception(error)
        except asyncio.CancelledError:
            for _, answer in [*group, *self._queued]:
                answer.cancel()
            raise
        finally:
            self._committing = None


def in_savepoints(conn: Any, fns: list[Callable[[Connection], Any]], fatal: Callable[[Exception], bool]) -> Outcomes:
    """Inside an open transaction: each `fn` in its own savepoint, undone alone if it raises. An error that
    `fatal` picks out (the database's refusal, after which it may already have undone more than the
    savepoint) is raised, for the whole transaction to be rolled back."""
    outcomes: Outcomes = []
    for fn in fns:
        conn.execute("SAVEPOINT one_write")
        try:
            outcomes.append((fn(conn), None))
        except Exception as error:
            if fatal(error):
                raise
            conn.execute("ROLLBACK TO SAVEPOINT one_write")
            outcomes.append((None, error))
        conn.execute("RELEASE SAVEPOINT one_write")
    return outcomes
