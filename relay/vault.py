"""Leaders' tokens at rest: sealed with `RELAY_SECRET_KEY` (Fernet), so a copy of the database alone reads nothing.

Several comma-separated keys make a rotation (cryptography's `MultiFernet`): the first seals, every one opens,
and `python -m relay rotate-key` seals every stored token again with the first, after which the old key can be
dropped. Fernet authenticates what it seals: a sealed value changed or sealed under another key is refused, not
misread. Neither a key nor what it opens appears in a message or a log: errors name the variable, never a value.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from relay.config import ConfigError, Settings

KEY_VARIABLE = "RELAY_SECRET_KEY"
HOW_TO_MAKE_ONE = (
    f"generate one with `python -m relay new-secret-key` and set {KEY_VARIABLE} to it "
    "(keep it secret, and keep it: without it the stored tokens cannot be read)"
)


class Unsealable(Exception):
    """A sealed value no configured key opens (a key dropped too early, or a changed row); the message says so
    without a word of the value."""


class Vault:
    """Seals and opens small JSON objects (a person's tokens) with the configured keys."""

    def __init__(self, keys: list[str]) -> None:
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    def seal(self, value: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(value).encode()).decode()

    def open(self, sealed: str) -> dict[str, Any]:
        try:
            opened: dict[str, Any] = json.loads(self._fernet.decrypt(sealed.encode()))
        except InvalidToken:
            raise Unsealable(
                f"a stored token cannot be opened with any key in {KEY_VARIABLE}: put back the key it was sealed "
                "with (after the new one), or have its owner connect the account again"
            ) from None
        return opened

    def reseal(self, sealed: str) -> str:
        """The same value sealed with the first key (for a rotation); raises Unsealable as `open` does."""
        try:
            return self._fernet.rotate(sealed.encode()).decode()
        except InvalidToken:
            raise Unsealable(f"a stored token cannot be opened with any key in {KEY_VARIABLE}") from None


def vault_from(settings: Settings) -> Vault | None:
    """The vault `RELAY_SECRET_KEY` makes, None when it is unset (connecting accounts is then off); a malformed
    key stops start-up, naming which one by position only."""
    secret = settings.secret(KEY_VARIABLE)
    if secret is None:
        return None
    keys = [key.strip() for key in secret.value.split(",")]
    for position, key in enumerate(keys, 1):
        try:
            Fernet(key.encode())
        except ValueError:
            which = f"key {position} of {len(keys)}" if len(keys) > 1 else "its value"
            raise ConfigError(
                f"{KEY_VARIABLE}: {which} is not a Fernet key (32 url-safe base64-encoded bytes); {HOW_TO_MAKE_ONE}"
            ) from None
    return Vault(keys)


def new_key() -> str:
    return Fernet.generate_key().decode()
