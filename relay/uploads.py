"""What every network's image upload shares: its failures are never a doubt about the post.

An image is uploaded within the delivery's attempt, just before the post that refers to it, so an upload
id never has time to expire. Whatever happens to an upload (refused, timed out, answer lost), the post
that would carry it has not been made: a lost answer leaves at worst an orphan upload, which no one sees
and the network discards, so it is retried as a plain failure, never looked for as a maybe-post.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from relay.destination import Ambiguous, Outcome, Permanent, Retry

# How long a network may take to process an uploaded image before the attempt gives up and is retried
# (Mastodon, X): images take seconds; a minute is well past any normal wait.
PROCESSING_PATIENCE = 60.0
_FIRST_LOOK, _LONGEST_WAIT = 0.1, 2.0  # seconds between looks at a processing upload, doubling


class Unuploaded(Exception):
    """An image could not be uploaded: `outcome` says whether to retry the attempt (never Ambiguous)."""

    def __init__(self, outcome: Retry | Permanent) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


def before_post(outcome: Outcome, network: str) -> Retry | Permanent:
    """An upload's failure as the delivery's outcome: the post was surely not made."""
    if isinstance(outcome, Permanent):
        return outcome
    if isinstance(outcome, Retry):
        return Retry(f"an image upload to {network} failed, nothing was posted: {outcome.reason}", outcome.after)
    reason = outcome.reason if isinstance(outcome, Ambiguous) else "no upload id came back"
    return Retry(f"an image upload to {network} was not confirmed, nothing was posted: {reason}")


def fail(outcome: Outcome, network: str) -> Unuploaded:
    """The exception to raise out of an upload, with the outcome the attempt ends in."""
    return Unuploaded(before_post(outcome, network))


async def until_processed(
    look: Callable[[], Awaitable[bool]], network: str, patience: float = PROCESSING_PATIENCE
) -> None:
    """Ask `look` (True: ready; raises Unuploaded to stop) until the network has processed an upload."""
    deadline, wait = time.monotonic() + patience, _FIRST_LOOK
    while not await look():
        if time.monotonic() + wait > deadline:
            raise Unuploaded(Retry(f"{network} was still processing an image after {patience:.0f} s"))
        await asyncio.sleep(wait)
        wait = min(wait * 2, _LONGEST_WAIT)
