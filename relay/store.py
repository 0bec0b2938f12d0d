"""The SQLite database: one connection, one thread, explicit transactions, numbered migrations.

Every call runs on a single dedicated thread so the event loop never blocks on disk and the connection is
never shared between threads. Read-then-write work runs inside `BEGIN IMMEDIATE`, which takes the write
lock up front: a deferred transaction (what sqlite-utils' `atomic()` starts) can fail half-way under
contention, and a compare-and-set must not.

A write the disk refuses (full, failing, read-only) rolls its transaction back whole and raises
`Unwritable`: a person's action is refused at once, with the reason; what the bot itself must write down
(an outcome of a post that went out) waits in `persist` until the disk takes it, without spinning.

Writes are committed in groups: those that arrive while one commit is on its way to the disk share the
next (see `Store.write`). With `synchronous=FULL` each commit costs an fsync and a trip to the database
thread; a fan-out records hundreds of outcomes a second, and one commit for each cost more CPU than the
posts themselves.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import logging
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

T = TypeVar("T")

log = logging.getLogger(__name__)

# Waits between tries of a write the disk refused: short at first, since space is often freed within
# seconds, and never more than a few seconds once it is back; a few idle tries a minute, never a busy loop.
WRITE_RETRY_FIRST = 0.25
WRITE_RETRY_MAX = 5.0

# SQLite's primary result codes for a write the disk refused (sqlite.org/rescode.html), in a person's words.
# A full disk gives SQLITE_FULL, or SQLITE_IOERR where the kernel's error is not ENOSPC (EFBIG, EIO, EROFS).
_UNWRITABLE = {
    sqlite3.SQLITE_FULL: "the relay's disk is full",
    sqlite3.SQLITE_IOERR: "the relay's disk refused the write (it is full or failing)",
    sqlite3.SQLITE_READONLY: "the relay's database file is read-only",
}


class StoreError(Exception):
    """The database cannot be used; the message says what to do."""


class Unwritable(StoreError):
    """The database refused a write and its transaction was rolled back whole: nothing was changed.
    `cause` is in words for the person whose action it was; the message, naming the file, for the operator."""

    def __init__(self, path: Path, error: sqlite3.Error, cause: str) -> None:
        super().__init__(f"cannot write {path}: {error}; free space on its disk, or make it writable")
        self.cause = cause


def _v1(db: Database) -> None:
    db.table("broadcasts").create(
        {
            "id": str,
            "author": str,
            "text": str,
            "audience": str,
            "state": str,
            "created_at": float,
            "expires_at": float,
            "decided_by": str,
            "decided_at": float,
            "origin": str,  # the chat surface it came from: "slack"
            "origin_ref": str,  # JSON, the surface's own handles (response_url, channel)
            "report_ref": str,  # JSON, where the live report lives once sent
        },
        pk="id",
        not_null={"author", "text", "audience", "state", "created_at", "expires_at", "origin"},
    )
    db.table("deliveries").create(
        {
            "id": int,
            "broadcast_id": str,
            "destination": str,
            "kind": str,
            "dry_run": int,
            "parts": str,  # JSON list of the exact texts approved
            "posted": str,  # JSON list of remote ids, one per part already posted
            "link": str,
            "state": str,
            "attempts": int,
            "check_first": int,  # 1: the last attempt may have landed; look before posting again
            "next_attempt_at": float,
            "first_attempt_at": float,
            "attempt_started_at": float,
            "lease_until": float,
            "last_error": str,
            "updated_at": float,
        },
        pk="id",
        foreign_keys=[("broadcast_id", "broadcasts", "id")],
        not_null={"broadcast_id", "destination", "kind", "parts", "posted", "state"},
        defaults={"attempts": 0, "check_first": 0, "dry_run": 0, "posted": "[]"},
    )
    db.table("deliveries").create_index(["broadcast_id", "destination"], unique=True)
    db.table("deliveries").create_index(["state", "next_attempt_at"])


def _v2(db: Database) -> None:
    """Where the bot may post in Microsoft Teams, learned when it is installed (Teams gives no other way)."""
    db.table("teams_conversations").create(
        {
            "id": str,  # the conversation id: a channel ("19:…@thread.tacv2") or a personal chat
            "kind": str,  # "channel" or "personal"
            "name": str,  # channel name, or the person's name
            "team_id": str,
            "team_name": str,
            "user_id": str,  # for a personal chat: "teams:<AAD object id>" of the person
            "reference": str,  # JSON ConversationReference: service URL, bot, tenant
            "updated_at": float,
        },
        pk="id",
        not_null={"kind", "reference"},
    )
    db.table("teams_conversations").create_index(["user_id"])
    db.table("teams_conversations").create_index(["team_id"])


def _v3(db: Database) -> None:
    """The audit trail: who did what, when and from where. The database itself refuses edits."""
    db.table("audit").create(
        {
            "id": int,
            "at": float,
            "actor": str,  # "slack:U…", "teams:…", or "relay" for what the bot did by itself
            "action": str,  # requested, edited, approved, rejected, sent, retried, config-loaded…
            "broadcast_id": str,
            "surface": str,  # slack, teams, terminal, relay
            "place": str,  # the channel or conversation it happened in, where there is one
            "detail": str,
        },
        pk="id",
        not_null={"at", "actor", "action"},
    )
    db.table("audit").create_index(["at"])
    db.execute(
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN"
        " SELECT RAISE(ABORT, 'the audit trail is append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN"
        " SELECT RAISE(ABORT, 'the audit trail is append-only'); END"
    )


def _v4(db: Database) -> None:
    """Retraction: a delivery either posts, or deletes what its twin posted."""
    db.execute("ALTER TABLE deliveries ADD COLUMN action TEXT NOT NULL DEFAULT 'post'")
    db.execute("ALTER TABLE broadcasts ADD COLUMN retract_requested_by TEXT")
    db.execute("DROP INDEX idx_deliveries_broadcast_id_destination")
    db.table("deliveries").create_index(["broadcast_id", "destination", "action"], unique=True)


def _v5(db: Database) -> None:
    """Scheduling: when an approved broadcast is to go out (its deliveries wait in the outbox until then)."""
    db.execute("ALTER TABLE broadcasts ADD COLUMN send_at REAL")


def _v6(db: Database) -> None:
    """Editing sent staff posts: the new text, while an approver has yet to agree to it."""
    db.execute("ALTER TABLE broadcasts ADD COLUMN pending_text TEXT")


def _v7(db: Database) -> None:
    """Due deliveries found per network, so a network told to wait does not hold up the others."""
    db.table("deliveries").create_index(["kind", "state", "next_attempt_at"])


def _v8(db: Database) -> None:
    """What must outlive a restart and be shared by every instance on one database: the signatures of Slack
    requests already accepted (a captured request replayed after a restart is still a copy), and the
    status page's sign-ins (logout revokes one everywhere). Plain SQL, the same in PostgreSQL."""
    db.execute("CREATE TABLE seen_requests (signature TEXT PRIMARY KEY, seen_at REAL NOT NULL)")
    db.execute("CREATE INDEX seen_requests_at ON seen_requests (seen_at)")
    db.execute(
        "CREATE TABLE status_sessions (token_hash TEXT PRIMARY KEY, created_at REAL NOT NULL, expires_at REAL NOT NULL)"
    )
    db.execute("CREATE INDEX status_sessions_expiry ON status_sessions (expires_at)")


