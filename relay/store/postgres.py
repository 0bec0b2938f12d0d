"""PostgreSQL, for several instances and for hosts whose disk does not survive a restart (`DATABASE_URL`).

The driver is psycopg 3, asynchronous, on the event loop. The core's functions of a connection are
synchronous (`fn(conn)`, as SQLite runs them on its thread): each one runs in a greenlet whose every
statement is awaited on the event loop (`_run`, the way SQLAlchemy's asyncio extension runs its synchronous
core over asyncpg). On threads, as at first, the pool's threads and the event loop took the interpreter's
lock from each other at every statement: half the CPU of a request, and an acknowledgement waiting behind
them. psycopg has a maintained connection pool (psycopg_pool) that replaces connections broken by a server
restart, works behind PgBouncer in transaction mode once server-side prepared statements are off
(`prepare_threshold=None`), and gives LISTEN/NOTIFY on an ordinary connection; asyncpg would need a second,
asynchronous copy of every query. What lasts a session (the instance's advisory lock, LISTEN) keeps a
direct connection on a thread of its own.

A write transaction is SERIALIZABLE: the core's read-then-write steps (a compare-and-set, "has anything
been tried yet?") were written for SQLite's one writer at a time, and PostgreSQL's serializable isolation
keeps them exactly as safe with several writers, failing one of two conflicting transactions, which is then
run again. The outbox's writes are the exception (`leased`, see `Store.write`): each changes only rows it
holds, checked in the change itself, so they run read committed. Claims skip rows another instance is
taking (`FOR UPDATE SKIP LOCKED`) instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, LiteralString, TypeVar
from urllib.parse import urlsplit

import greenlet
import psycopg
from psycopg import errors
from psycopg.rows import RowMaker
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from relay.store.base import Connection, Cursor, Duplicate, Row, Store, StoreError, Unwritable, unreadable_schema
from relay.store.grouped import Grouped
from relay.store.schema import POSTGRES_FIRST, SHARED, VERSION

T = TypeVar("T")

log = logging.getLogger("relay.store")

# Connections per instance: reads and writes run side by side, each write its own transaction. All are opened
# at start and kept (psycopg_pool's own default is a pool of fixed size): grown on demand, the first burst of
# requests after a quiet spell waited for PostgreSQL to start a process per new connection, which was most
# of the slowest acknowledgements measured (docs/PERFORMANCE.md).
POOL_SIZE = 6
CONNECT_TIMEOUT = 10.0  # seconds to open a connection, or to wait for one from the pool
# A serializable transaction that lost a conflict is run again: soon, with jitter so two that collided do
# not collide again, and a bounded number of times.
CONFLICT_RETRIES = 20
CHANNEL = "relay_outbox"  # NOTIFY'd when work is committed, so idle instances look at once
PAUSES = "relay_pause"  # NOTIFY'd with "until key" when a network asked for a pause: every instance holds
INSTANCES = "relay_instances"  # NOTIFY'd when an instance starts or stops: the others share out the rates anew
LISTEN_LOOK = 0.1  # seconds the listener waits for a notification before looking whether it is to stop
ALIVE_FOR = 30.0  # seconds an instance counts as alive after it last said so (it says so every 10)
MIGRATION_LOCK = 7_310_001  # pg_advisory_xact_lock key: one instance migrates, the others wait for it
NAMED_LOCKS = 7_310  # the first half of the two-number advisory locks `exclusive` takes (the second: the name's)
LOCK_POLL = 0.02  # seconds between asks for a lock another instance holds (held for one redraw at most)
LOCK_PATIENCE = 30.0  # seconds after which a lock still held elsewhere is passed by, with a warning

# Errors after which the transaction is run again from the start (PostgreSQL docs, "Serialization Failure
# Handling"): nothing of it was written.
_CONFLICTS = (errors.SerializationFailure, errors.DeadlockDetected)
# Errors that mean the database took nothing and may take it later, in a person's words.
_REFUSALS: tuple[tuple[type[Exception], str], ...] = (
    (errors.DiskFull, "the relay's database server is out of disk space"),
    (errors.ReadOnlySqlTransaction, "the relay's database is read-only (a standby, or being failed over)"),
    (psycopg.OperationalError, "the relay's database cannot be reached"),
    (PoolTimeout, "the relay's database cannot be reached"),
)


def described(url: str) -> str:
    """The database's address without its password, for messages and logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or 'localhost'}{f':{parts.port}' if parts.port else ''}{parts.path}"


