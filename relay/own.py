"""A leader's own connected accounts as destinations of their own broadcasts, and of nobody else's.

Who an own destination belongs to is never read from a name or a button: it is the broadcast's author. The
audience says whether own accounts are reached (`own_accounts = true`); which ones is the author's connected
accounts, found by the author's id. So an approver approving a leader's broadcast sends to that leader's
accounts (the leader saw them in the preview they confirmed), and no one's broadcast can reach another
person's account. A delivery row names the account for people ("@ceo on X"); the dispatcher finds the
account again from the broadcast's author and the delivery's network (`for_delivery`).

Each network builds a destination from stored credentials in one place: the registry's `own` function
(adapters/__init__.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from relay.accounts import Account, Accounts
from relay.config import Config, DestinationConfig
from relay.destination import Destination, FindResult, Outcome, Part, Permanent
from relay.renewal import Renewals
from relay.store import Connection, Row, Store

log = logging.getLogger(__name__)

# Builds a network's destination from a connected account and its opened tokens.
Builder = Callable[[DestinationConfig, Account, Mapping[str, Any]], Destination]

# What an own account's credentials are called where an adapter names them (adapters/own_accounts.py): an
# adapter's refusal that names them is a refusal of the sign-in (a 401, a token without the scope).
RECONNECT = "connect it again with the accounts command"


@dataclass(frozen=True)
class Own:
    account: Account
    config: DestinationConfig
    destination: Destination


def own_name(account: Account, label: str) -> str:
    """How people see the account in previews and reports: "@ceo on X"."""
    return f"{account.handle} on {label}"


class OwnDestinations:
    """Builds (and keeps, while the tokens are unchanged) the destinations of each author's accounts."""

    def __init__(
        self,
        accounts: Accounts,
        renewals: Renewals,
        builders: Mapping[str, Builder],
        config: Config,
        people: Callable[[str], Iterable[str]],
    ) -> None:
        self.accounts = accounts
        self.renewals = renewals
        self.builders = builders
        self.config = config
        self.people = people  # an id → every id of that person
        self._built: dict[str, tuple[tuple[Any, ...], Own]] = {}
        self._of: dict[str, list[Own]] = {}

    def cached(self, author: str) -> list[Own]:
        """The author's accounts as last loaded (`load`): for the previews, which are drawn without waiting."""
        return self._of.get(author, [])

    async def load(self, author: str) -> list[Own]:
        """The author's connected accounts of networks this relay can post to, built, their tokens renewed first
        where they are about to expire."""
        found = []
        for listed in await self.accounts.mine(self.people(author)):
            if listed.network not in self.builders:
                continue
            account = await self.renewals.fresh(listed)
            if account is None:
                continue
            version = (account.handle, account.updated_at, account.broken)
            kept = self._built.get(account.id)
            if kept is None or kept[0] != version:
                if kept is not None:
                    await kept[1].destination.close()
                own = await self._build(account)
                if own is None:
                    continue
                kept = (version, own)
                self._built[account.id] = kept
            found.append(replace(kept[1], account=account))  # as it is now (expiry, warnings)
        self._of[author] = found
        return found

    async def _build(self, account: Account) -> Own | None:
        tokens = await self.accounts.tokens(account.id)
        if tokens is None:
            return None
        config = DestinationConfig(
            name=own_name(account, self.accounts.label(account.network)),
            kind=account.network,
            dry_run=self.config.dry_run,
            allow_broadcast_mentions=False,
            options={},
            replies=self.config.replies,
        )
        destination = self.builders[account.network](config, account, tokens)
        await destination.prepare()
        return Own(account, config, Renewing(destination, account, self))

    async def rebuilt(self, account_id: str) -> Destination | None:
        """After a refused sign-in: renewed and built again, or None (its owner was told to connect it again)."""
        if not await self.renewals.renew(account_id, refused=True):
            return None
        account = await self.accounts.get(account_id)
        if account is None:
            return None
        own = await self._build(account)
        return own.destination.inner if own is not None and isinstance(own.destination, Renewing) else None

    async def for_delivery(self, store: Store, broadcast_id: str, name: str) -> Destination | None:
        """The destination a delivery row names: one of its broadcast's author's own accounts, or None."""

        def run(conn: Connection) -> Row | None:
            row: Row | None = conn.execute("SELECT author FROM broadcasts WHERE id = ?", (broadcast_id,)).fetchone()
            return row

        row = await store.call(run)
        if row is None:
            return None
        return next((own.destination for own in await self.load(row["author"]) if own.config.name == name), None)

    async def close(self) -> None:
        for _, own in self._built.values():
            await own.destination.close()
        self._built.clear()


class Renewing:
    """An own account's destination that, when the network refuses its sign-in, renews it once and tries again
    (a refused call did not post, so trying again cannot post twice); refused again, or not renewable, the
    delivery fails saying to connect the account again."""

    def __init__(self, inner: Destination, account: Account, owner: OwnDestinations) -> None:
        self.inner = inner
        self.account = account
        self.owner = owner
        self.limits = inner.limits
        self.editable = inner.editable
        self.idempotency_window = inner.idempotency_window

    async def _call(self, attempt: Callable[[Destination], Any]) -> Any:
        outcome = await attempt(self.inner)
        if not (isinstance(outcome, Permanent) and RECONNECT in outcome.reason):
            return outcome
        fresh = await self.owner.rebuilt(self.account.id)
        if fresh is not None:
            await self.inner.close()
            self.inner = fresh
            outcome = await attempt(fresh)
            if not (isinstance(outcome, Permanent) and RECONNECT in outcome.reason):
                return outcome
        label = self.owner.accounts.label(self.account.network)
        return Permanent(
            f"{label} refused the sign-in of {self.account.handle}: reconnect it with the accounts command "
            "(its owner has been told)."
        )

    async def publish(self, part: Part) -> Outcome:
        outcome: Outcome = await self._call(lambda d: d.publish(part))
        return outcome

    async def find(self, part: Part, since: float) -> FindResult:
        found: FindResult = await self._call(lambda d: d.find(part, since))
        return found

    async def prepare(self) -> None:
        await self.inner.prepare()

    def replies_note(self) -> str | None:
        return self.inner.replies_note()

    async def edit(self, remote_id: str, text: str) -> Outcome:
        outcome: Outcome = await self._call(lambda d: d.edit(remote_id, text))
        return outcome

    async def delete(self, remote_id: str) -> Outcome:
        outcome: Outcome = await self._call(lambda d: d.delete(remote_id))
        return outcome

    def pace_key(self) -> str:
        return self.inner.pace_key()

    def limit_key(self) -> str:
        return self.inner.limit_key()

    def describe(self) -> str:
        return self.inner.describe()

    async def close(self) -> None:
        await self.inner.close()
