"""Leaders' own accounts: connected from chat through each network's sign-in, kept sealed, forgotten (renewal:
relay/renewal.py).

A sign-in goes: the person presses Connect in chat (the surface knows who, by a verified request); `begin` keeps a
state for them in the database and gives a link to the relay's own `/oauth/<network>/start`; the first browser to
open it is bound to the sign-in with a cookie and sent to the network; the network sends it back to
`/oauth/<network>/callback`, where `finish` takes the state (once: `DELETE … RETURNING`, so a replayed callback,
even to another instance, finds nothing), checks it is the same network, unexpired, and the same browser, then
trades the code (with the PKCE verifier) for tokens, sealed before they are written. The network's specifics live
in `adapters/sign_in.py`; this module knows none of them.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from relay import audit
from relay.audit import Where
from relay.store import Connection, Row, Store
from relay.vault import HOW_TO_MAKE_ONE, KEY_VARIABLE, Vault

log = logging.getLogger(__name__)

STATE_LIFETIME = 600.0  # seconds a sign-in link works: long enough to sign in, short enough to be useless later
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class SignInFailed(Exception):
    """A sign-in, renewal or revocation the network (or the relay) refused; the message is for the person."""


@dataclass(frozen=True)
class Grant:
    """What a network gave for one person: who they are there, and the tokens (sealed before they are kept)."""

    handle: str  # shown to the person: "@ceo", "Jane Doe"
    remote_id: str  # the network's id: an X user id, "urn:li:person:…", a Bluesky DID
    tokens: Mapping[str, Any]
    expires_at: float | None  # when the access token stops working; None: it does not expire
    refreshable: bool
    instance: str | None = None  # the person's Mastodon server or Bluesky PDS


class AppRegistry(Protocol):
    async def app_for(self, instance: str, register: Callable[[], Awaitable[dict[str, str]]]) -> dict[str, str]:
        """The relay's app on one Mastodon server, registered the first time and kept."""
        ...


class SignInService(Protocol):
    """The networks' sign-ins (adapters/sign_in.py)."""

    def offered(self) -> list[str]: ...

    def label(self, name: str) -> str: ...

    def browser(self, name: str) -> bool: ...

    def per_instance(self, name: str) -> bool: ...

    async def authorize_url(
        self, name: str, redirect_uri: str, state: str, challenge: str, instance: str | None, apps: AppRegistry
    ) -> str: ...

    async def finish(
        self, name: str, redirect_uri: str, code: str, verifier: str, instance: str | None, apps: AppRegistry
    ) -> Grant: ...

    async def refresh(
        self, name: str, redirect_uri: str, tokens: Mapping[str, Any], instance: str | None, apps: AppRegistry
    ) -> dict[str, Any]: ...

    async def revoke(
        self, name: str, redirect_uri: str, tokens: Mapping[str, Any], instance: str | None, apps: AppRegistry
    ) -> bool: ...

    async def check_password(self, pds: str, identifier: str, password: str) -> Grant: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Account:
    """A connected account, without its tokens."""

    id: str
    owner: str
    network: str
    handle: str
    remote_id: str
    instance: str | None
    expires_at: float | None
    refreshable: bool
    warned_at: float | None
    broken: str | None
    updated_at: float = 0.0  # changes whenever its tokens do

    @classmethod
    def from_row(cls, row: Row) -> Account:
        return cls(
            id=row["id"],
            owner=row["owner"],
            network=row["network"],
            handle=row["handle"],
            remote_id=row["remote_id"],
            instance=row["instance"],
            expires_at=row["expires_at"],
            refreshable=bool(row["refreshable"]),
            warned_at=row["warned_at"],
            broken=row["broken"],
            updated_at=row["updated_at"],
        )

    def needs_reconnecting(self, now: float) -> str | None:
        """Why this account cannot be posted to until its owner connects it again, or None."""
        if self.broken:
            return self.broken
        if self.expires_at is not None and self.expires_at <= now and not self.refreshable:
            return "its sign-in has expired"
        return None


class Listener(Protocol):
    """A chat surface that can tell a person something in private (a DM)."""

    async def tell(self, person: str, text: str, reconnect: str | None = None) -> None:
        """`reconnect`: a network to offer a Connect button for."""
        ...


@dataclass(frozen=True)
class Finished:
    """The end of a sign-in, for the browser's page: whether it worked, and why not."""

    connected: bool
    message: str


