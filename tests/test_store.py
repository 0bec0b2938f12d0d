"""Writes committed together: each stands or falls alone, and none is answered before it is on disk."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg
import pytest
from sqlite_utils import Database

from relay import audit, outbox
from relay.model import DeliveryState
from relay.store import Connection, Duplicate, Store
from relay.store.postgres import PostgresStore
from relay.store.schema import SQLITE_FIRST, VERSION
from relay.store.sqlite import SqliteStore
from tests.conftest import DATABASE


class Refused(Exception):
    pass


@pytest.fixture
async def store(tmp_path: Path, backend: str) -> AsyncIterator[Store]:
    store: Store = (
        PostgresStore(DATABASE["DATABASE_URL"]) if backend == "postgres" else SqliteStore(tmp_path / "relay.db")
    )
    await store.open()
    yield store
    await store.close()


def _note(text: str, refuse: bool = False, transactions: set[int] | None = None) -> Callable[[Connection], str]:
    """Writes one audit line, then (`refuse`) changes its mind; on PostgreSQL, notes its transaction's id."""

    def run(conn: Connection) -> str:
        audit.record(conn, 0.0, "test", text, None, audit.RELAY, "")
        if transactions is not None:
            transactions.add(conn.execute("SELECT txid_current()").fetchone()[0])
        if refuse:
            raise Refused(text)
        return text

    return run


def _erase(conn: Connection) -> None:
    """A write the database itself refuses: the audit trail is append-only."""
    conn.execute("DELETE FROM audit")


async def _approved(store: Store, broadcast: str, channels: list[str]) -> None:
    """An approved broadcast whose deliveries to Slack `channels` wait in the outbox."""

    def run(conn: Connection) -> None:
        conn.execute(
            "INSERT INTO broadcasts (id, author, text, audience, state, created_at, expires_at, origin)"
            " VALUES (?, 'slack:U0LEAD', 'Hello', 'staff', 'approved', 1, 9e9, 'slack')",
            (broadcast,),
        )
        conn.executemany(
            "INSERT INTO deliveries (broadcast_id, destination, kind, parts, state, attempts, next_attempt_at)"
            " VALUES (?, ?, 'slack', '[\"Hello\"]', 'pending', 0, 0)",
            [(broadcast, channel) for channel in channels],
        )

    await store.write(run)


async def _written(store: Store) -> list[str]:
    rows = await store.call(lambda conn: conn.execute("SELECT action FROM audit ORDER BY id").fetchall())
    return [row[0] for row in rows]


async def test_writes_arriving_together_are_each_kept_or_undone_alone(store: Store, backend: str) -> None:
    """SQLite commits writes arriving together in shared transactions (one fsync for many outcomes);
    PostgreSQL commits each on its own, side by side, so a click never waits behind a group. Either way a
    write that raises is undone alone, and raises to its own caller only."""
    statements: list[str] = []
    transactions: set[int] | None = None
    if backend == "sqlite":
        await store.call(lambda conn: conn.set_trace_callback(statements.append))  # type: ignore[attr-defined]
    else:
        transactions = set()
    texts = [f"write {n}" for n in range(40)]
    results = await asyncio.gather(
        *(store.write(_note(text, text == "write 7", transactions)) for text in texts), return_exceptions=True
    )

    assert [str(r) if isinstance(r, Refused) else r for r in results] == texts
    assert isinstance(results[7], Refused)
    assert sorted(await _written(store)) == sorted(text for text in texts if text != "write 7")
    if transactions is None:
        commits = sum(statement == "COMMIT" for statement in statements)
        assert 1 <= commits < len(texts) / 2, f"{commits} commits for {len(texts)} writes arriving together"
    else:
        assert len(transactions) == len(texts), "each write a transaction of its own"


async def test_a_write_the_database_refuses_fails_alone_and_the_rest_of_its_group_is_kept(store: Store) -> None:
    first = await store.write(_note("before"))
    erase, last = await asyncio.gather(store.write(_erase), store.write(_note("after")), return_exceptions=True)
    assert (first, last) == ("before", "after")
    assert isinstance(erase, Exception) and "append-only" in str(erase)
    assert await _written(store) == ["before", "after"]


