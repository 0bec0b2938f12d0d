"""SQLite, the default: one file, one process, one connection on one thread, `BEGIN IMMEDIATE` for every write.

Every call runs on a single dedicated thread so the connection is never shared between threads.
Read-then-write work runs inside `BEGIN IMMEDIATE`, which takes the write lock up front: a deferred
transaction (what sqlite-utils' `atomic()` starts) can fail half-way under contention, and a compare-and-set
must not.

Writes are committed in groups: those that arrive while one commit is on its way to the disk share the next,
each in a savepoint of its own (one that raises is undone alone, and raises to its own caller only), and none
is answered before the commit that holds it. A durable commit costs an fsync; a fan-out records hundreds of
outcomes a second, and one commit for each cost more than the posts themselves.

A write the disk refuses (full, failing, read-only) rolls its transaction back whole and raises
`Unwritable`: a person's action is refused at once, with the reason; what the bot itself must write down
(an outcome of a post that went out) waits in `persist` until the disk takes it, without spinning.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

from relay.store.base import Connection, Duplicate, Store, StoreError, Unwritable, unreadable_schema
from relay.store.schema import SHARED, SQLITE_FIRST, VERSION

T = TypeVar("T")

Outcomes = list[tuple[Any, Exception | None]]

# SQLite's primary result codes for a write the disk refused (sqlite.org/rescode.html), in a person's words.
# A full disk gives SQLITE_FULL, or SQLITE_IOERR where the kernel's error is not ENOSPC (EFBIG, EIO, EROFS).
_UNWRITABLE = {
    sqlite3.SQLITE_FULL: "the relay's disk is full",
    sqlite3.SQLITE_IOERR: "the relay's disk refused the write (it is full or failing)",
    sqlite3.SQLITE_READONLY: "the relay's database file is read-only",
}


class SqliteStore(Store):
    """Owns the connection; `call` runs a function with it on the database thread."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._queued: list[tuple[Callable[[Connection], Any], asyncio.Future[Any]]] = []
        self._committing: asyncio.Task[None] | None = None

    def __str__(self) -> str:
        return str(self.path)

    async def open(self, exclusive: bool = True) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open, exclusive)
        self.sole = exclusive

    def _open(self, exclusive: bool) -> None:
        """Refuses with one line naming the file and the fix when the file cannot be written (a read-only
        mount, another owner, a full disk): the bot cannot keep its promises without writing."""
        try:
            if exclusive:
                self._lock_fd = _lock(self.path)
            _create_private(self.path)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # an acknowledged outbox row survives a power cut
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA foreign_keys=ON")
            self._conn = conn
            self._migrate(conn)
        except (OSError, sqlite3.Error) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            raise StoreError(
                f"cannot use the database {self.path} ({reason}): make it and its folder writable by the bot's "
                "user (SQLite keeps its -wal, -shm and .lock files beside it) on a disk with free space, "
                "or point RELAY_DB at another file"
            ) from error

    async def open_read_only(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open_read_only)

    def _open_read_only(self) -> None:
        uri = self.path.resolve().as_uri()
        try:
            conn = _read_only(f"{uri}?mode=ro")
        except sqlite3.Error:
            # A WAL database opens read-only only where its -shm file exists or can be made
            # (sqlite.org/wal.html, "Read-Only Databases"); a copy nobody writes can be read as immutable.
            try:
                conn = _read_only(f"{uri}?immutable=1")
            except sqlite3.Error as error:
                raise StoreError(f"cannot read the database {self.path} ({error}); is it a relay database?") from None
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != VERSION:
            conn.close()
            raise unreadable_schema(str(self.path), version, VERSION)
        self._conn = conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > VERSION:
            raise StoreError(
                f"{self.path} was written by a newer release (schema {version}); run that release, "
                "or point RELAY_DB at another file"
            )
        db = Database(conn)
        for number in range(version + 1, VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                if number <= len(SQLITE_FIRST):
                    SQLITE_FIRST[number - 1](db)
                else:
                    for statement in SHARED[number - len(SQLITE_FIRST) - 1]:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number}")
                conn.execute("COMMIT")
            except BaseException:
                _roll_back(conn)
                raise

    async def announce(self) -> None:
        """The only process on the file has nobody to tell."""

    def listen(
        self, wake: Callable[[], None], paused: Callable[[str, float], None], recount: Callable[[], None]
    ) -> None:
        """Nobody else writes to the file."""

    def _across(self, name: str) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()  # no other process

    # The sole process keeps its pace in memory (relay.pacing): nothing to share.

    async def reserve(self, key: str, interval: float, now: float) -> float:
        return now

    async def pause(self, key: str, until: float) -> None:
        return None

    async def pauses(self, now: float) -> dict[str, float]:
        return {}

    async def alive(self, now: float) -> int:
        return 1

    async def call(self, fn: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, fn)

    def _run(self, fn: Callable[[Connection], T]) -> T:
        if self._conn is None:
            raise StoreError("the database is not open")
        try:
            return fn(self._conn)
        except sqlite3.Error as error:
            cause = _disk_refusal(error)
            if cause is None:
                raise
            raise Unwritable(
                f"cannot write {self.path}: {error}; free space on its disk, or make it writable", cause
            ) from error

    def _commit(self, fn: Callable[[Connection], T], leased: bool) -> asyncio.Future[T]:
        """`leased` changes nothing here: one writer at a time is as isolated as a write can be."""
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
                    outcomes = await self.call(functools.partial(self._commit_group, [fn for fn, _ in group]))
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

    def _commit_group(self, fns: list[Callable[[Connection], Any]], conn: sqlite3.Connection) -> Outcomes:
        """One BEGIN IMMEDIATE … COMMIT, each `fn` in its own savepoint, undone alone if it raises. A disk's
        refusal, or a failed COMMIT, rolls back the whole transaction and raises: after such an error SQLite
        may already have undone more than the savepoint."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            outcomes: Outcomes = []
            for fn in fns:
                conn.execute("SAVEPOINT one_write")
                try:
                    outcomes.append((fn(conn), None))
                except Exception as error:
                    if _disk_refusal(error) is not None:
                        raise
                    conn.execute("ROLLBACK TO SAVEPOINT one_write")
                    outcomes.append((None, _duplicate(error) or error))
                conn.execute("RELEASE SAVEPOINT one_write")
            conn.execute("COMMIT")
        except BaseException:
            _roll_back(conn)
            raise
        return outcomes

    async def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)


def _read_only(uri: str) -> sqlite3.Connection:
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # SQLite opens the file lazily
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def _disk_refusal(error: BaseException) -> str | None:
    """The disk's refusal behind `error`, in a person's words (see `_UNWRITABLE`); None for any other error."""
    return _UNWRITABLE.get(error.sqlite_errorcode & 0xFF) if isinstance(error, sqlite3.Error) else None


def _duplicate(error: Exception) -> Duplicate | None:
    """`error` as Duplicate if it is a key already taken ("UNIQUE constraint failed: table.column")."""
    if getattr(error, "sqlite_errorname", None) not in ("SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE"):
        return None
    return Duplicate(str(error).rpartition(": ")[2].split(".")[0])


def _roll_back(conn: sqlite3.Connection) -> None:
    """After a disk or I/O error SQLite may already have rolled back (sqlite.org/lang_transaction.html,
    "Response To Errors Within A Transaction"): a second ROLLBACK would fail and hide the first error, and a
    transaction left open would make every later BEGIN fail."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _create_private(path: Path) -> None:
    """Create the database owner-only (0600) before SQLite does; SQLite gives its -wal and -shm
    files the database's permissions."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o600)


def _lock(path: Path) -> int:
    """Refuse a second bot on the same database: two dispatchers would race for the same deliveries,
    and only one process can know which in-flight posts are its own after a crash. The lock sits beside
    the real file, so a second bot reaching it through a symbolic link is refused too. (Several instances
    need PostgreSQL: `DATABASE_URL`.)"""
    lock_path = Path(f"{path.resolve()}.lock")
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(
            f"another bot is already running on {path} (it holds {lock_path}); stop it first, "
            "give this one its own RELAY_DB, or run several on PostgreSQL (DATABASE_URL)"
        ) from None
    return fd
