"""The explicit registry of destination kinds: to add a network, write one module and add one line here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from adapters import slack, x
from relay.config import Config, DestinationConfig, Settings
from relay.destination import Destination, DestinationSpec


@dataclass(frozen=True)
class Kind:
    spec: DestinationSpec
    build: Callable[[DestinationConfig, Settings], Destination]


REGISTRY: Mapping[str, Kind] = {
    "slack": Kind(slack.SPEC, slack.SlackChannel),
    "x": Kind(x.SPEC, x.XAccount),
}

SPECS: Mapping[str, DestinationSpec] = {name: kind.spec for name, kind in REGISTRY.items()}


def build_destinations(config: Config, settings: Settings) -> dict[str, Destination]:
    """One adapter instance per configured destination."""
    return {name: REGISTRY[d.kind].build(d, settings) for name, d in config.destinations.items()}
