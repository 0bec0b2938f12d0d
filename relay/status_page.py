"""The status page: every recent broadcast and each destination's delivery state, live, for comms staff.

Served by the bot's own aiohttp server at /status, behind one configured secret (RELAY_STATUS_SECRET):
without it the page is off, and without the secret nobody gets past the login (see `status_access` for the
sessions and the throttle on guessing). The page is rendered on the server; a few lines of JavaScript fetch
the same list again every two seconds, so there is one renderer and no build step.

What a network returned is shown, never run: links are rendered only when they are http(s), and the
Content-Security-Policy lets only the page's own script and style (by a nonce drawn for each answer) run.
"""

from __future__ import annotations

import hmac
import html
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

from aiohttp import web

from relay import audit
from relay.broadcasts import Broadcasts
from relay.config import Secret
from relay.model import Broadcast, Delivery
from relay.reports import MARKS, excerpt, line, progress
from relay.status_access import SESSION_SECONDS, Sessions, Throttle

log = logging.getLogger(__name__)

COOKIE = "relay_status"
REFRESH_MS = 2000
WHERE = "status-page"


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
        self.sessions = Sessions(broadcasts.store)
        self.throttle = Throttle()

    # ---- access -------------------------------------------------------------------------------------

    async def _signed_in(self, request: web.Request) -> bool:
        return self.secret is not None and await self.sessions.valid(request.cookies.get(COOKIE, ""), self.clock())

    def _off(self) -> web.Response:
        return _html("The status page is off: set RELAY_STATUS_SECRET to turn it on.", status=404)

    async def login_form(self, request: web.Request) -> web.Response:
        if self.secret is None:
            return self._off()
        return _html(_login(""))

    async def login(self, request: web.Request) -> web.Response:
        if self.secret is None:
            return self._off()
        _same_origin_only(request)
        client, now = request.remote or "unknown", time.monotonic()
        wait = self.throttle.wait(client, now)
        if wait > 0:
            return _html(
                _login(f"Too many wrong secrets: try again in {int(wait) + 1} seconds."),
                status=429,
                headers={"Retry-After": str(int(wait) + 1)},
            )
        try:
            form = await request.post()
        except (UnicodeDecodeError, ValueError):
            return _html(_login("That form could not be read: send it as UTF-8."), status=400)
        given = form.get("secret", "")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self.secret.value.encode()):
            failures = self.throttle.failed(client, now)
            log.warning("status page: a wrong secret from %s (%d in the last minute)", client, failures)
            await audit.note(self.broadcasts.store, self.clock(), "status-page", "sign-in-refused", _where(client), "")
            return _html(_login("That is not the secret."), status=401)
        token = await self.sessions.start(self.clock())
        await audit.note(self.broadcasts.store, self.clock(), "status-page", "signed-in", _where(client), "")
        response = web.HTTPSeeOther("/status")
        response.set_cookie(
            COOKIE,
            token,
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="Strict",
            secure=_over_https(request),
            path="/status",
        )
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        _same_origin_only(request)
        await self.sessions.end(request.cookies.get(COOKIE, ""))
        response = web.HTTPSeeOther("/status/login")
        response.del_cookie(COOKIE, path="/status")
        raise response

    # ---- pages --------------------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        if self.secret is None:
            return self._off()
        if not await self._signed_in(request):
            raise web.HTTPSeeOther("/status/login")
        body = (
            f"<h1>Broadcasts <small>updated live</small></h1><div id=list>{await self._list()}</div>"
            '<form method=post action="/status/logout"><button>Sign out</button></form>'
        )
        return _html(body, script=_SCRIPT)

    async def listing(self, request: web.Request) -> web.Response:
        if not await self._signed_in(request):
            return web.Response(status=401, text="sign in again")
        return web.Response(text=await self._list(), content_type="text/html")

    async def _list(self) -> str:
        recent = await self.broadcasts.recent(30)
        if not recent:
            return "<p class=meta>No broadcasts yet.</p>"
        return "".join([_article(b, await self.broadcasts.deliveries(b.id)) for b in recent])


def _where(client: str) -> audit.Where:
    return audit.Where(WHERE, client)


def _same_origin_only(request: web.Request) -> None:
    """A POST from another site (a form on a page elsewhere) is refused: browsers say where a POST comes
    from in `Origin`, and the page's own forms come from the host the browser asked for."""
    origin = request.headers.get("Origin", "")
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or parts.netloc.lower() != request.host.lower():
        log.warning("status page: refused a POST from another origin (%s)", origin[:100] or "none given")
        raise web.HTTPForbidden(text="This form must be sent from the status page itself.")


def _over_https(request: web.Request) -> bool:
    """Whether the browser reached us over HTTPS: directly, or through a proxy that says so
    (`X-Forwarded-Proto`, or RFC 7239's `Forwarded: proto=https`)."""
    if request.secure or request.headers.get("X-Forwarded-Proto", "").strip().lower() == "https":
        return True
    return any(str(hop.get("proto", "")).lower() == "https" for hop in request.forwarded)


def _link(url: str | None) -> str | None:
    """`url` if a browser may follow it: http(s) with a host. A network's answer could carry any scheme,
    and a `javascript:` link would run in the signed-in page."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def _article(broadcast: Broadcast, deliveries: Sequence[Delivery]) -> str:
    when = datetime.fromtimestamp(broadcast.created_at, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    state = progress(deliveries) if deliveries else broadcast.state.value
    items = []
    for delivery in deliveries:
        shown = line(delivery)
        href = _link(shown.link)
        link = f' · <a href="{html.escape(href)}" rel="noopener noreferrer">view</a>' if href else ""
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


def _html(body: str, status: int = 200, script: str = "", headers: dict[str, str] | None = None) -> web.Response:
    """A page whose style and script run by a nonce drawn for this answer alone: nothing else on the page
    (a link or a text a network returned) can run."""
    nonce = secrets.token_urlsafe(16)
    code = f"<script nonce={nonce}>{script}</script>" if script else ""
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>Broadcast relay</title><style nonce={nonce}>{_STYLE}</style></head><body>{body}{code}</body></html>"
    )
    return web.Response(
        text=page,
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}';"
            " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            **(headers or {}),
        },
    )