class PostgresStore(Store):
    """A pool of connections (through PgBouncer where `pool_url` is given), and the direct address for what
    needs a session of its own (migrations)."""

    skip_locked = " FOR UPDATE OF d SKIP LOCKED"

    def __init__(self, url: str, pool_url: str | None = None, pool_size: int = POOL_SIZE) -> None:
        super().__init__()
        self.url = url
        self._pool = AsyncConnectionPool(
            pool_url or url,
            min_size=pool_size,
            max_size=pool_size,
            open=False,
            timeout=CONNECT_TIMEOUT,
            # The pool tries again to connect with a doubling wait, for 5 minutes by default: a server back
            # after 20 s would be seen 10 s late. Given up sooner, the next use tries again at once.
            reconnect_timeout=CONNECT_TIMEOUT,
            kwargs={"autocommit": True, "prepare_threshold": None, "connect_timeout": int(CONNECT_TIMEOUT)},
            name="relay",
        )
        self._session: psycopg.Connection[Any] | None = None  # direct, for what lasts a session (below)
        # The session's one thread: its queries (locks taken and let go) run one after another anyway, and
        # must not hold the pool's threads waiting for it; and one thread alone replaces a lost session (two
        # would each ask for the instance's lock, the second waiting for ever behind the first).
        self._on_session = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgres-session")
        self._closing = threading.Event()
        self._listener: threading.Thread | None = None
        self._counted = False  # the others were told this instance started (`alive`)
        self._under_way: set[asyncio.Task[Any]] = set()  # uses of the pool, which `close` lets finish (`_apart`)
        self._reserving: dict[float, Grouped[tuple[str, float], float | None]] = {}  # by interval (`reserve`)

    def __str__(self) -> str:
        return described(self.url)

    async def open(self, exclusive: bool = True) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._on_session, self._open_session)
            await self._pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except (psycopg.Error, PoolTimeout) as error:
            raise StoreError(
                f"cannot use the database {self}: {_first_line(error)}; check DATABASE_URL (and "
                "DATABASE_CONNECTION_POOL_URL), that the server is up and that its user may create tables"
            ) from error

    def _open_session(self) -> None:
        self._session = self._connect_session()
        _migrate(self._session)

    async def open_read_only(self) -> None:
        """The pool only: no session (no lock, no migration). A user granted SELECT alone can read."""
        try:
            await self._pool.open(wait=True, timeout=CONNECT_TIMEOUT)
            async with self._pool.connection() as conn:
                row = await (await conn.execute("SELECT version FROM relay_schema")).fetchone()
        except (psycopg.Error, PoolTimeout) as error:
            raise StoreError(
                f"cannot read the database {self}: {_first_line(error)}; is it a relay database?"
            ) from None
        version = row[0] if row else 0
        if version != VERSION:
            raise unreadable_schema(str(self), version, VERSION)

    def _connect_session(self) -> psycopg.Connection[Any]:
        """A direct connection (never through PgBouncer) that holds this process's advisory lock for as long
        as the process lives: PostgreSQL releases it the moment the process dies, however it died, which
        is how another instance knows at once that the leases it held can be taken back (`gone`)."""
        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT))
        conn.execute("SELECT pg_advisory_lock(%s)", (_key(self.instance),))
        return conn

    async def gone(self, instances: set[str]) -> set[str]:
        return await asyncio.get_running_loop().run_in_executor(self._on_session, self._gone, instances)

    def _gone(self, instances: set[str]) -> set[str]:
        """An instance whose lock can be taken has no session left: it stopped. The lock is let go at once."""
        try:
            stopped = set()
            for instance in instances:
                if self._session_query("SELECT pg_try_advisory_lock(%s)", (_key(instance),)):
                    self._session_query("SELECT pg_advisory_unlock(%s)", (_key(instance),))
                    stopped.add(instance)
            return stopped
        except psycopg.OperationalError:
            return set()  # the leases still run out: what a stopped instance held waits a little longer

    async def announce(self) -> None:
        with contextlib.suppress(StoreError):  # a hint only: the others' timed look finds the work all the same
            await self.call(lambda conn: conn.execute(f"NOTIFY {CHANNEL}"))

    def listen(
        self, wake: Callable[[], None], paused: Callable[[str, float], None], recount: Callable[[], None]
    ) -> None:
        loop = asyncio.get_running_loop()
        self._listener = threading.Thread(
            target=self._listen, args=(loop, wake, paused, recount), name="postgres-listen", daemon=True
        )
        self._listener.start()

    def _listen(
        self,
        loop: asyncio.AbstractEventLoop,
        wake: Callable[[], None],
        paused: Callable[[str, float], None],
        recount: Callable[[], None],
    ) -> None:
        """On a direct connection of its own (LISTEN needs a session, which PgBouncer's transaction mode does
        not keep). A listener that loses its connection misses what was announced meanwhile: it wakes the
        loop once it is back, and the dispatcher's timed look covers the gap."""
        while not self._closing.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT)) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {PAUSES}")
                    conn.execute(f"LISTEN {INSTANCES}")
                    # What was announced before it listened is looked at now: work, and instances that started
                    # meanwhile (two started together each said so before the other listened, and each
                    # took the whole of Teams' rate for the first ten seconds).
                    loop.call_soon_threadsafe(wake)
                    loop.call_soon_threadsafe(recount)
                    while not self._closing.is_set():
                        for notice in conn.notifies(timeout=LISTEN_LOOK, stop_after=1):
                            if notice.channel == PAUSES:
                                until, _, key = notice.payload.partition(" ")
                                loop.call_soon_threadsafe(paused, key, float(until))
                            elif notice.channel == INSTANCES:
                                loop.call_soon_threadsafe(recount)
                            else:
                                loop.call_soon_threadsafe(wake)
            except (psycopg.OperationalError, RuntimeError):  # RuntimeError: the loop closed under us
                self._closing.wait(1.0)

    @contextlib.asynccontextmanager
    async def _across(self, name: str) -> AsyncIterator[None]:
        """An advisory lock of the session connection, asked for again until it is free (never waited for
        on the connection, which `gone` and the other locks share); PostgreSQL lets it go if this process
        dies holding it. Asked for no longer than LOCK_PATIENCE: what it guards (a redraw, a report's first
        posting) is better done twice than never."""
        key = (NAMED_LOCKS, int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True))
        held = False
        deadline = time.monotonic() + LOCK_PATIENCE
        while not (held := await self._take(key)):
            if time.monotonic() > deadline:
                log.warning(
                    "%s: another instance has held its lock for %.0f s; going on without it", name, LOCK_PATIENCE
                )
                break
            await asyncio.sleep(LOCK_POLL)
        try:
            yield
        finally:
            if held:
                with contextlib.suppress(psycopg.OperationalError):  # a lost session let go of it already
                    await self._release(key)

    async def _take(self, key: tuple[int, int]) -> bool:
        """Whether the lock was free, and is now this process's. The ask runs to its end even if the caller
        is cancelled meanwhile (a shutdown): a lock taken for a caller that is gone is let go at once, or
        every other instance would wait for it."""
        loop = asyncio.get_running_loop()
        ask = loop.run_in_executor(self._on_session, self._session_query, "SELECT pg_try_advisory_lock(%s, %s)", key)
        try:
            return bool(await asyncio.shield(ask))
        except asyncio.CancelledError:
            if await ask:
                await self._release(key)
            raise

    async def _release(self, key: tuple[int, int]) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._on_session, self._session_query, "SELECT pg_advisory_unlock(%s, %s)", key)

    def _session_query(self, sql: LiteralString, values: tuple[Any, ...]) -> Any:
        if self._session is None or self._session.broken or self._session.closed:
            self._session = self._connect_session()
        [(answer,)] = self._session.execute(sql, values).fetchall()
        return answer

    async def reserve(self, key: str, interval: float, now: float) -> float:
        """Atomic across instances: the slot after the last one reserved, or now. The places of a fan-out ask
        at once: those asking while one statement is on its way go together in the next (`Grouped`)."""
        if interval not in self._reserving:
            self._reserving[interval] = Grouped(functools.partial(self._reserve, interval), None)
        start = await self._reserving[interval]((key, now))
        return now if start is None else start

    async def _reserve(self, interval: float, places: list[tuple[str, float]]) -> dict[tuple[str, float], float]:
        """One statement for many places (each asked for once: a process posts to a place one post at a time)."""
        rows = await self._shared(
            "INSERT INTO pace (key, next_at) SELECT key, asked + ? FROM unnest(?::text[], ?::float8[]) AS v(key, asked)"
            " ON CONFLICT (key) DO UPDATE SET next_at = GREATEST(pace.next_at, excluded.next_at - ?) + ?"
            " RETURNING key, next_at",
            (interval, [key for key, _ in places], [now for _, now in places], interval, interval),
        )
        starts = {row[0]: float(row[1]) - interval for row in rows or ()}
        return {(key, now): starts[key] for key, now in places if key in starts}

    async def pause(self, key: str, until: float) -> None:
        await self._shared(
            "INSERT INTO pauses (key, until) VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
            " SET until = GREATEST(pauses.until, excluded.until) RETURNING until",
            (key, until),
        )
        await self._shared("SELECT pg_notify(?, ?)", (PAUSES, f"{until} {key}"))

    async def pauses(self, now: float) -> dict[str, float]:
        try:
            rows = await self.call(
                lambda conn: conn.execute("SELECT key, until FROM pauses WHERE until > ?", (now,)).fetchall()
            )
        except StoreError:
            return {}
        return {row[0]: float(row[1]) for row in rows}

    async def alive(self, now: float) -> int:
        rows = await self._shared(
            "WITH seen AS (INSERT INTO instances (id, seen_at) VALUES (?, ?) ON CONFLICT (id) DO UPDATE"
            " SET seen_at = excluded.seen_at RETURNING 1), forgotten AS (DELETE FROM instances WHERE seen_at < ?)"
            " SELECT COUNT(*) + 1 FROM instances WHERE seen_at > ? AND id != ?",
            (self.instance, now, now - 86400, now - ALIVE_FOR, self.instance),
        )
        if rows is not None and not self._counted:  # just started: the others take a smaller share at once
            self._counted = True
            await self._shared("SELECT pg_notify(?, ?)", (INSTANCES, self.instance))
        return int(rows[0][0]) if rows else 1

    async def _shared(self, sql: str, values: Sequence[Any]) -> list[Any] | None:
        return await self._apart(self._pacing(sql, values))

    async def _pacing(self, sql: str, values: Sequence[Any]) -> list[Any] | None:
        """One statement of shared pacing, on its own (autocommit): its rows. A database that is away costs
        the pace its sharing, never a post (each process keeps its own pace meanwhile)."""
        try:
            async with self._pool.connection() as conn:
                return await (await conn.execute(_psycopg_sql(sql), values)).fetchall()
        except (psycopg.OperationalError, PoolTimeout) as error:
            log.warning("pacing is not shared while the database is away: %s", _first_line(error))
            return None

    async def call(self, fn: Callable[[Connection], T]) -> T:
        return await self._apart(self._read(fn))

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        try:
            async with self._pool.connection() as conn:
                return await _run(fn, _Translated(conn))
        except (psycopg.OperationalError, PoolTimeout) as error:
            raise StoreError(f"cannot read from the database {self}: {_first_line(error)}") from error

    async def snapshot(self, fn: Callable[[Connection], T]) -> T:
        return await self.call(lambda conn: _in_snapshot(conn, fn))

    async def _commit(self, fn: Callable[[Connection], T], leased: bool) -> T:
        return await self._apart(self._transaction(fn, leased))

    async def _commit_one(self, sql: str, values: Sequence[Any]) -> int:
        return await self._apart(self._statement(sql, values, _counted))

    async def _commit_returning(self, sql: str, values: Sequence[Any]) -> list[Row]:
        return await self._apart(self._statement(sql, values, _fetched))

    async def _apart(self, work: Coroutine[Any, Any, T]) -> T:
        """`work`, a use of the pool, as a task of its own that its caller's cancellation does not reach.
        psycopg_pool waits for a free connection with `asyncio.wait_for`, which in Python 3.11 loses a
        cancellation arriving just as the connection does: the cancelled caller went on as if it had not
        been, and a shutdown waited for it for ever. And a write, once begun, runs to its end (a shutdown
        cancels the deliveries under way: their outcomes are not lost half-way); `close` waits for it."""
        task = asyncio.ensure_future(work)
        self._under_way.add(task)
        task.add_done_callback(self._ended)
        return await asyncio.shield(task)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._under_way.discard(task)
        if not task.cancelled():
            task.exception()  # seen here: a caller that was cancelled meanwhile no longer reads it

    async def _transaction(self, fn: Callable[[Connection], T], leased: bool) -> T:
        """`fn` in a transaction of its own, run again from the start when it conflicted with another. Each
        write commits on its own, beside the others on the pool's connections, rather than queued into a
        group as on SQLite: the server flushes its log once for all the transactions that commit together,
        and a person's click does not wait behind a hundred outcomes.

        The outbox's writes (`leased`) are read committed: serializable, the outcomes of one fan-out made each
        other start again, up to three times each (the rows they read share pages, and PostgreSQL checks
        whole pages once a few rows of one are read), where the lease each one checks already keeps them
        apart."""
        begin = "BEGIN ISOLATION LEVEL READ COMMITTED" if leased else "BEGIN ISOLATION LEVEL SERIALIZABLE"
        for attempt in range(CONFLICT_RETRIES):
            try:
                async with self._pool.connection() as raw:
                    try:
                        async with raw.pipeline() as pipeline:
                            result: T = await _run(_in_transaction, _Translated(raw, pipeline), begin, fn)
                    except BaseException:
                        if not raw.broken:
                            with contextlib.suppress(psycopg.Error):  # the pool drops a connection left unusable
                                await raw.execute("ROLLBACK")
                        raise
                return result
            except _CONFLICTS:
                await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
            except Exception as error:
                if (said := self._as_said(error)) is None:
                    raise
                raise said from error
        raise Unwritable(
            f"cannot write to the database {self}: {CONFLICT_RETRIES} conflicting tries in a row",
            "the relay's database is too busy",
        )

    async def _statement(
        self, sql: str, values: Sequence[Any], answer: Callable[[psycopg.AsyncCursor[_Row]], Awaitable[T]]
    ) -> T:
        """One statement in autocommit: PostgreSQL runs it as a transaction of its own, atomic, at no cost of
        BEGIN and COMMIT. Read-committed suffices for one statement: an upsert that finds a row another
        transaction is writing waits for it and then decides on what it committed."""
        try:
            async with self._pool.connection() as conn:
                cursor = conn.cursor(row_factory=_rows)
                return await answer(await cursor.execute(_psycopg_sql(sql), values))
        except Exception as error:
            if (said := self._as_said(error)) is None:
                raise
            raise said from error

    def _as_said(self, error: Exception) -> Duplicate | Unwritable | None:
        """A write's error as the core knows it, as SQLite's store says it too: Duplicate for a key already
        taken; Unwritable where the database took nothing and may take it later; None where it is a fault of
        the statement, raised as it is."""
        if isinstance(error, errors.UniqueViolation):
            return Duplicate(error.diag.table_name or "")
        cause = _refusal(error)
        if cause is None:
            return None
        return Unwritable(f"cannot write to the database {self}: {_first_line(error)}", cause)

    async def close(self) -> None:
        await asyncio.gather(*self._under_way, return_exceptions=True)
        if self._counted:  # the others take a larger share at once, not when this one's last word is old
            await self._shared(
                "WITH gone AS (DELETE FROM instances WHERE id = ? RETURNING id) SELECT pg_notify(?, ?)",
                (self.instance, INSTANCES, self.instance),
            )
        self._closing.set()
        if self._listener is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._listener.join, 5.0)

        loop = asyncio.get_running_loop()
        if self._session is not None:
            await loop.run_in_executor(self._on_session, self._session.close)
        self._on_session.shutdown(wait=True)
        await self._pool.close()


