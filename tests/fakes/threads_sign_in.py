"""Threads' sign-in on loopback: Meta's authorization code flow, then its own token exchanges.

developers.facebook.com/docs/threads/get-started/get-access-tokens-and-permissions and "Long-Lived Tokens": the
code gives a token of one hour (`POST /oauth/access_token`, answering `access_token` and `user_id`);
`GET /access_token?grant_type=th_exchange_token&client_secret=…&access_token=…` trades it for one of 60 days;
`GET /refresh_access_token?grant_type=th_refresh_token&access_token=…` renews a long-lived token that is at
least 24 hours old and not expired. There is no revoke endpoint. `GET /v1.0/me?fields=id,username` says who.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from .oauth2 import AuthorizationServer, Dialect, Issued
from .server import LoopbackServer

SHORT = 3600.0
LONG = 60 * 24 * 3600.0
REFRESHABLE_AFTER = 24 * 3600.0

SIGN_IN = Dialect(authorize="/oauth/authorize", token="/oauth/access_token", lifetime=SHORT)


def _graph_error(message: str, code: int = 190, status: int = 400) -> web.Response:
    """The Graph API's error shape (code 190: an invalid or expired access token)."""
    return web.json_response({"error": {"message": message, "type": "OAuthException", "code": code}}, status=status)


class FakeThreadsSignIn(LoopbackServer[str]):
    """threads.net's sign-in page and graph.threads.net's token endpoints, on one loopback server."""

    def __init__(self) -> None:
        super().__init__()
        self.sign_in = AuthorizationServer(self.app, SIGN_IN)
        self.long_lived: dict[str, float] = {}  # long-lived token → when it was issued
        self.app.router.add_get("/access_token", self._exchange)
        self.app.router.add_get("/refresh_access_token", self._refresh)
        self.app.router.add_get("/v1.0/me", self._me)

    def _long(self, issued: Issued) -> dict[str, Any]:
        token = secrets.token_urlsafe(24)
        now = self.sign_in.now()
        self.sign_in.tokens[token] = Issued(issued.client_id, issued.scopes, now + LONG, issued.user)
        self.long_lived[token] = now
        return {"access_token": token, "token_type": "bearer", "expires_in": int(LONG)}

    async def _exchange(self, request: web.Request) -> web.Response:
        query = request.query
        self.calls.append(f"exchange {query.get('grant_type')}")
        if query.get("grant_type") != "th_exchange_token":
            return _graph_error("grant_type must be th_exchange_token", 100)
        issued = self.sign_in.bearer(f"Bearer {query.get('access_token', '')}")
        client = self.sign_in.clients.get(issued.client_id) if issued is not None else None
        if issued is None or client is None or client[0] != query.get("client_secret"):
            return _graph_error("Error validating access token")
        if query.get("access_token") in self.long_lived:
            return _graph_error("The access token is already long-lived", 100)
        return web.json_response(self._long(issued))

    async def _refresh(self, request: web.Request) -> web.Response:
        query = request.query
        self.calls.append(f"refresh {query.get('grant_type')}")
        token = query.get("access_token", "")
        issued = self.sign_in.bearer(f"Bearer {token}")
        if query.get("grant_type") != "th_refresh_token":
            return _graph_error("grant_type must be th_refresh_token", 100)
        if issued is None or token not in self.long_lived:
            return _graph_error("Error validating access token: the session has expired or is not long-lived")
        if self.sign_in.now() - self.long_lived[token] < REFRESHABLE_AFTER:
            return _graph_error("The access token must be at least 24 hours old to be refreshed", 100)
        return web.json_response(self._long(issued))

    async def _me(self, request: web.Request) -> web.Response:
        issued = self.sign_in.bearer(request.headers.get("Authorization"))
        if issued is None or "threads_basic" not in issued.scopes:
            return _graph_error("Error validating access token")
        fields = request.query.get("fields", "id").split(",")
        return web.json_response({k: v for k, v in issued.user.items() if k in fields})
