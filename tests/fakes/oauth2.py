"""An OAuth 2.0 authorization server (RFC 6749, with PKCE: RFC 7636) that a fake network mounts on its own app.

It refuses what the networks refuse: an unknown client or a redirect URI not registered exactly; a code used
twice, expired, or for another redirect URI; a PKCE verifier that does not hash to the challenge (S256); a
refresh token used twice where the network rotates them (X); a token past its lifetime or revoked. Its sign-in
page is a real HTML form, pressed by a real browser in the tests.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web

CODE_LIFETIME = 30.0  # X: "the authorization code … valid for 30 seconds" (docs.x.com, OAuth 2.0 PKCE)


@dataclass(frozen=True)
class Dialect:
    """What one network's authorization server does."""

    authorize: str  # path of the sign-in page
    token: str  # path of the token endpoint
    revoke: str | None = None
    basic_auth: bool = False  # clients authenticate with HTTP Basic (X); else client_id/secret in the form
    pkce: bool = False  # a challenge is required (X); else one given is still checked (Mastodon)
    refresh_scope: str | None = None  # the scope that brings a refresh token (X: offline.access); None: never
    lifetime: float | None = 7200.0  # seconds an access token lasts; None: forever (Mastodon)
    extra: Mapping[str, str] = field(default_factory=dict)  # added to every token answer


@dataclass
class Issued:
    """An access token the server gave."""

    client_id: str
    scopes: frozenset[str]
    expires_at: float | None
    user: Mapping[str, str]  # who signed in: the network's fields for them (id, username…)
    revoked: bool = False


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scopes: frozenset[str]
    challenge: str | None
    expires_at: float
    user: Mapping[str, str]