def _migrate(conn: psycopg.Connection[Any]) -> None:
    """In one transaction under an advisory lock: instances starting together migrate once, the others
    wait and then find nothing left to do."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS relay_schema (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM relay_schema").fetchone()
        version = row[0] if row else 0
        if version > VERSION:
            raise StoreError(
                f"{described(conn.info.dsn)} was written by a newer release (schema {version}); run that release"
            )
        for number in range(version + 1, VERSION + 1):
            first = len(POSTGRES_FIRST)
            for statement in POSTGRES_FIRST[number - 1] if number <= first else SHARED[number - first - 1]:
                conn.execute(statement.encode())
        if row is None:
            conn.execute("INSERT INTO relay_schema (version) VALUES (%s)", (VERSION,))
        else:
            conn.execute("UPDATE relay_schema SET version = %s", (VERSION,))


def _in_transaction(conn: Connection, begin: str, fn: Callable[[Connection], T]) -> T:
    conn.execute(begin)
    result = fn(conn)
    conn.execute("COMMIT")
    return result


def _in_snapshot(conn: Connection, fn: Callable[[Connection], T]) -> T:
    """Another instance commits outcomes between one statement and the next; in one repeatable-read
    transaction every statement sees the database as the first one did."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        return fn(conn)
    finally:
        conn.execute("COMMIT")


