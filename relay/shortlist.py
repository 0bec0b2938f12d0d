"""Long lists in chat messages: the items that need the reader first, as many as fit, and the rest counted.

A chat message has a size (Slack: about 12,000 characters of block text; Teams: about 28 KB), and a list of
destinations, failures or broadcasts can be longer than any message. Each surface measures its own items;
this only decides which are shown and how many are left for the pointer to the full list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Shortlist(Generic[T]):
    shown: list[T]
    hidden: int  # how many more there are, for "… and 12 more"


def shortlist(
    items: Sequence[T], cost: Callable[[T], int], budget: int, urgent: Callable[[T], bool] = lambda _: False
) -> Shortlist[T]:
    """The urgent items first, then the others, each in its own order, while their `cost` adds up to at most
    `budget`; the first item that does not fit ends the list, so what is shown keeps its order."""
    ordered = [item for item in items if urgent(item)] + [item for item in items if not urgent(item)]
    shown: list[T] = []
    spent = 0
    for item in ordered:
        spent += cost(item)
        if spent > budget:
            break
        shown.append(item)
    return Shortlist(shown, len(ordered) - len(shown))
