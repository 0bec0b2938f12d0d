"""The explicit registry of destination kinds: to add a network, write one module and add one line here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from adapters import bluesky, linkedin, mastodon, own_accounts, slack, teams, threads, x
from relay.accounts import Account
from relay.config import Config, DestinationConfig, Settings
from relay.destination import Destination, DestinationSpec
from relay.own import Builder
from relay.store import Store

OwnBuilder = Callable[[DestinationConfig, Account, Mapping[str, Any], Settings, Store], Destination]


@dataclass(frozen=True)
class Kind:
    spec: DestinationSpec
    build: Callable[[DestinationConfig, Settings, Store], Destination]
    # A leader's connected account of this network, from its stored credentials (None: not connectable).
    own: OwnBuilder | None = None


REGISTRY: Mapping[str, Kind] = {
    "bluesky": Kind(bluesky.SPEC, bluesky.BlueskyAccount, own_accounts.own_bluesky),
    "linkedin": Kind(linkedin.SPEC, linkedin.LinkedInPage, own_accounts.own_linkedin),
    "mastodon": Kind(mastodon.SPEC, mastodon.MastodonAccount, own_accounts.own_mastodon),
    "slack": Kind(slack.SPEC, slack.SlackChannel),
    "teams": Kind(teams.SPEC, teams.TeamsChannel),
    "threads": Kind(threads.SPEC, threads.ThreadsAccount.from_config, own_accounts.own_threads),
    "x": Kind(x.SPEC, x.XAccount, own_accounts.own_x),
}

SPECS: Mapping[str, DestinationSpec] = {name: kind.spec for name, kind in REGISTRY.items()}


def build_destinations(config: Config, settings: Settings, store: Store) -> dict[str, Destination]:
    """One adapter instance per configured destination (the store, for those that keep state)."""
    return {name: REGISTRY[d.kind].build(d, settings, store) for name, d in config.destinations.items()}


def own_builders(settings: Settings, store: Store) -> dict[str, Builder]:
    """How each connectable network builds a leader's own account into a destination."""

    def bound(own: OwnBuilder) -> Builder:
        return lambda config, account, tokens: own(config, account, tokens, settings, store)

    return {name: bound(kind.own) for name, kind in REGISTRY.items() if kind.own is not None}