async def test_a_row_whose_key_is_taken_undoes_its_write_whole_and_says_which_table(store: Store) -> None:
    """The replay guard relies on it: a copy's signature is inserted in the transaction of what it asks, and
    PostgreSQL tells of the taken key only once the transaction's answers come back."""
    seen = "INSERT INTO seen_requests (signature, seen_at) VALUES (?, ?)"
    await store.write(lambda conn: conn.execute(seen, ("v0=once", 1.0)))

    def again(conn: Connection) -> None:
        audit.record(conn, 0.0, "test", "before the copy", None, audit.RELAY, "")
        conn.execute(seen, ("v0=once", 2.0))
        audit.record(conn, 0.0, "test", "after the copy", None, audit.RELAY, "")

    results = await asyncio.gather(store.write(again), store.write(_note("beside it")), return_exceptions=True)
    assert isinstance(results[0], Duplicate) and results[0].table == "seen_requests"
    assert results[1] == "beside it"
    assert await _written(store) == ["beside it"]
    with pytest.raises(Duplicate) as alone:
        await store.write_one(seen, ("v0=once", 3.0))
    assert alone.value.table == "seen_requests"
    rows = await store.call(lambda conn: conn.execute("SELECT signature, seen_at FROM seen_requests").fetchall())
    assert [tuple(row) for row in rows] == [("v0=once", 1.0)]


async def test_a_claim_whose_answer_never_came_back_is_taken_back_without_waiting_for_its_lease(store: Store) -> None:
    """The database committed a claim as it went away, and the process never learned of it: those deliveries
    are this process's on paper, worked on by nobody. They go back to the queue seconds later, not when
    their two-minute lease runs out; the ones it does work on stay with it."""
    await _approved(store, "b00000001", ["all-staff", "leaders"])
    worked_on, lost = (await outbox.claim_due(store, 100.0, {"slack": 5}, 0))[0]
    assert worked_on.lease_owner is not None

    assert await outbox.recover(store, 101.0, held={worked_on.lease_owner}) == 0, "a claim just made is left alone"
    assert await outbox.recover(store, 110.0, held={worked_on.lease_owner}) == 1
    states = {d.destination: d.state for d in await outbox.for_broadcast(store, "b00000001")}
    assert states == {worked_on.destination: DeliveryState.SENDING, lost.destination: DeliveryState.PENDING}


async def test_parts_leaving_together_are_marked_together_each_as_its_lease_and_broadcast_allow(store: Store) -> None:
    """A fan-out's first posts all ask to be marked at once, and the marks go in a few statements: each still
    answers for its own delivery. A part of a broadcast retracted meanwhile must not leave; one whose delivery
    another instance took over must not either."""
    for broadcast in ("b00000001", "b00000002"):
        await _approved(store, broadcast, [f"channel-{n}" for n in range(30)])
    claimed, _ = await outbox.claim_due(store, 100.0, {"slack": 60}, 0)
    await store.write(lambda conn: conn.execute("UPDATE broadcasts SET state = 'retracted' WHERE id = 'b00000002'"))
    taken_over = {d.id for d in claimed if d.broadcast_id == "b00000001"}
    taken_over = set(sorted(taken_over)[:5])
    await store.write(
        lambda conn: conn.execute(
            f"UPDATE deliveries SET lease_owner = 'another' WHERE id IN ({', '.join('?' * len(taken_over))})",
            tuple(taken_over),
        )
    )

    departures = outbox.Departures(store)
    answers = await asyncio.gather(*(departures.going_out(d) for d in claimed), return_exceptions=True)
    by_id = dict(zip((d.id for d in claimed), answers, strict=True))
    for delivery in claimed:
        answer = by_id[delivery.id]
        if delivery.id in taken_over:
            assert isinstance(answer, outbox.LeaseLost)
        else:
            assert answer is (delivery.broadcast_id == "b00000001")
    marked = await store.call(
        lambda conn: {row[0] for row in conn.execute("SELECT id FROM deliveries WHERE check_first = 1").fetchall()}
    )
    assert marked == {d.id for d in claimed if d.broadcast_id == "b00000001" and d.id not in taken_over}


async def test_places_reserved_together_each_get_their_own_turn(store: Store, backend: str) -> None:
    """Many places asking for their next turn at once, twice: across instances (PostgreSQL) each place's
    second turn comes its interval after the first, whatever else was asked in the same statement."""
    places = [f"slack:T1:channel-{n}" for n in range(40)]
    first = await asyncio.gather(*(store.reserve(place, 1.0, 100.0) for place in places))
    second = await asyncio.gather(*(store.reserve(place, 1.0, 100.25) for place in places))
    teams = await asyncio.gather(*(store.reserve(f"teams:{n}", 0.5, 100.25) for n in range(5)))
    assert first == [100.0] * len(places)
    assert teams == [100.25] * 5
    assert second == ([101.0] * len(places) if backend == "postgres" else [100.25] * len(places))


@pytest.mark.postgres_only
async def test_a_report_is_read_as_of_one_moment_whatever_another_instance_commits_meanwhile(store: Store) -> None:
    """A report counts its deliveries, then loads the ones it lists; another instance recording outcomes in
    between made a finished-looking report that had lost the nine still retrying."""

    def counted_around_a_commit(conn: Connection) -> tuple[int, int]:
        (before,) = conn.execute("SELECT COUNT(*) FROM audit").fetchone()
        with psycopg.connect(DATABASE["DATABASE_URL"], autocommit=True) as other:
            other.execute(
                "INSERT INTO audit (at, actor, action, surface, detail) VALUES (0, 'other', 'note', 'relay', '')"
            )
        (after,) = conn.execute("SELECT COUNT(*) FROM audit").fetchone()
        return before, after

    assert await store.snapshot(counted_around_a_commit) == (0, 0)
    assert await store.call(counted_around_a_commit) == (1, 2), "outside a snapshot, the commit shows"


