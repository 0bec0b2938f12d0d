"""The browser's side of connecting an account: `GET /oauth/<network>/start` and `GET /oauth/<network>/callback`.

`start` binds the sign-in to the browser that opened the link (a cookie, kept only as a hash with the state) and
sends it to the network; `callback` is where the network sends it back, and shows a small page saying whether the
account is connected and why not. The person also gets the answer in chat (relay.accounts). The cookie is
`SameSite=Lax`: sent on the network's top-level redirect back, never on a request another site makes in the
background. Nothing secret is shown or logged: not the code, not the state, not a token.
"""

from __future__ import annotations

import html
import logging
import secrets

from aiohttp import web

from relay.accounts import Accounts, SignInFailed
from relay.config import Settings

log = logging.getLogger(__name__)

COOKIE = "relay_sign_in"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 32rem; margin: 4rem auto; padding: 0 1rem; }}</style>
</head><body><h1>{title}</h1><p id="message">{message}</p>
<p>You can close this tab and go back to chat.</p></body></html>
"""


def public_url(settings: Settings) -> str | None:
    """`RELAY_PUBLIC_URL`: where networks send a browser back after a sign-in (None: browser sign-ins are off)."""
    return settings.public_url


def page(title: str, message: str, status: int = 200) -> web.Response:
    response = web.Response(
        text=_PAGE.format(title=html.escape(title), message=html.escape(message)),
        status=status,
        content_type="text/html",
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the state must not travel on to another site
    return response


async def start(accounts: Accounts, request: web.Request) -> web.StreamResponse:
    network = request.match_info["network"]
    browser = secrets.token_urlsafe(32)
    try:
        target = await accounts.start(network, request.query.get("state", ""), browser)
    except SignInFailed as error:
        return page("Not connected", str(error), status=400)
    response = web.Response(
        status=302, headers={"Location": target, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )
    response.set_cookie(
        COOKIE,
        browser,
        max_age=600,
        path=f"/oauth/{network}/",
        httponly=True,
        samesite="Lax",
        secure=request.secure or (accounts.public_url or "").startswith("https://"),
    )
    return response


async def callback(accounts: Accounts, request: web.Request) -> web.StreamResponse:
    network = request.match_info["network"]
    try:
        finished = await accounts.finish(network, dict(request.query), request.cookies.get(COOKIE))
    except SignInFailed as error:
        return page("Not connected", str(error), status=400)
    response = page(
        "Connected" if finished.connected else "Not connected",
        finished.message,
        status=200 if finished.connected else 400,
    )
    response.del_cookie(COOKIE, path=f"/oauth/{network}/")
    return response