async def _counted(cursor: psycopg.AsyncCursor[_Row]) -> int:
    return cursor.rowcount


async def _fetched(cursor: psycopg.AsyncCursor[_Row]) -> list[Row]:
    return list(await cursor.fetchall())


def _key(instance: str) -> int:
    """An instance's advisory lock: its id (12 hex digits) is a number that fits PostgreSQL's bigint."""
    return int(instance, 16)


def _refusal(error: BaseException) -> str | None:
    return next((cause for kind, cause in _REFUSALS if isinstance(error, kind)), None)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class _Row(tuple[Any, ...]):
    """A row read by name or by position, as `sqlite3.Row` is."""

    names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        return super().__getitem__(self.names[key] if isinstance(key, str) else key)

    def keys(self) -> list[str]:
        return list(self.names)


_ROW_KINDS: dict[tuple[bytes, ...], type[_Row]] = {}


def _rows(cursor: psycopg.AsyncCursor[Any]) -> RowMaker[_Row]:
    """The row class of a result's columns, made once for each set of columns (a class is costly to make,
    and the same few dozen queries come again and again)."""
    result = cursor.pgresult
    columns = tuple(result.fname(n) or b"" for n in range(result.nfields)) if result is not None else ()
    kind = _ROW_KINDS.get(columns)
    if kind is None:
        names = {name.decode(): n for n, name in enumerate(columns)}
        kind = _ROW_KINDS[columns] = type("Row", (_Row,), {"names": names})
    return kind


