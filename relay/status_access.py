"""Who may see the status page: sign-in sessions kept in the database, and a throttle on guessing.

A session is a random token; the database keeps only its SHA-256, so a copy of the database signs nobody
in. Being server-side, a session ends for good at logout, outlives a restart, and is shared by every
instance on one database. The configured secret is only ever compared, never used as a key, so a captured
cookie gives nothing to guess the secret offline with.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import deque

from relay.store import Connection, Store

SESSION_SECONDS = 12 * 3600
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32): 32 random bytes, base64url

# Wrong secrets allowed per minute from one address, and from everyone together; past either, sign-in is
# refused for the rest of that minute, right secret or not. A secret of 16+ random characters cannot be
# guessed at 20 tries a minute, and the person who knows it waits at most a minute after someone's typos.
PER_CLIENT = 5
IN_TOTAL = 20
WINDOW = 60.0
_CLIENTS_KEPT = 10_000  # addresses remembered at once, so a spray of addresses cannot grow memory forever


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def start(self, now: float) -> str:
        """A new session's token, for the cookie; expired sessions are swept out on the way."""
        token = secrets.token_urlsafe(32)

        def run(conn: Connection) -> None:
            conn.execute("DELETE FROM status_sessions WHERE expires_at < ?", (now,))
            conn.execute(
                "INSERT INTO status_sessions (token_hash, created_at, expires_at) VALUES (?, ?, ?)",
                (_digest(token), now, now + SESSION_SECONDS),
            )

        await self.store.write(run)
        return token

    async def valid(self, token: str, now: float) -> bool:
        """Whether `token` (whatever a client sent as the cookie) is a live session."""
        if not _TOKEN.match(token):
            return False

        def run(conn: Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM status_sessions WHERE token_hash = ? AND expires_at >= ?", (_digest(token), now)
            ).fetchone()
            return row is not None

        return await self.store.call(run)

    async def end(self, token: str) -> None:
        if _TOKEN.match(token):
            await self.store.write(
                lambda conn: conn.execute("DELETE FROM status_sessions WHERE token_hash = ?", (_digest(token),))
            )


class Throttle:
    """Counts wrong secrets per address and in total over the last WINDOW seconds."""

    def __init__(self) -> None:
        self._all: deque[float] = deque()
        self._by_client: dict[str, deque[float]] = {}

    def wait(self, client: str, now: float) -> float:
        """Seconds until `client` may try again; 0 when it may now."""
        mine = self._by_client.get(client, deque())
        for queue in (self._all, mine):
            while queue and queue[0] <= now - WINDOW:
                queue.popleft()
        full = [(queue, limit) for queue, limit in ((mine, PER_CLIENT), (self._all, IN_TOTAL)) if len(queue) >= limit]
        return max((queue[-limit] + WINDOW - now for queue, limit in full), default=0.0)

    def failed(self, client: str, now: float) -> int:
        """Count a wrong secret; how many `client` has given within the window."""
        self._all.append(now)
        if client not in self._by_client and len(self._by_client) >= _CLIENTS_KEPT:
            del self._by_client[next(iter(self._by_client))]  # the address that failed longest ago
        mine = self._by_client.pop(client, deque())
        mine.append(now)
        self._by_client[client] = mine  # kept in order of each address's latest failure
        return len(mine)
