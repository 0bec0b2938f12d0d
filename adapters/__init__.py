"""The explicit registry of destination kinds: to add a network, write one module and add one line here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from adapters import bluesky, linkedin, mastodon, slack, teams, threads, x
from relay.config import Config, DestinationConfig, Settings
from relay.destination import Destination, DestinationSpec
from relay.store import Store


@dataclass(frozen=True)
class Kind:
    spec: DestinationSpec
    build: Callable[[DestinationConfig, Settings, Store], Destination]


REGISTRY: Mapping[str, Kind] = {
    "bluesky": Kind(bluesky.SPEC, bluesky.BlueskyAccount),
    "linkedin": Kind(linkedin.SPEC, linkedin.LinkedInPage),
    "mastodon": Kind(mastodon.SPEC, mastodon.MastodonAccount),
    "slack": Kind(slack.SPEC, slack.SlackChannel),
    "teams": Kind(teams.SPEC, teams.TeamsChannel),
    "threads": Kind(threads.SPEC, threads.ThreadsAccount.from_config),
    "x": Kind(x.SPEC, x.XAccount),
}

SPECS: Mapping[str, DestinationSpec] = {name: kind.spec for name, kind in REGISTRY.items()}


def build_destinations(config: Config, settings: Settings, store: Store) -> dict[str, Destination]:
    """One adapter instance per configured destination (the store, for those that keep state)."""
    return {name: REGISTRY[d.kind].build(d, settings, store) for name, d in config.destinations.items()}
