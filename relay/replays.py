"""Accepting a signed request once, across restarts and across instances sharing one database.

A chat platform's signature proves who sent a request, not that it was sent only once: a copy captured on
the way can be sent again while its timestamp is still accepted. The signatures already accepted are kept
in the database for that window, so neither a restart nor a second instance forgets them.
"""

from __future__ import annotations

from relay.store import Store, StoreError


class SeenRequests:
    def __init__(self, store: Store, window: float) -> None:
        self.store = store
        self.window = window
        self._purged_at = 0.0

    async def first_time(self, signature: str, now: float) -> bool:
        """Whether `signature` is new within the last `window` seconds (and from now on, seen). A database
        that cannot take the write lets the request by: its action cannot be written either, so it changes
        nothing. One statement: a signature older than the window counts as new, so the old ones need
        clearing out only now and then, not on every request (where two instances clearing the same rows
        at once made each other's transactions start again)."""
        purge = now - self._purged_at > self.window
        if purge:
            self._purged_at = now
        try:
            added = await self.store.write_one(
                "INSERT INTO seen_requests (signature, seen_at) VALUES (?, ?) ON CONFLICT (signature)"
                " DO UPDATE SET seen_at = excluded.seen_at WHERE seen_requests.seen_at < ?",
                (signature, now, now - self.window),
            )
            if purge:
                await self.store.write_one("DELETE FROM seen_requests WHERE seen_at < ?", (now - self.window,))
        except StoreError:
            return True
        return added == 1