COLUMNS = "id, owner, network, handle, remote_id, instance, expires_at, refreshable, warned_at, broken, updated_at"


class Accounts:
    """Everyone's connected accounts, and the sign-ins under way."""

    def __init__(
        self,
        store: Store,
        vault: Vault | None,
        sign_ins: SignInService,
        public_url: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.vault = vault
        self.sign_ins = sign_ins
        self.public_url = public_url.rstrip("/") if public_url else None
        self.clock = clock
        self.listeners: list[Listener] = []

    # ---- what a person sees --------------------------------------------------------------------------

    def off(self) -> str | None:
        """Why nobody can connect an account on this relay, or None."""
        if self.vault is None:
            return (
                f"Connecting your own accounts is off on this relay: its operator must set {KEY_VARIABLE} "
                f"({HOW_TO_MAKE_ONE})."
            )
        return None

    def offered(self) -> list[tuple[str, str]]:
        """(network, label) of each network a person can connect here. Browser sign-ins need the relay's public
        address for the network to send the browser back to."""
        if self.vault is None:
            return []
        return [
            (name, self.sign_ins.label(name))
            for name in self.sign_ins.offered()
            if self.public_url or not self.sign_ins.browser(name)
        ]

    def label(self, network: str) -> str:
        return self.sign_ins.label(network)

    def asks_for_server(self, network: str) -> bool:
        return self.sign_ins.per_instance(network)

    async def mine(self, person: Iterable[str]) -> list[Account]:
        """A person's accounts, under any of their ids (one person may act from Slack and from Teams)."""
        ids = sorted(set(person))
        marks = ", ".join("?" * len(ids))

        def run(conn: Connection) -> list[Row]:
            sql = f"SELECT {COLUMNS} FROM accounts WHERE owner IN ({marks}) ORDER BY network"
            return conn.execute(sql, ids).fetchall()

        return [Account.from_row(row) for row in await self.store.call(run)]

    async def get(self, account_id: str) -> Account | None:
        def run(conn: Connection) -> Row | None:
            row: Row | None = conn.execute(f"SELECT {COLUMNS} FROM accounts WHERE id = ?", (account_id,)).fetchone()
            return row

        row = await self.store.call(run)
        return Account.from_row(row) if row is not None else None

    # ---- signing in ----------------------------------------------------------------------------------

    def redirect_uri(self, network: str) -> str:
        return f"{self.public_url or ''}/oauth/{network}/callback"

    async def begin(self, owner: str, network: str, instance: str | None = None) -> str:
        """A sign-in for `owner` (the verified id of the person who pressed Connect): the link to open."""
        vault = self._vault()
        if network not in dict(self.offered()) or not self.sign_ins.browser(network):
            raise SignInFailed(f"{self.sign_ins.label(network)} cannot be connected on this relay.")
        if self.sign_ins.per_instance(network):
            instance = server_address(instance or "")
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)  # RFC 7636 §4.1: 43 to 128 unreserved characters
        sealed = vault.seal({"verifier": verifier, "instance": instance})
        now = self.clock()

        def run(conn: Connection) -> None:
            conn.execute("DELETE FROM oauth_states WHERE expires_at <= ?", (now,))
            conn.execute(
                "INSERT INTO oauth_states (state_hash, owner, network, sealed, expires_at) VALUES (?, ?, ?, ?, ?)",
                (_digest(state), owner, network, sealed, now + STATE_LIFETIME),
            )

        await self.store.write(run)
        return f"{self.public_url}/oauth/{network}/start?state={state}"

    async def start(self, network: str, state: str, browser: str) -> str:
        """The first browser to open a sign-in link is bound to it (`browser`: its cookie); the network's
        sign-in page to send it to."""
        vault = self._vault()
        now = self.clock()

        def bind(conn: Connection) -> Row | None:
            cursor = conn.execute(
                "UPDATE oauth_states SET browser_hash = ? WHERE state_hash = ? AND network = ?"
                " AND browser_hash IS NULL AND expires_at > ?",
                (_digest(browser), _digest(state), network, now),
            )
            if cursor.rowcount != 1:
                return None
            row: Row | None = conn.execute(
                "SELECT sealed FROM oauth_states WHERE state_hash = ?", (_digest(state),)
            ).fetchone()
            return row

        row = await self.store.write(bind)
        if row is None:
            raise SignInFailed(
                "This sign-in link has expired, was already opened, or is not yours: ask for a new one with "
                "the accounts command in chat."
            )
        kept = vault.open(row["sealed"])
        challenge = _s256(kept["verifier"])
        redirect = self.redirect_uri(network)
        return await self.sign_ins.authorize_url(network, redirect, state, challenge, kept["instance"], self)

    async def finish(self, network: str, query: Mapping[str, str], browser: str | None) -> Finished:
        """The network sent the browser back. The state is used up whatever happens next."""
        vault = self._vault()
        state = query.get("state", "")
        now = self.clock()

        def take(conn: Connection) -> Row | None:
            row: Row | None = conn.execute(
                "DELETE FROM oauth_states WHERE state_hash = ? RETURNING owner, network, browser_hash, sealed,"
                " expires_at",
                (_digest(state),),
            ).fetchone()
            return row

        row = await self.store.write(take) if state else None
        if row is None or row["network"] != network:
            return Finished(False, "This sign-in is unknown or was already used: nothing was connected.")
        owner = row["owner"]
        if row["expires_at"] <= now:
            return await self._failed(owner, network, "the sign-in link expired (it lasts 10 minutes)")
        if browser is None or row["browser_hash"] != _digest(browser):
            return Finished(False, "This sign-in was started in another browser: nothing was connected.")
        if query.get("error"):
            reason = query.get("error_description") or query["error"]
            return await self._failed(owner, network, f"{self.sign_ins.label(network)} said: {reason}")
        kept = vault.open(row["sealed"])
        try:
            grant = await self.sign_ins.finish(
                network, self.redirect_uri(network), query.get("code", ""), kept["verifier"], kept["instance"], self
            )
        except SignInFailed as error:
            return await self._failed(owner, network, str(error))
        account = await self._keep(owner, network, grant)
        return await self._connected(account)

    async def connect_password(self, owner: str, pds: str, identifier: str, password: str) -> Account:
        """Bluesky: a handle and an app password, kept only once the server has opened a session with them."""
        self._vault()
        grant = await self.sign_ins.check_password(pds, identifier.strip().lstrip("@"), password.strip())
        account = await self._keep(owner, "bluesky", grant)
        await self._connected(account)
        return account

    async def _connected(self, account: Account) -> Finished:
        label = self.sign_ins.label(account.network)
        message = f"Your {label} account {account.handle} is connected: broadcasts can now go to it, as you."
        await self.tell(account.owner, message)
        return Finished(True, message)

    async def _failed(self, owner: str, network: str, reason: str) -> Finished:
        message = f"Your {self.sign_ins.label(network)} account was not connected: {reason}."
        await self.tell(owner, message)
        return Finished(False, message)

    async def _keep(self, owner: str, network: str, grant: Grant) -> Account:
        sealed = self._vault().seal(dict(grant.tokens))
        now = self.clock()
        account_id = "a" + secrets.token_hex(6)

        def run(conn: Connection) -> Row:
            conn.execute(
                "INSERT INTO accounts (id, owner, network, handle, remote_id, instance, sealed, expires_at,"
                " refreshable, connected_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (owner, network) DO UPDATE SET handle = excluded.handle,"
                " remote_id = excluded.remote_id, instance = excluded.instance, sealed = excluded.sealed,"
                " expires_at = excluded.expires_at, refreshable = excluded.refreshable, warned_at = NULL,"
                " broken = NULL, connected_at = excluded.connected_at, updated_at = excluded.updated_at",
                (
                    account_id,
                    owner,
                    network,
                    grant.handle,
                    grant.remote_id,
                    grant.instance,
                    sealed,
                    grant.expires_at,
                    int(grant.refreshable),
                    now,
                    now,
                ),
            )
            audit.record(conn, now, owner, "account connected", None, Where("relay"), f"{network} {grant.handle}")
            row: Row = conn.execute(
                f"SELECT {COLUMNS} FROM accounts WHERE owner = ? AND network = ?", (owner, network)
            ).fetchone()
            return row

        return Account.from_row(await self.store.write(run))

    # ---- forgetting ----------------------------------------------------------------------------------

    async def disconnect(self, person: Iterable[str], account_id: str, actor: str) -> str:
        """Revoke the token where the network allows it, and forget the account: only its owner may."""
        account = await self.get(account_id)
        if account is None or account.owner not in set(person):
            return "There is no such account of yours (it may already be disconnected)."
        label = self.sign_ins.label(account.network)
        revoked = ""
        if self.vault is not None and account.network != "bluesky":
            tokens = await self.tokens(account_id)
            try:
                if tokens is not None and await self.sign_ins.revoke(
                    account.network, self.redirect_uri(account.network), tokens, account.instance, self
                ):
                    revoked = f" {label} was asked to revoke the relay's access."
            except SignInFailed as error:
                revoked = f" ({error}; remove the relay's access in your {label} settings.)"
        if not revoked and account.network in ("linkedin", "threads", "bluesky"):
            revoked = (
                f" {label} offers no way to revoke it from here: remove the relay's access in your {label} settings."
            )
        now = self.clock()

        def run(conn: Connection) -> None:
            conn.execute("DELETE FROM accounts WHERE id = ?", (account_id,))
            audit.record(
                conn, now, actor, "account disconnected", None, Where("relay"), f"{account.network} {account.handle}"
            )

        await self.store.write(run)
        return f"Your {label} account {account.handle} is disconnected and its tokens are forgotten.{revoked}"

    # ---- tokens --------------------------------------------------------------------------------------

    async def tokens(self, account_id: str) -> dict[str, Any] | None:
        """The account's tokens, opened; None when it is gone, or they cannot be opened (no key: nothing is
        posted as anyone)."""
        if self.vault is None:
            return None

        def run(conn: Connection) -> Row | None:
            row: Row | None = conn.execute("SELECT sealed FROM accounts WHERE id = ?", (account_id,)).fetchone()
            return row

        row = await self.store.call(run)
        return self._vault().open(row["sealed"]) if row is not None else None

    async def app_for(self, instance: str, register: Callable[[], Awaitable[dict[str, str]]]) -> dict[str, str]:
        """The relay's app on a Mastodon server: registered once, kept sealed (a second instance registering
        at the same time keeps the first one written)."""

        def read(conn: Connection) -> Row | None:
            row: Row | None = conn.execute(
                "SELECT sealed FROM mastodon_apps WHERE instance = ?", (instance,)
            ).fetchone()
            return row

        row = await self.store.call(read)
        if row is not None:
            return self._vault().open(row["sealed"])
        app = await register()
        sealed, now = self._vault().seal(app), self.clock()

        def keep(conn: Connection) -> Row:
            conn.execute(
                "INSERT INTO mastodon_apps (instance, sealed, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (instance) DO NOTHING",
                (instance, sealed, now),
            )
            kept: Row = conn.execute("SELECT sealed FROM mastodon_apps WHERE instance = ?", (instance,)).fetchone()
            return kept

        return self._vault().open((await self.store.write(keep))["sealed"])

    # ---- helpers -------------------------------------------------------------------------------------

    def seal(self, value: dict[str, Any]) -> str:
        return self._vault().seal(value)

    def _vault(self) -> Vault:
        if self.vault is None:
            raise SignInFailed(self.off() or "")
        return self.vault

    async def tell(self, person: str, text: str, reconnect: str | None = None) -> None:
        for listener in self.listeners:
            try:
                await listener.tell(person, text, reconnect)
            except Exception:
                log.exception("a chat surface failed to tell %s about their account", person)


