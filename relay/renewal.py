"""Keeping leaders' sign-ins alive: renewing tokens before they expire and when a network refuses them, one
instance at a time; warning owners of tokens that cannot be renewed, a week ahead, once.

A refresh token is often single use (X's are): two instances spending it at once would lose the account, so a
renewal runs under a lock every instance on the database shares (`Store.exclusive`), and reads the account again
once it holds it: another instance may have just renewed it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from relay import audit
from relay.accounts import COLUMNS, Account, Accounts, SignInFailed
from relay.audit import Where
from relay.store import Connection, StoreError

log = logging.getLogger(__name__)

WARN_BEFORE = 7 * 24 * 3600.0  # the owner hears a week before a token that cannot be renewed expires
RENEW_BEFORE = 300.0  # a renewable token is renewed this long before it expires, not at the last second
# A renewable token nobody has posted with is renewed by the watch once it expires within a week and has not been
# renewed for a day: Threads renews only a token still valid, so one left unused for 60 days would be lost.
RENEW_IDLE = 24 * 3600.0
WARN_CHECK_EVERY = 3600.0  # seconds between two looks for tokens to renew or warn of


class Renewals:
    """Renews and warns for every account of one `Accounts`."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    async def fresh(self, account: Account) -> Account | None:
        """The account with its tokens renewed first if they are about to expire (None: it is gone)."""
        if not self._due(account):
            return account
        await self.renew(account.id)
        return await self.accounts.get(account.id)

    def _due(self, account: Account, ahead: float = RENEW_BEFORE) -> bool:
        return (
            account.refreshable
            and account.broken is None
            and account.expires_at is not None
            and account.expires_at - ahead <= self.accounts.clock()
        )

    async def renew(self, account_id: str, *, refused: bool = False, idle_since: float | None = None) -> bool:
        """Renew the account's tokens (before they expire, or when the network refused them: `refused`). One
        instance at a time: a refresh token is often single use, and two instances spending it at once would
        lose the account. Whether it worked; a refusal marks the account for connecting again, and its owner
        is told."""
        async with self.accounts.store.exclusive(f"account:{account_id}"):
            before = await self.accounts.get(account_id)
            if before is None or before.broken is not None:
                return False
            if not before.refreshable:
                if refused:
                    await self._break(
                        before, f"{self.accounts.sign_ins.label(before.network)} no longer accepts its sign-in"
                    )
                return False
            if idle_since is not None:
                if before.updated_at > idle_since or not self._due(before, WARN_BEFORE):
                    return True  # another instance renewed it while this one waited
            elif not refused and not self._due(before):
                return True  # another instance renewed it while this one waited
            tokens = await self.accounts.tokens(account_id)
            assert tokens is not None
            now = self.accounts.clock()
            try:
                fresh = await self.accounts.sign_ins.refresh(
                    before.network, self.accounts.redirect_uri(before.network), tokens, before.instance, self.accounts
                )
            except SignInFailed as error:
                await self._break(before, str(error))
                return False
            expires_in = fresh.get("expires_in")
            expires_at = now + float(expires_in) if isinstance(expires_in, (int, float)) else None
            kept = {**tokens, **{k: v for k, v in fresh.items() if k in ("access_token", "refresh_token")}}
            sealed = self.accounts.seal(kept)

            def run(conn: Connection) -> None:
                conn.execute(
                    "UPDATE accounts SET sealed = ?, expires_at = ?, warned_at = NULL, updated_at = ? WHERE id = ?",
                    (sealed, expires_at, now, account_id),
                )

            await self.accounts.store.write(run)
            return True

    async def _break(self, account: Account, reason: str) -> None:
        now = self.accounts.clock()

        def run(conn: Connection) -> None:
            conn.execute("UPDATE accounts SET broken = ?, updated_at = ? WHERE id = ?", (reason, now, account.id))
            audit.record(conn, now, "relay", "account needs reconnecting", None, Where("relay"), account.network)

        await self.accounts.store.write(run)
        label = self.accounts.sign_ins.label(account.network)
        await self.accounts.tell(
            account.owner, f"Your {label} account {account.handle} must be connected again: {reason}.", account.network
        )

    async def warn_expiring(self) -> int:
        """Tell each owner of a token that cannot be renewed, a week before it expires, once: the warning is
        claimed with a compare-and-set, so two instances looking at once tell the owner once. How many."""
        now = self.accounts.clock()

        def run(conn: Connection) -> list[Account]:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM accounts WHERE refreshable = 0 AND expires_at IS NOT NULL"
                " AND expires_at <= ? AND warned_at IS NULL AND broken IS NULL",
                (now + WARN_BEFORE,),
            ).fetchall()
            claimed = []
            for row in rows:
                cursor = conn.execute(
                    "UPDATE accounts SET warned_at = ? WHERE id = ? AND warned_at IS NULL", (now, row["id"])
                )
                if cursor.rowcount == 1:
                    claimed.append(Account.from_row(row))
            return claimed

        warned = await self.accounts.store.write(run)
        for account in warned:
            assert account.expires_at is not None
            days = max(0, int((account.expires_at - now) // 86400))
            when = datetime.fromtimestamp(account.expires_at, tz=UTC).strftime("%Y-%m-%d")
            label = self.accounts.sign_ins.label(account.network)
            await self.accounts.tell(
                account.owner,
                f"Your {label} account {account.handle} stops accepting broadcasts on {when} (in {days} days): "
                f"{label} gives no way to renew its sign-in without you.",
                account.network,
            )
        return len(warned)

    async def renew_idle(self) -> int:
        """Renew the renewable tokens that expire within a week and were not renewed for a day; how many were."""
        now = self.accounts.clock()

        def run(conn: Connection) -> list[str]:
            rows = conn.execute(
                "SELECT id FROM accounts WHERE refreshable = 1 AND broken IS NULL AND expires_at IS NOT NULL"
                " AND expires_at <= ? AND updated_at <= ?",
                (now + WARN_BEFORE, now - RENEW_IDLE),
            ).fetchall()
            return [row["id"] for row in rows]

        renewed = 0
        for account_id in await self.accounts.store.call(run):
            renewed += await self.renew(account_id, idle_since=now - RENEW_IDLE)
        return renewed

    async def watch(self) -> None:
        """Until cancelled: now and then, renew idle tokens and warn of those about to expire."""
        while True:
            try:
                await self.renew_idle()
                await self.warn_expiring()
            except StoreError as error:  # the database is away: the next look tries again
                log.warning("could not look for expiring sign-ins: %s", error)
            await asyncio.sleep(WARN_CHECK_EVERY)
