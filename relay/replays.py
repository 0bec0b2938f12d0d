"""Accepting a signed request once, across restarts and across instances sharing one database.

A chat platform's signature proves who sent a request, not that it was sent only once: a copy captured on
the way can be sent again while its timestamp is still accepted. The signatures already accepted are kept
in the database for that window, so neither a restart nor a second instance forgets them.
"""

from __future__ import annotations

from relay.store import Connection, Store, Unwritable


async def first_time(store: Store, signature: str, now: float, window: float) -> bool:
    """Whether `signature` is new within the last `window` seconds (and from now on, seen). A disk that
    refuses the write lets the request by: its action cannot be written either, so it changes nothing."""

    def run(conn: Connection) -> bool:
        conn.execute("DELETE FROM seen_requests WHERE seen_at < ?", (now - window,))
        added = conn.execute(
            "INSERT INTO seen_requests (signature, seen_at) VALUES (?, ?) ON CONFLICT (signature) DO NOTHING",
            (signature, now),
        )
        return added.rowcount == 1

    try:
        return await store.write(run)
    except Unwritable:
        return True
