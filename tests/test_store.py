"""Writes committed together: each stands or falls alone, and none is answered before it is on disk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from relay import audit
from relay.store import Connection, Store
from relay.store.postgres import PostgresStore
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


async def _written(store: Store) -> list[str]:
    rows = await store.call(lambda conn: conn.execute("SELECT action FROM audit ORDER BY id").fetchall())
    return [row[0] for row in rows]


async def test_writes_arriving_together_share_commits_and_one_that_raises_is_undone_alone(
    store: Store, backend: str
) -> None:
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
    assert await _written(store) == [text for text in texts if text != "write 7"]
    commits = sum(statement == "COMMIT" for statement in statements) if transactions is None else len(transactions)
    assert 1 <= commits < len(texts) / 2, f"{commits} commits for {len(texts)} writes arriving together"


async def test_a_write_the_database_refuses_fails_alone_and_the_rest_of_its_group_is_kept(store: Store) -> None:
    first, erase, last = await asyncio.gather(
        store.write(_note("before")), store.write(_erase), store.write(_note("after")), return_exceptions=True
    )
    assert (first, last) == ("before", "after")
    assert isinstance(erase, Exception) and "append-only" in str(erase)
    assert await _written(store) == ["before", "after"]