MIGRATIONS: tuple[Callable[[Database], None], ...] = (_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8)


class Store:
    """Owns the connection; `call` runs a function with it on the database thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._refusing = False  # the last write was refused: said once in the log, until one succeeds
        self._queued: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._committing: asyncio.Task[None] | None = None

    async def open(self, exclusive: bool = True) -> None:
        """Open (and migrate) the database; `exclusive` is for the bot, which alone may dispatch."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open, exclusive)

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
        """Open for reading only (`list`, `audit`): nothing is created, migrated or locked, so an auditor can
        read a copy on a read-only disk, or a file they may not write."""
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
        if version != len(MIGRATIONS):
            conn.close()
            raise StoreError(
                f"{self.path} has schema {version}, this release reads schema {len(MIGRATIONS)}: "
                + (
                    "start this release's bot on it once to bring it up to date"
                    if version < len(MIGRATIONS)
                    else "use the release that wrote it"
                )
            )
        self._conn = conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} was written by a newer release (schema {version}); run that release, "
                "or point RELAY_DB at another file"
            )
        db = Database(conn)
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                migration(db)
                conn.execute(f"PRAGMA user_version={number}")
                conn.execute("COMMIT")
            except BaseException:
                _roll_back(conn)
                raise

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, fn)

    @property
    def refusing_writes(self) -> bool:
        """The disk refused the last write and has taken none since: the bot is up, and can neither take
        a person's action nor record an outcome, which a health check must say."""
        return self._refusing

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in a transaction, answered once it is on disk; raises Unwritable, having changed nothing,
        if the disk refuses it. Writes that arrive while a commit is under way are committed together next,
        each in its own savepoint: one that raises is undone alone and raises to its own caller only, and
        none is answered before the commit that holds it (group commit, as PostgreSQL does it)."""
        try:
            result = await self._queue(fn)
        except Unwritable as error:
            if not self._refusing:
                log.error("%s. Until then people's commands are refused and deliveries wait; nothing is lost", error)
            self._refusing = True
            raise
        if self._refusing:
            log.warning("%s takes writes again", self.path)
            self._refusing = False
        return result

    async def persist(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`write`, tried again for as long as the disk refuses it: for what the bot must write down
        whatever happens (the outcome of a post that went out), never for a person waiting for an answer."""
        wait = WRITE_RETRY_FIRST
        while True:
            try:
                return await self.write(fn)
            except Unwritable:
                await asyncio.sleep(wait)
                wait = min(wait * 2, WRITE_RETRY_MAX)

    def _queue(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        self._queued.append((fn, answer))
        if self._committing is None:
            self._committing = loop.create_task(self._commit_queued())
        return answer

    async def _commit_queued(self) -> None:
        """Until nothing is queued: commit everything queued so far in one transaction, then answer each."""
        group: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        try:
            while self._queued:
                group, self._queued = self._queued, []
                try:
                    outcomes = await self.call(functools.partial(_together, fns=[fn for fn, _ in group]))
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

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            raise StoreError("the database is not open")
        try:
            return fn(self._conn)
        except sqlite3.Error as error:
            cause = _disk_refusal(error)
            if cause is None:
                raise
            raise Unwritable(self.path, error, cause) from error

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


def _together(
    conn: sqlite3.Connection, fns: list[Callable[[sqlite3.Connection], Any]]
) -> list[tuple[Any, Exception | None]]:
    """Run each `fn` in its own savepoint inside one BEGIN IMMEDIATE … COMMIT: each one's result, or the
    error that undid it alone. A disk's refusal, or a failed COMMIT, rolls back the whole transaction and
    raises: after such an error SQLite may already have undone more than the savepoint."""
    outcomes: list[tuple[Any, Exception | None]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for fn in fns:
            conn.execute("SAVEPOINT one_write")
            try:
                outcomes.append((fn(conn), None))
            except Exception as error:
                if _disk_refusal(error) is not None:
                    raise
                conn.execute("ROLLBACK TO one_write")
                outcomes.append((None, error))
            conn.execute("RELEASE one_write")
        conn.execute("COMMIT")
    except BaseException:
        _roll_back(conn)
        raise
    return outcomes


def _disk_refusal(error: BaseException) -> str | None:
    """The disk's refusal behind `error`, in a person's words (see `_UNWRITABLE`); None for any other error."""
    return _UNWRITABLE.get(error.sqlite_errorcode & 0xFF) if isinstance(error, sqlite3.Error) else None


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
    the real file, so a second bot reaching it through a symbolic link is refused too."""
    lock_path = Path(f"{path.resolve()}.lock")
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(
            f"another bot is already running on {path} (it holds {lock_path}); stop it first, "
            "or give this one its own RELAY_DB"
        ) from None
    return fd