def server_address(given: str) -> str:
    """A Mastodon server as the person wrote it ("mastodon.social", "https://mastodon.social/") as its address;
    plain http only on this machine (a test's server)."""
    text = given.strip().rstrip("/")
    if "://" not in text:
        text = f"https://{text}"
    parts = urlsplit(text)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host or ("." not in host and host not in LOOPBACK_HOSTS):
        raise SignInFailed(f"{given.strip()!r} is not a Mastodon server's address; write it like mastodon.social")
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        raise SignInFailed("A Mastodon server is reached over https: write its address without http://")
    if parts.path or parts.query:
        raise SignInFailed(f"Write only the server's address, like {host}, without a path")
    return f"{parts.scheme}://{parts.netloc}"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(verifier)), without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


async def reseal_all(store: Store, vault: Vault) -> int:
    """After a key rotation: every sealed value sealed again with the first key, in one transaction (a value no
    key opens stops it, and nothing is changed)."""

    def run(conn: Connection) -> int:
        count = 0
        for table, key in (("accounts", "id"), ("mastodon_apps", "instance"), ("oauth_states", "state_hash")):
            for row in conn.execute(f"SELECT {key}, sealed FROM {table}").fetchall():
                conn.execute(f"UPDATE {table} SET sealed = ? WHERE {key} = ?", (vault.reseal(row["sealed"]), row[key]))
                count += 1
        return count

    return await store.write(run)