def _error(error: str, description: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


class AuthorizationServer:
    """Sign-in page, token and revoke endpoints on `app`; `bearer` tells whether a token is good."""

    def __init__(self, app: web.Application, dialect: Dialect) -> None:
        self.dialect = dialect
        self.clients: dict[str, tuple[str, set[str]]] = {}  # client_id → secret, registered redirect URIs
        self.skew = 0.0  # seconds added to the clock: a test ages every token at once
        self.user: Mapping[str, str] = {}  # who is signed in to the network in the browser that authorizes
        self.codes: dict[str, _Code] = {}
        self.tokens: dict[str, Issued] = {}
        self.refresh_tokens: dict[str, tuple[str, frozenset[str], Mapping[str, str]]] = {}
        self.grants: list[str] = []  # grant_type of every token request that succeeded, in order
        self.revoked: list[str] = []
        self.refused: list[str] = []  # why each refused token request was refused
        app.router.add_get(dialect.authorize, self._page)
        app.router.add_post(dialect.authorize, self._decide)
        app.router.add_post(dialect.token, self._token)
        if dialect.revoke:
            app.router.add_post(dialect.revoke, self._revoke)

    def now(self) -> float:
        return time.time() + self.skew

    def register(self, redirect_uri: str, client_id: str | None = None, secret: str | None = None) -> tuple[str, str]:
        """An app, as its developer registers it (or Mastodon's POST /api/v1/apps does)."""
        client_id = client_id or secrets.token_urlsafe(16)
        secret = secret or secrets.token_urlsafe(24)
        self.clients.setdefault(client_id, (secret, set()))[1].add(redirect_uri)
        return client_id, secret

    def bearer(self, authorization: str | None) -> Issued | None:
        """The issued token an `Authorization: Bearer …` header carries, if it is still good."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        issued = self.tokens.get(authorization.removeprefix("Bearer "))
        if issued is None or issued.revoked or (issued.expires_at is not None and issued.expires_at <= self.now()):
            return None
        return issued

    def issue(self, client_id: str, scopes: frozenset[str], user: Mapping[str, str]) -> dict[str, object]:
        access = secrets.token_urlsafe(24)
        lifetime = self.dialect.lifetime
        self.tokens[access] = Issued(client_id, scopes, self.now() + lifetime if lifetime else None, user)
        answer: dict[str, object] = {"access_token": access, "token_type": "bearer", **self.dialect.extra}
        answer["scope"] = " ".join(sorted(scopes))
        if lifetime:
            answer["expires_in"] = int(lifetime)
        if self.dialect.refresh_scope and self.dialect.refresh_scope in scopes:
            refresh = secrets.token_urlsafe(24)
            self.refresh_tokens[refresh] = (client_id, scopes, user)
            answer["refresh_token"] = refresh
        return answer

    async def _page(self, request: web.Request) -> web.Response:
        query = request.query
        problem = self._check_request(query)
        if problem:
            return web.Response(text=f"<p id=problem>{html.escape(problem)}</p>", status=400, content_type="text/html")
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in query.items()
        )
        return web.Response(
            content_type="text/html",
            text=(
                "<!doctype html><title>Authorize app</title><h1>Authorize the Broadcast relay?</h1>"
                f'<form method="post">{hidden}<button id="allow" name="decision" value="allow">Authorize app</button>'
                '<button id="deny" name="decision" value="deny">Cancel</button></form>'
            ),
        )

    def _check_request(self, query: Mapping[str, str]) -> str | None:
        client = self.clients.get(query.get("client_id", ""))
        if client is None:
            return "unknown client_id"
        if query.get("redirect_uri") not in client[1]:
            return "redirect_uri is not one the app registered"
        if query.get("response_type") != "code":
            return "response_type must be code"
        if not query.get("state"):
            return "state is required"
        if self.dialect.pkce and (not query.get("code_challenge") or query.get("code_challenge_method") != "S256"):
            return "code_challenge with code_challenge_method=S256 is required"
        return None

    async def _decide(self, request: web.Request) -> web.Response:
        form = await request.post()
        query = {k: str(v) for k, v in form.items()}
        if problem := self._check_request(query):
            return web.Response(text=problem, status=400)
        target = query["redirect_uri"]
        if query.get("decision") != "allow":
            reply = {"error": "access_denied", "error_description": "The user denied it", "state": query["state"]}
            raise web.HTTPFound(f"{target}?{urlencode(reply)}")
        code = secrets.token_urlsafe(24)
        scopes = frozenset(filter(None, query.get("scope", "").replace(",", " ").split(" ")))
        self.codes[code] = _Code(
            query["client_id"], target, scopes, query.get("code_challenge"), self.now() + CODE_LIFETIME, self.user
        )
        raise web.HTTPFound(f"{target}?{urlencode({'code': code, 'state': query['state']})}")

    def _client(self, request: web.Request, form: Mapping[str, str]) -> str | None:
        """The authenticated client's id, or None."""
        if self.dialect.basic_auth:
            header = request.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return None
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        known = self.clients.get(client_id)
        return client_id if known is not None and secrets.compare_digest(known[0], secret) else None

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        client_id = self._client(request, form)
        if client_id is None:
            return self._refuse("invalid_client", "Client authentication failed", 401)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            code = self.codes.pop(form.get("code", ""), None)  # single use, whatever happens next
            if code is None or code.client_id != client_id or code.expires_at <= self.now():
                return self._refuse("invalid_grant", "Value passed for the authorization code was invalid.")
            if form.get("redirect_uri") != code.redirect_uri:
                return self._refuse("invalid_grant", "redirect_uri does not match the authorization request")
            if code.challenge is not None and _s256(form.get("code_verifier", "")) != code.challenge:
                return self._refuse("invalid_grant", "code_verifier does not match the code_challenge")
            self.grants.append(grant)
            return web.json_response(self.issue(client_id, code.scopes, code.user))
        if grant == "refresh_token":
            kept = self.refresh_tokens.pop(form.get("refresh_token", ""), None)  # rotated: single use
            if kept is None or kept[0] != client_id:
                return self._refuse("invalid_request", "Value passed for the token was invalid.")
            self.grants.append(grant)
            return web.json_response(self.issue(client_id, kept[1], kept[2]))
        return self._refuse("unsupported_grant_type", f"grant_type {grant!r} is not supported")

    def _refuse(self, error: str, description: str, status: int = 400) -> web.Response:
        self.refused.append(description)
        return _error(error, description, status)

    async def _revoke(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        if self._client(request, form) is None:
            return _error("invalid_client", "Client authentication failed", 401)
        token = form.get("token", "")
        if token in self.tokens:
            self.tokens[token].revoked = True
            self.revoked.append(token)
        return web.json_response({"revoked": True})


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