_SQL: dict[str, bytes] = {}


def _psycopg_sql(sql: str) -> bytes:
    """The core's `?` placeholders as psycopg's `%s` (a literal `%` doubled), remembered: the same few dozen
    statements come again and again."""
    translated = _SQL.get(sql)
    if translated is None:
        translated = _SQL[sql] = sql.replace("%", "%%").replace("?", "%s").encode()
    return translated


class _Translated:
    """A psycopg connection that speaks the core's SQL (see `_psycopg_sql`) and returns rows by name, to the
    core's synchronous code running in `_run`. In a pipeline (a write transaction), statements are sent
    without waiting for their answers, until one is needed: BEGIN, the INSERTs whose answer nobody reads and
    COMMIT travel together."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], pipeline: psycopg.AsyncPipeline | None = None) -> None:
        self._conn = conn
        self._pipeline = pipeline

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        cursor: psycopg.AsyncCursor[_Row] = self._conn.cursor(row_factory=_rows)
        _awaited(cursor.execute(_psycopg_sql(sql), parameters))
        return _Answer(cursor, self._pipeline)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        cursor: psycopg.AsyncCursor[_Row] = self._conn.cursor(row_factory=_rows)
        _awaited(cursor.executemany(_psycopg_sql(sql), parameters))
        return _Answer(cursor, self._pipeline)


class _Answer:
    """A statement's cursor, read by synchronous code. In a pipeline, psycopg waits for a row asked for, but
    not for a row count: that is known once the pipeline is synced."""

    def __init__(self, cursor: psycopg.AsyncCursor[_Row], pipeline: psycopg.AsyncPipeline | None) -> None:
        self._cursor = cursor
        self._pipeline = pipeline

    @property
    def rowcount(self) -> int:
        if self._pipeline is not None and self._cursor.pgresult is None:
            _awaited(self._pipeline.sync())
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        return _awaited(self._cursor.fetchone())

    def fetchall(self) -> list[Any]:
        return _awaited(self._cursor.fetchall())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


async def _run(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)`, synchronous, in a greenlet of its own: each time it waits for the database (`_awaited`),
    the greenlet hands the wait over here, to be awaited on the event loop, and is resumed with the answer
    (or the error). Everything happens on the event loop's thread: no lock changes hands."""
    child = greenlet.greenlet(fn)
    asked = child.switch(*args)
    while not child.dead:
        try:
            answer = await asked
        except BaseException as error:  # a cancellation too: the transaction is abandoned, uncommitted
            asked = child.throw(error)
        else:
            asked = child.switch(answer)
    return asked  # type: ignore[no-any-return]


def _awaited(awaitable: Awaitable[T]) -> T:
    """Inside `_run`: the result of `awaitable`, awaited by the event loop."""
    parent = greenlet.getcurrent().parent
    if parent is None:
        raise RuntimeError("a PostgreSQL statement outside PostgresStore._run")
    return parent.switch(awaitable)  # type: ignore[no-any-return]
