"""A leader's connected account as a destination: each network's adapter, given the stored credentials instead of
environment variables. Only how a destination is constructed differs; it posts as the company's does.

The adapters read credentials by variable name from `Settings`; here those names are sentences ("your X
sign-in …"), so that where an adapter's message names the variable to renew, the leader reads what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from adapters.bluesky import BlueskyAccount
from adapters.linkedin import LinkedInPage
from adapters.mastodon import MastodonAccount
from adapters.threads import DEFAULT_URL, ThreadsAccount
from adapters.x import XAccount
from relay.accounts import Account
from relay.config import DestinationConfig, Secret, Settings
from relay.destination import Destination
from relay.own import RECONNECT
from relay.store import Store


def _sign_in(label: str) -> str:
    return f"your {label} sign-in ({RECONNECT})"


def _with(settings: Settings, values: Mapping[str, str | None]) -> Settings:
    """`settings` with the account's own values under their names (an empty one is left unset)."""
    return replace(settings, secrets={**settings.secrets, **{k: Secret(v) for k, v in values.items() if v}})


def own_x(
    config: DestinationConfig, account: Account, tokens: Mapping[str, Any], settings: Settings, store: Store
) -> Destination:
    """An OAuth 2.0 user token, sent as a Bearer token (docs.x.com, "OAuth 2.0 Authorization Code Flow with
    PKCE": the token acts for the user who granted it)."""
    token = _sign_in("X")
    roles = ("api_key", "api_secret", "access_token", "access_token_secret", "user_token")
    env = {**{role: token for role in roles}, "url": "X_API_URL"}
    return XAccount(replace(config, env=env), _with(settings, {token: str(tokens["access_token"])}), store)


def own_linkedin(
    config: DestinationConfig, account: Account, tokens: Mapping[str, Any], settings: Settings, store: Store
) -> Destination:
    """The member as the post's author, `urn:li:person:{sub}`, with `w_member_social` (learn.microsoft.com/
    linkedin, "Share on LinkedIn")."""
    token = _sign_in("LinkedIn")
    own = replace(config, options={"organization": account.remote_id}, env={"token": token, "url": "LINKEDIN_API_URL"})
    return LinkedInPage(own, _with(settings, {token: str(tokens["access_token"])}), store)


def own_mastodon(
    config: DestinationConfig, account: Account, tokens: Mapping[str, Any], settings: Settings, store: Store
) -> Destination:
    token, server = _sign_in("Mastodon"), "your Mastodon server"
    own = replace(config, env={"token": token, "url": server})
    return MastodonAccount(own, _with(settings, {token: str(tokens["access_token"]), server: account.instance}), store)


def own_bluesky(
    config: DestinationConfig, account: Account, tokens: Mapping[str, Any], settings: Settings, store: Store
) -> Destination:
    password, server = f"your Bluesky app password ({RECONNECT})", "your Bluesky server"
    own = replace(config, options={"handle": str(tokens["identifier"])}, env={"app_password": password, "pds": server})
    values = {password: str(tokens["app_password"]), server: account.instance}
    return BlueskyAccount(own, _with(settings, values), store)


def own_threads(
    config: DestinationConfig, account: Account, tokens: Mapping[str, Any], settings: Settings, store: Store
) -> Destination:
    """The leader's long-lived token, and their Threads user id in the paths (developers.facebook.com/docs/threads,
    "Publishing": `/{threads-user-id}/threads`)."""
    return ThreadsAccount(
        config.name,
        str(tokens["access_token"]),
        settings.reveal("THREADS_API_URL") or DEFAULT_URL,
        user_id=account.remote_id,
        replies=config.replies,
        http_timeout=settings.http_timeout,
        renew=f"your Threads sign-in was refused ({RECONNECT})",
    )
