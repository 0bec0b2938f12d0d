"""Each network's sign-in, as data over one OAuth 2.0 authorization-code flow: where to send the browser, where
to trade the code, how to learn who signed in, how to renew and revoke. Bluesky has no OAuth for apps here: an
app password, checked with createSession before it is kept.

The flow's shape is RFC 6749's, with PKCE (RFC 7636, S256) where the network takes it (relay/accounts.py makes
the verifier). oauthlib, installed with tweepy, is not used: its request builders refuse every address that is
not https, loopback test servers included, unless a process-wide variable turns that check off for everything;
what is left is a form POST and a query string.
Sources per network are named on each `OAuthNetwork` below.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

from relay.accounts import AppRegistry, Grant, SignInFailed
from relay.config import Settings
from relay.transport import Answer, client_timeout, request


@dataclass(frozen=True)
class Client:
    """The relay's app on a network: its id and secret, and where that network lives."""

    client_id: str
    client_secret: str
    hosts: Mapping[str, str]  # "web" (the sign-in page's host), "api": the network's, or a test's fakes

    def url(self, where: tuple[str, str]) -> str:
        host, path = where
        return f"{self.hosts[host]}{path}"


@dataclass(frozen=True)
class OAuthNetwork:
    """One network's OAuth 2.0 dialect."""

    name: str  # the destination kind and the route: /oauth/<name>/callback
    label: str  # how people call it
    credentials: tuple[str, str]  # the variables holding the app's id and secret
    # "web" and "api" → (the variable that may point elsewhere, as tests do; the network's own address)
    hosts: Mapping[str, tuple[str, str]]
    authorize: tuple[str, str]  # (host, path) of the sign-in page
    token: tuple[str, str]
    scope: str
    pkce: bool = True
    basic_auth: bool = False  # the app authenticates with HTTP Basic (X), else in the form body
    # Who signed in, from a fresh token: (remote id, handle shown to the person).
    identify: Callable[[aiohttp.ClientSession, Client, Mapping[str, Any]], Awaitable[tuple[str, str]]] | None = None
    # After the code is traded: a longer-lived token for the short one (Threads).
    lengthen: Callable[[aiohttp.ClientSession, Client, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None
    # Renewing without the person: the refresh-token grant when a refresh token came, or the network's own.
    renew: Callable[[aiohttp.ClientSession, Client, Mapping[str, Any]], Awaitable[dict[str, Any]]] | None = None
    revoke: tuple[str, str] | None = None  # None: the network has no way to revoke a token
    per_instance: bool = False  # Mastodon: the person names the server, and the app registers itself there

    def client(self, settings: Settings) -> Client | None:
        """The app's credentials, or None when they are not set (the network is then not offered)."""
        client_id, secret = (settings.reveal(variable) for variable in self.credentials)
        if not (client_id and secret) and not self.per_instance:
            return None
        hosts = {role: (settings.reveal(variable) or url).rstrip("/") for role, (variable, url) in self.hosts.items()}
        api = urlsplit(hosts["api"])
        hosts["origin"] = f"{api.scheme}://{api.netloc}"  # the API's host without its version (Threads' tokens)
        return Client(client_id, secret, hosts)


class SignIns:
    """The networks' sign-ins, run over one HTTP session with the relay's timeouts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._timeout = client_timeout(settings.http_timeout)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def offered(self) -> list[str]:
        """The networks people can connect: those whose app credentials are set (Mastodon registers its app on
        each server, Bluesky needs none)."""
        return [name for name, network in NETWORKS.items() if network.client(self.settings) is not None] + ["bluesky"]

    def label(self, name: str) -> str:
        return "Bluesky" if name == "bluesky" else NETWORKS[name].label

    def browser(self, name: str) -> bool:
        return name != "bluesky"

    def per_instance(self, name: str) -> bool:
        return name in NETWORKS and NETWORKS[name].per_instance

    async def authorize_url(
        self, name: str, redirect_uri: str, state: str, challenge: str, instance: str | None, apps: AppRegistry
    ) -> str:
        network, client = await self._client(name, redirect_uri, instance, apps)
        query = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "scope": network.scope,
            "state": state,
        }
        if network.pkce:
            query |= {"code_challenge": challenge, "code_challenge_method": "S256"}
        return f"{client.url(network.authorize)}?{urlencode(query)}"

    async def finish(
        self, name: str, redirect_uri: str, code: str, verifier: str, instance: str | None, apps: AppRegistry
    ) -> Grant:
        """Trade the code for tokens and learn who signed in."""
        network, client = await self._client(name, redirect_uri, instance, apps)
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if network.pkce:
            form["code_verifier"] = verifier
        tokens = await self._token(network, client, form)
        if network.lengthen is not None:
            tokens = await network.lengthen(self._http(), client, tokens)
        assert network.identify is not None
        remote_id, handle = await network.identify(self._http(), client, tokens)
        return _grant(tokens, remote_id, handle, instance, self.refreshable(name, tokens))

    async def refresh(
        self, name: str, redirect_uri: str, tokens: Mapping[str, Any], instance: str | None, apps: AppRegistry
    ) -> dict[str, Any]:
        """New tokens for old: raises SignInFailed when the network refuses (the person must connect again)."""
        network, client = await self._client(name, redirect_uri, instance, apps)
        if network.renew is not None:
            return await network.renew(self._http(), client, tokens)
        if not tokens.get("refresh_token"):
            raise SignInFailed(f"{network.label} gave no way to renew this sign-in")
        form = {"grant_type": "refresh_token", "refresh_token": str(tokens["refresh_token"])}
        return await self._token(network, client, form)

    def refreshable(self, name: str, tokens: Mapping[str, Any]) -> bool:
        network = NETWORKS.get(name)
        return network is not None and (network.renew is not None or bool(tokens.get("refresh_token")))

    async def revoke(
        self, name: str, redirect_uri: str, tokens: Mapping[str, Any], instance: str | None, apps: AppRegistry
    ) -> bool:
        """Ask the network to forget the token; False where it has no way (LinkedIn, Threads, Bluesky)."""
        network = NETWORKS.get(name)
        if network is None or network.revoke is None:
            return False
        _, client = await self._client(name, redirect_uri, instance, apps)
        form = {"token": str(tokens.get("access_token", "")), "token_type_hint": "access_token"}
        answer = await self._post(network, client, client.url(network.revoke), form)
        if not answer.ok:
            raise SignInFailed(f"{network.label} refused to revoke the token (HTTP {answer.status})")
        return True

    async def check_password(self, pds: str, identifier: str, password: str) -> Grant:
        """Bluesky: the handle and app password open a session, or are refused with the server's reason."""
        answer = await request(
            self._http(),
            "POST",
            f"{pds}/xrpc/com.atproto.server.createSession",
            json={"identifier": identifier, "password": password},
        )
        if not answer.ok:
            reason = answer.field("message") or f"HTTP {answer.status}"
            raise SignInFailed(f"Bluesky refused this handle and app password: {reason}")
        did, handle = answer.field("did"), answer.field("handle")
        tokens = {"identifier": handle, "app_password": password}
        return Grant(
            handle=f"@{handle}", remote_id=did, tokens=tokens, expires_at=None, refreshable=False, instance=pds
        )

    async def _client(
        self, name: str, redirect_uri: str, instance: str | None, apps: AppRegistry
    ) -> tuple[OAuthNetwork, Client]:
        network = NETWORKS[name]
        client = network.client(self.settings)
        if client is None:
            raise SignInFailed(f"{network.label} is not set up on this relay")
        if network.per_instance:
            assert instance is not None
            registered = await apps.app_for(instance, lambda: self._register(network, instance, redirect_uri))
            client = Client(registered["client_id"], registered["client_secret"], {"web": instance, "api": instance})
        return network, client

    async def _register(self, network: OAuthNetwork, instance: str, redirect_uri: str) -> dict[str, str]:
        """Mastodon's `POST /api/v1/apps` (docs.joinmastodon.org/methods/apps/#create): the relay's app on
        this server, made once and kept (relay.accounts caches it per server)."""
        answer = await request(
            self._http(),
            "POST",
            f"{instance}/api/v1/apps",
            data={"client_name": "Broadcast relay", "redirect_uris": redirect_uri, "scopes": network.scope},
        )
        if not answer.ok or not answer.field("client_id"):
            raise SignInFailed(f"{instance} did not register the relay's app (HTTP {answer.status})")
        return {"client_id": answer.field("client_id"), "client_secret": answer.field("client_secret")}

    async def _token(self, network: OAuthNetwork, client: Client, form: dict[str, str]) -> dict[str, Any]:
        answer = await self._post(network, client, client.url(network.token), form)
        if not answer.ok or not isinstance(answer.body, dict) or not answer.body.get("access_token"):
            reason = answer.field("error_description", "error", "message") or f"HTTP {answer.status}"
            raise SignInFailed(f"{network.label} refused the sign-in: {reason}")
        return dict(answer.body)

    async def _post(self, network: OAuthNetwork, client: Client, url: str, form: dict[str, str]) -> Answer:
        headers = {}
        if network.basic_auth:
            pair = f"{client.client_id}:{client.client_secret}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        else:
            form = {**form, "client_id": client.client_id, "client_secret": client.client_secret}
        try:
            return await request(self._http(), "POST", url, data=form, headers=headers)
        except (aiohttp.ClientError, TimeoutError):
            raise SignInFailed(f"{network.label} could not be reached; try again in a moment") from None


def _grant(tokens: Mapping[str, Any], remote_id: str, handle: str, instance: str | None, refreshable: bool) -> Grant:
    expires_in = tokens.get("expires_in")
    expires_at = time.time() + float(expires_in) if isinstance(expires_in, (int, float)) else None
    kept = {k: v for k, v in tokens.items() if k in ("access_token", "refresh_token", "token_type", "scope")}
    return Grant(
        handle=handle,
        remote_id=remote_id,
        tokens=kept,
        expires_at=expires_at,
        refreshable=refreshable,
        instance=instance,
    )


async def _get(session: aiohttp.ClientSession, url: str, token: str, label: str, **options: Any) -> Answer:
    try:
        answer = await request(session, "GET", url, headers={"Authorization": f"Bearer {token}"}, **options)
    except (aiohttp.ClientError, TimeoutError):
        raise SignInFailed(f"{label} could not be reached; try again in a moment") from None
    if not answer.ok or not isinstance(answer.body, dict):
        raise SignInFailed(f"{label} did not say who signed in (HTTP {answer.status})")
    return answer


async def _x_identity(session: aiohttp.ClientSession, client: Client, tokens: Mapping[str, Any]) -> tuple[str, str]:
    """`GET /2/users/me` (docs.x.com, "Users lookup"), with the new user token."""
    answer = await _get(session, f"{client.hosts['api']}/2/users/me", str(tokens["access_token"]), "X")
    data = answer.body.get("data") or {}
    return str(data["id"]), f"@{data['username']}"


async def _linkedin_identity(
    session: aiohttp.ClientSession, client: Client, tokens: Mapping[str, Any]
) -> tuple[str, str]:
    """OpenID Connect's userinfo (learn.microsoft.com/linkedin, "Sign In with LinkedIn using OpenID Connect"):
    `sub` is the member's id, and a post's author is `urn:li:person:{sub}` ("Share on LinkedIn")."""
    answer = await _get(session, f"{client.hosts['api']}/v2/userinfo", str(tokens["access_token"]), "LinkedIn")
    return f"urn:li:person:{answer.body['sub']}", str(answer.body.get("name") or answer.body["sub"])


async def _threads_identity(
    session: aiohttp.ClientSession, client: Client, tokens: Mapping[str, Any]
) -> tuple[str, str]:
    """`GET /v1.0/me?fields=id,username` (developers.facebook.com/docs/threads, "Threads Profiles"), on
    THREADS_API_URL, which holds the version."""
    url = f"{client.hosts['api']}/me"
    answer = await _get(session, url, str(tokens["access_token"]), "Threads", params={"fields": "id,username"})
    return str(answer.body["id"]), f"@{answer.body['username']}"


async def _mastodon_identity(
    session: aiohttp.ClientSession, client: Client, tokens: Mapping[str, Any]
) -> tuple[str, str]:
    """`GET /api/v1/accounts/verify_credentials` (docs.joinmastodon.org/methods/accounts)."""
    api = client.hosts["api"]
    answer = await _get(session, f"{api}/api/v1/accounts/verify_credentials", str(tokens["access_token"]), "Mastodon")
    return str(answer.body["id"]), f"@{answer.body['acct']}@{urlsplit(api).netloc}"


async def _threads_exchange(
    session: aiohttp.ClientSession, client: Client, tokens: dict[str, Any], grant: str = "th_exchange_token"
) -> dict[str, Any]:
    """The code gives a token of one hour; `th_exchange_token` trades it for one of 60 days, which
    `th_refresh_token` renews while still valid (developers.facebook.com/docs/threads, "Long-Lived Tokens")."""
    path, query = (
        ("/access_token", {"grant_type": grant, "client_secret": client.client_secret})
        if grant == "th_exchange_token"
        else ("/refresh_access_token", {"grant_type": grant})
    )
    query["access_token"] = str(tokens["access_token"])
    try:
        answer = await request(session, "GET", f"{client.hosts['origin']}{path}", params=query)
    except (aiohttp.ClientError, TimeoutError):
        raise SignInFailed("Threads could not be reached; try again in a moment") from None
    if not answer.ok or not answer.field("access_token"):
        reason = answer.body.get("error", {}).get("message") if isinstance(answer.body, dict) else None
        raise SignInFailed(f"Threads refused to renew the sign-in: {reason or f'HTTP {answer.status}'}")
    return dict(answer.body)


async def _threads_refresh(session: aiohttp.ClientSession, client: Client, tokens: Mapping[str, Any]) -> dict[str, Any]:
    return await _threads_exchange(session, client, dict(tokens), "th_refresh_token")


NETWORKS: Mapping[str, OAuthNetwork] = {
    # docs.x.com, "OAuth 2.0 Authorization Code Flow with PKCE": a confidential client authenticates with
    # Basic; `offline.access` brings a refresh token; access tokens last two hours; `POST /2/oauth2/revoke`.
    "x": OAuthNetwork(
        name="x",
        label="X",
        credentials=("X_CLIENT_ID", "X_CLIENT_SECRET"),
        hosts={"web": ("X_SIGN_IN_URL", "https://twitter.com"), "api": ("X_API_URL", "https://api.x.com")},
        authorize=("web", "/i/oauth2/authorize"),
        token=("api", "/2/oauth2/token"),
        scope="tweet.read tweet.write users.read offline.access",
        basic_auth=True,
        identify=_x_identity,
        revoke=("api", "/2/oauth2/revoke"),
    ),
    # learn.microsoft.com/linkedin, "Authorization Code Flow (3-legged OAuth)": tokens last 60 days; refresh
    # tokens only for some partner apps; PKCE is for native clients only; there is no revoke endpoint.
    "linkedin": OAuthNetwork(
        name="linkedin",
        label="LinkedIn",
        credentials=("LINKEDIN_CLIENT_ID", "LINKEDIN_CLIENT_SECRET"),
        hosts={
            "web": ("LINKEDIN_SIGN_IN_URL", "https://www.linkedin.com"),
            "api": ("LINKEDIN_API_URL", "https://api.linkedin.com"),
        },
        authorize=("web", "/oauth/v2/authorization"),
        token=("web", "/oauth/v2/accessToken"),
        scope="openid profile w_member_social",
        pkce=False,
        identify=_linkedin_identity,
    ),
    # developers.facebook.com/docs/threads/get-started/get-access-tokens-and-permissions: scopes separated by
    # commas, the app's id as client_id, no PKCE, no revoke endpoint.
    "threads": OAuthNetwork(
        name="threads",
        label="Threads",
        credentials=("THREADS_APP_ID", "THREADS_APP_SECRET"),
        hosts={
            "web": ("THREADS_SIGN_IN_URL", "https://threads.net"),
            "api": ("THREADS_API_URL", "https://graph.threads.net/v1.0"),  # as adapters/threads.py reads it
        },
        authorize=("web", "/oauth/authorize"),
        token=("origin", "/oauth/access_token"),  # the token endpoints are not versioned
        scope="threads_basic,threads_content_publish",
        pkce=False,
        identify=_threads_identity,
        lengthen=_threads_exchange,
        renew=_threads_refresh,
    ),
    # docs.joinmastodon.org/methods/oauth: PKCE S256 (Mastodon 4.3), `POST /oauth/revoke`; tokens do not expire.
    "mastodon": OAuthNetwork(
        name="mastodon",
        label="Mastodon",
        credentials=("", ""),
        hosts={"web": ("", ""), "api": ("", "")},  # the person's server (`Client` is made per server)
        authorize=("web", "/oauth/authorize"),
        token=("api", "/oauth/token"),
        scope="read:accounts write:statuses",
        identify=_mastodon_identity,
        revoke=("api", "/oauth/revoke"),
        per_instance=True,
    ),
}