@pytest.mark.postgres_only
async def test_an_instance_starting_or_stopping_is_counted_by_the_others_at_once(store: Store) -> None:
    """A network's published rate is shared out among the instances alive: one that starts must make the
    others slow down at once, not at their next look ten seconds later (two instances each going at the
    whole rate meet the network's 429s), and one that stops must let them speed up again."""
    recounts, listening = asyncio.Queue[None](), asyncio.Event()
    store.listen(listening.set, lambda key, until: None, lambda: recounts.put_nowait(None))
    await asyncio.wait_for(listening.wait(), 10)
    await asyncio.wait_for(recounts.get(), 10)  # on listening: any that started before it listened
    assert await store.alive(100.0) == 1
    await asyncio.wait_for(recounts.get(), 10)  # its own start, heard by itself too
    other = PostgresStore(DATABASE["DATABASE_URL"])
    await other.open()
    assert await other.alive(101.0) == 2
    await asyncio.wait_for(recounts.get(), 10)
    assert await store.alive(102.0) == 2
    await other.close()
    await asyncio.wait_for(recounts.get(), 10)
    assert await store.alive(103.0) == 1


@pytest.mark.postgres_only
async def test_an_instance_that_started_before_this_one_listened_is_counted_as_soon_as_it_listens(
    store: Store,
) -> None:
    """Two instances started together: each says it started (NOTIFY) while the other may not be listening
    yet. Counted only at the next look, ten seconds later, each took the whole of Teams' published rate
    meanwhile, and a fan-out to 1,000 channels met 220 of the networks' 429s."""
    other = PostgresStore(DATABASE["DATABASE_URL"])
    await other.open()
    try:
        assert await other.alive(100.0) == 1  # said before `store` listens: nobody hears it
        recounts = asyncio.Queue[None]()
        store.listen(lambda: None, lambda key, until: None, lambda: recounts.put_nowait(None))
        await asyncio.wait_for(recounts.get(), 10)
        assert await store.alive(101.0) == 2
    finally:
        await other.close()


@pytest.mark.sqlite_only
async def test_a_database_of_an_older_release_opens_and_what_it_had_in_flight_goes_out(tmp_path: Path) -> None:
    """Schema 7 (before leases had owners): brought up to date, and its delivery left 'sending' taken back."""
    path = tmp_path / "relay.db"
    old = sqlite3.connect(path, isolation_level=None)
    for number, migration in enumerate(SQLITE_FIRST, start=1):
        migration(Database(old))
        old.execute(f"PRAGMA user_version={number}")
    old.execute(
        "INSERT INTO broadcasts (id, author, text, audience, state, created_at, expires_at, origin)"
        " VALUES ('b00000001', 'slack:U0LEAD', 'Hello', 'staff', 'approved', 1, 9e9, 'slack')"
    )
    old.execute(
        "INSERT INTO deliveries (broadcast_id, destination, kind, parts, state, attempts, lease_until)"
        " VALUES ('b00000001', 'all-staff', 'slack', '[\"Hello\"]', 'sending', 1, 9e9)"
    )
    old.close()
    store = SqliteStore(path)
    await store.open()
    try:
        assert await outbox.recover(store, 100.0) == 1
        [delivery] = await outbox.for_broadcast(store, "b00000001")
        assert delivery.state is DeliveryState.PENDING
        version = await store.call(lambda conn: conn.execute("PRAGMA user_version").fetchone()[0])
        assert version == VERSION
    finally:
        await store.close()


@pytest.mark.postgres_only
async def test_both_databases_have_the_same_tables_and_columns(tmp_path: Path) -> None:
    """So that `copy-to-postgres` moves every column, and a query written once runs on both."""
    sqlite, postgres = SqliteStore(tmp_path / "relay.db"), PostgresStore(DATABASE["DATABASE_URL"])
    await sqlite.open()
    await postgres.open()
    try:
        lite = await sqlite.call(
            lambda conn: {
                (table, column[1])
                for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
                if not table.startswith("sqlite_")
                for column in conn.execute(f"PRAGMA table_info({table})").fetchall()
            }
        )
        pg = await postgres.call(
            lambda conn: {
                (row[0], row[1])
                for row in conn.execute(
                    "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
                    " AND table_name != 'relay_schema'"
                ).fetchall()
            }
        )
    finally:
        await sqlite.close()
        await postgres.close()
    assert lite == pg
    assert ("deliveries", "lease_owner") in pg
