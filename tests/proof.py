"""The figures `docs/RELIABILITY.md` publishes, counted by the tests that earn them.

A test calls `tally("hostile inputs tried")` for each thing it really did and checked; the run's
summary prints the totals, so the published counts come from one command (`make proof`), not a
hand-kept list. `--proof-scale=large` makes the crash and fault rounds bigger; CI runs the small size.
"""

from __future__ import annotations

from collections import Counter

COUNTS: Counter[str] = Counter()


def tally(what: str, n: int = 1) -> None:
    """Count `n` checked cases of `what` (say it the way the published table should)."""
    COUNTS[what] += n
