"""The database: SQLite for one process (the default), PostgreSQL for several (`DATABASE_URL`).

The core imports what it needs from here and never names a backend; `open_store` picks one from the
environment.
"""

from __future__ import annotations

from relay.config import Settings
from relay.store.base import Connection, Duplicate, Row, Store, StoreError, Unwritable

__all__ = ["Connection", "Duplicate", "Row", "Store", "StoreError", "Unwritable", "store_for"]


def store_for(settings: Settings) -> Store:
    """PostgreSQL where `DATABASE_URL` is set (Heroku's `postgres://` too), else SQLite at `RELAY_DB`."""
    url = settings.reveal("DATABASE_URL")
    if url:
        from relay.store.postgres import PostgresStore  # psycopg is loaded only where it is used

        return PostgresStore(url, settings.reveal("DATABASE_CONNECTION_POOL_URL") or None)
    from relay.store.sqlite import SqliteStore

    return SqliteStore(settings.db_path)
