"""The status page: a read-only view of recent broadcasts and their deliveries, live, for comms staff.

Served by the bot's own aiohttp server at /status, behind one configured secret (RELAY_STATUS_SECRET):
without it the page is off, and without the secret nobody gets past the login. The session is a signed
cookie, so nothing about it is stored. The page is rendered on the server; a few lines of JavaScript
fetch the same list again every two seconds, so there is one renderer and no build step.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from aiohttp import web

from relay.broadcasts import Broadcasts
from relay.config import Secret
from relay.model import Broadcast, Delivery
from relay.reports import MARKS, excerpt, line, progress

COOKIE = "relay_status"
SESSION_SECONDS = 12 * 3600
REFRESH_MS = 2000
MIN_SECRET = 16  # shorter secrets are guessable; start-up refuses them


_STYLE = """
:root { color-scheme: light dark; --muted: #6b7280; --ok: #15803d; --bad: #b91c1c; --line: #e5e7eb; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; padding: 1rem; max-width: 56rem;
       margin-inline: auto; }
h1 { font-size: 1.25rem; margin: 0 0 1rem; display: flex; justify-content: space-between; align-items: baseline; }
h1 small { font-size: .8rem; color: var(--muted); font-weight: normal; }
article { border: 1px solid var(--line); border-radius: .5rem; padding: .75rem 1rem; margin-bottom: .75rem; }
article header { display: flex; flex-wrap: wrap; gap: .25rem .75rem; align-items: baseline; }
article header code { font-weight: 600; }
.meta, .text { color: var(--muted); font-size: .85rem; }
.text { margin: .35rem 0; overflow-wrap: anywhere; }
ul { list-style: none; margin: .25rem 0 0; padding: 0; }
li { padding: .2rem 0; overflow-wrap: anywhere; }
.posted, .deleted, .dry-run { color: var(--ok); } .failed, .unknown { color: var(--bad); }
form.login { display: grid; gap: .75rem; max-width: 22rem; margin: 20vh auto 0; }
input, button { font: inherit; padding: .6rem .75rem; border-radius: .4rem; border: 1px solid var(--line); }
button { cursor: pointer; }
.error { color: var(--bad); }
"""

_SCRIPT = f"""
setInterval(async () => {{
  const answer = await fetch("/status/list", {{credentials: "same-origin"}});
  if (answer.status === 401) {{ location.href = "/status/login"; return; }}
  if (answer.ok) document.getElementById("list").innerHTML = await answer.text();
}}, {REFRESH_MS});
"""


class StatusPage:
    def __init__(self, secret: Secret | None, broadcasts: Broadcasts, clock: Callable[[], float] = time.time) -> None:
        self.secret = secret
        self.broadcasts = broadcasts
        self.clock = clock

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/status", self.page)
        app.router.add_get("/status/list", self.listing)
        app.router.add_get("/status/login", self.login_form)
        app.router.add_post("/status/login", self.login)
        app.router.add_post("/status/logout", self.logout)

    # ---- access -------------------------------------------------------------------------------------

    def _sign(self, expires: int) -> str:
        assert self.secret is not None
        mac = hmac.new(self.secret.value.encode(), f"status:{expires}".encode(), hashlib.sha256).hexdigest()
        return f"{expires}.{mac}"

    def _signed_in(self, request: web.Request) -> bool:
        if self.secret is None:
            return False
        expires, _, _ = request.cookies.get(COOKIE, "").partition(".")
        if not expires.isdigit() or int(expires) < self.clock():
            return False
        return hmac.compare_digest(request.cookies.get(COOKIE, ""), self._sign(int(expires)))

    def _off(self) -> web.Response:
        return _html("The status page is off: set RELAY_STATUS_SECRET to turn it on.", status=404)

    async def login_form(self, request: web.Request) -> web.Response:
        if self.secret is None:
            return self._off()
        return _html(_login(""))

    async def login(self, request: web.Request) -> web.Response:
        if self.secret is None:
            return self._off()
        form = await request.post()
        given = str(form.get("secret", ""))
        if not hmac.compare_digest(given.encode(), self.secret.value.encode()):
            return _html(_login("That is not the secret."), status=401)
        response = web.HTTPSeeOther("/status")
        response.set_cookie(
            COOKIE,
            self._sign(int(self.clock()) + SESSION_SECONDS),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="Strict",
            secure=request.secure or request.headers.get("X-Forwarded-Proto") == "https",
            path="/status",
        )
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        response = web.HTTPSeeOther("/status/login")
        response.del_cookie(COOKIE, path="/status")
        raise response

    # ---- pages --------------------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        if self.secret is None:
            return self._off()
        if not self._signed_in(request):
            raise web.HTTPSeeOther("/status/login")
        body = (
            f"<h1>Broadcasts <small>updated live</small></h1><div id=list>{await self._list()}</div>"
            f'<form method=post action="/status/logout"><button>Sign out</button></form><script>{_SCRIPT}</script>'
        )
        return _html(body)

    async def listing(self, request: web.Request) -> web.Response:
        if not self._signed_in(request):
            return web.Response(status=401, text="sign in again")
        return web.Response(text=await self._list(), content_type="text/html")

    async def _list(self) -> str:
        recent = await self.broadcasts.recent(30)
        if not recent:
            return "<p class=meta>No broadcasts yet.</p>"
        return "".join([_article(b, await self.broadcasts.deliveries(b.id)) for b in recent])


def _article(broadcast: Broadcast, deliveries: Sequence[Delivery]) -> str:
    when = datetime.fromtimestamp(broadcast.created_at, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    state = progress(deliveries) if deliveries else broadcast.state.value
    items = []
    for delivery in deliveries:
        shown = line(delivery)
        link = f' · <a href="{html.escape(shown.link)}" rel="noopener">view</a>' if shown.link else ""
        items.append(
            f'<li class="{shown.status.value.replace(" ", "-")}">{MARKS[shown.status]} '
            f"<b>{html.escape(shown.destination)}</b>: {html.escape(shown.words)}{link}</li>"
        )
    return (
        f'<article id="{broadcast.id}"><header><code>{broadcast.id}</code><span>{html.escape(state)}</span></header>'
        f"<div class=meta>{when} · to {html.escape(broadcast.audience)} · by {html.escape(broadcast.author)}</div>"
        f"<div class=text>{html.escape(excerpt(broadcast.text, 280))}</div><ul>{''.join(items)}</ul></article>"
    )


def _login(error: str) -> str:
    message = f"<p class=error>{html.escape(error)}</p>" if error else ""
    return (
        '<form class=login method=post action="/status/login"><h1>Broadcast relay status</h1>'
        f"{message}<label>Secret <input type=password name=secret autocomplete=current-password required "
        "autofocus></label><button>Sign in</button></form>"
    )


def _html(body: str, status: int = 200) -> web.Response:
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>Broadcast relay</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    return web.Response(
        text=page,
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline';"
            " connect-src 'self'; form-action 'self'; frame-ancestors 'none'",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )
