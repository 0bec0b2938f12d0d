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
from dataclasses import dataclass
from typing import Any

from relay.accounts import Account, Accounts
from relay.config import Config, DestinationConfig
from relay.destination import Destination
from relay.store import Connection, Row, Store

log = logging.getLogger(__name__)

# Builds a network's destination from a connected account and its opened tokens.
Builder = Callable[[DestinationConfig, Account, Mapping[str, Any]], Destination]


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
        builders: Mapping[str, Builder],
        config: Config,
        people: Callable[[str], Iterable[str]],
    ) -> None:
        self.accounts = accounts
        self.builders = builders
        self.config = config
        self.people = people  # an id → every id of that person
        self._built: dict[str, tuple[tuple[Any, ...], Own]] = {}
        self._of: dict[str, list[Own]] = {}

    def cached(self, author: str) -> list[Own]:
        """The author's accounts as last loaded (`load`): for the previews, which are drawn without waiting."""
        return self._of.get(author, [])

    async def load(self, author: str) -> list[Own]:
        """The author's connected accounts of networks this relay can post to, built."""
        found = []
        for account in await self.accounts.mine(self.people(author)):
            if account.network not in self.builders:
                continue
            version = (account.handle, account.updated_at)
            kept = self._built.get(account.id)
            if kept is None or kept[0] != version:
                if kept is not None:
                    await kept[1].destination.close()
                own = await self._build(account)
                if own is None:
                    continue
                kept = (version, own)
                self._built[account.id] = kept
            found.append(kept[1])
        self._of[author] = found
        return found

    async def _build(self, account: Account) -> Own | None:
        tokens = await self.accounts.tokens_for_posting(account.id)
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
        return Own(account, config, destination)

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
