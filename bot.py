"""The broadcast relay's server: one aiohttp app serving Slack (`POST /slack/events`) and `GET /healthz`.

This file only wires: configuration in, the start-up checks (`relay.startup`, shared with `relay check`), the
port bound before anything starts, the database opened, adapters built, the dispatcher started and stopped
with the app (aiohttp's `cleanup_ctx`), Slack's requests handed to the Slack surface, and the whole served
within the limits of `relay.server`.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from adapters import SPECS, build_destinations, own_builders
from adapters.sign_in import SignIns
from adapters.slack_chat import SlackSurface
from adapters.teams import unreachable_channels
from adapters.teams_chat import TeamsSurface
from relay import audit, image_urls, sign_in_pages
from relay.accounts import Accounts
from relay.broadcasts import Broadcasts
from relay.config import Config, ConfigError, Settings, load_config, settings_from_env
from relay.destination import Destination
from relay.dispatcher import Dispatcher
from relay.model import Delivery
from relay.own import OwnDestinations
from relay.renewal import Renewals
from relay.server import bounded_body, listening_socket, security_headers, serve
from relay.startup import startup_warnings
from relay.status_page import StatusPage
from relay.store import Store, StoreError, store_for
from relay.vault import vault_from

log = logging.getLogger("relay")

SETTINGS = web.AppKey("settings", Settings)
CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", Store)
SURFACE = web.AppKey("slack", SlackSurface)
TEAMS = web.AppKey("teams", TeamsSurface)
CLOCK = web.AppKey("clock", Callable[[], float])
STATUS = web.AppKey("status", StatusPage)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
ACCOUNTS = web.AppKey("accounts", Accounts)
RENEWALS = web.AppKey("renewals", Renewals)
IMAGES = web.AppKey("images", image_urls.Served)


def build_app(settings: Settings, config: Config, clock: Callable[[], float] = time.time) -> web.Application:
    """The server; `clock` is the time the relay lives by (tests move it to cross a scheduled time)."""
    app = web.Application(client_max_size=1024 * 1024, middlewares=[bounded_body])
    app.on_response_prepare.append(security_headers)
    app[SETTINGS] = settings
    app[CONFIG] = config
    app[CLOCK] = clock
    app.cleanup_ctx.append(_relay)
    app.router.add_get("/healthz", _healthz)
    app.router.add_post("/slack/events", _slack_events)
    app.router.add_post("/api/messages", _teams_messages)
    app.router.add_get("/images/{token}", _image)
    for method, path, handler in (
        ("GET", "/status", StatusPage.page),
        ("GET", "/status/list", StatusPage.listing),
        ("GET", "/status/login", StatusPage.login_form),
        ("POST", "/status/login", StatusPage.login),
        ("POST", "/status/logout", StatusPage.logout),
    ):
        app.router.add_route(method, path, _on_status_page(handler))
    app.router.add_get("/oauth/{network}/start", _on_accounts(sign_in_pages.start))
    app.router.add_get("/oauth/{network}/callback", _on_accounts(sign_in_pages.callback))
    return app


async def _relay(app: web.Application) -> AsyncIterator[None]:
    """Open everything the server needs, run the dispatcher while it serves, and close it all after."""
    settings, config = app[SETTINGS], app[CONFIG]
    store = store_for(settings)
    await store.open()
    app[STORE] = store
    digest = hashlib.sha256(settings.config_path.read_bytes()).hexdigest()[:16]
    await audit.note(
        store, time.time(), "relay", "config-loaded", audit.RELAY, f"{settings.config_path} sha256:{digest}"
    )
    destinations = build_destinations(config, settings, store)
    await asyncio.gather(*(destination.prepare() for destination in destinations.values()))
    kinds = {name: destination.kind for name, destination in config.destinations.items()}
    accounts = Accounts(
        store, vault_from(settings), SignIns(settings), sign_in_pages.public_url(settings), clock=app[CLOCK]
    )
    app[ACCOUNTS] = accounts
    renewals = Renewals(accounts)
    app[RENEWALS] = renewals
    own = OwnDestinations(accounts, renewals, own_builders(settings, store), config, config.policy.ids)

    async def find(delivery: Delivery) -> Destination | None:
        return await own.for_delivery(store, delivery.broadcast_id, delivery.destination)

    dispatcher = Dispatcher(
        store, destinations, clock=app[CLOCK], kinds=kinds, find=find, public_url=settings.public_url
    )
    app[IMAGES] = image_urls.Served(store, lambda name: d.limits.images if (d := destinations.get(name)) else None)
    app[DISPATCHER] = dispatcher
    broadcasts = Broadcasts(store, config, destinations, on_approved=dispatcher.new_work, clock=app[CLOCK], own=own)
    socket_mode = None
    if settings.slack_ready:
        surface = SlackSurface(settings, broadcasts, accounts)
        app[SURFACE] = surface
        broadcasts.listeners.append(surface)
        accounts.listeners.append(surface)
        app_token = settings.secret("SLACK_APP_TOKEN")
        if app_token:
            from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

            socket_mode = AsyncSocketModeHandler(surface.app, app_token.value)
            await socket_mode.connect_async()
            log.info("Slack Socket Mode connected: no public URL needed")
    if settings.teams_mode is not None:
        teams = TeamsSurface(settings, broadcasts, store, accounts)
        app[TEAMS] = teams
        broadcasts.listeners.append(teams)
        accounts.listeners.append(teams)
    for line in await unreachable_channels(config, store):
        log.warning("*** %s", line)
    app[STATUS] = StatusPage(settings.secret("RELAY_STATUS_SECRET"), broadcasts, app[CLOCK])
    dispatcher.on_change = _report_to(app)
    worker = asyncio.create_task(dispatcher.run(), name="dispatcher")
    expiry = asyncio.create_task(renewals.watch(), name="expiring sign-ins")
    log.info(
        "relay ready: %d destinations (%s)", len(destinations), ", ".join(d.describe() for d in destinations.values())
    )
    try:
        yield
    finally:
        await dispatcher.drain()
        worker.cancel()
        expiry.cancel()
        await asyncio.gather(worker, expiry, return_exceptions=True)
        if socket_mode is not None:
            await socket_mode.close_async()
        if SURFACE in app:
            await app[SURFACE].close()
        if TEAMS in app:
            await app[TEAMS].close()
        for destination in destinations.values():
            await destination.close()
        await own.close()
        await accounts.sign_ins.close()
        await store.close()


def _report_to(app: web.Application) -> Callable[[str], None]:
    """Deliveries changed: each surface redraws the reports of the broadcasts it started."""

    def changed(broadcast_id: str) -> None:
        for key in (SURFACE, TEAMS):
            if key in app:
                app[key].refresh(broadcast_id)

    return changed


def _on_status_page(
    handler: Callable[[StatusPage, web.Request], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def serve(request: web.Request) -> web.Response:
        return await handler(request.app[STATUS], request)

    return serve


def _on_accounts(
    handler: Callable[[Accounts, web.Request], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def serve(request: web.Request) -> web.StreamResponse:
        return await handler(request.app[ACCOUNTS], request)

    return serve


async def _teams_messages(request: web.Request) -> web.StreamResponse:
    if TEAMS not in request.app:
        return web.json_response({"error": "Teams is not configured on this relay"}, status=503)
    return await request.app[TEAMS].handle(request)


async def _image(request: web.Request) -> web.Response:
    return await request.app[IMAGES].handle(request)


async def _healthz(request: web.Request) -> web.Response:
    store = request.app[STORE]
    try:
        await store.call(lambda conn: conn.execute("SELECT 1").fetchone())
    except Exception:
        return web.json_response({"status": "error", "database": "unavailable"}, status=503)
    if store.refusing_writes:
        refusing = {"status": "error", "database": "refusing writes (disk full or read-only)"}
        return web.json_response(refusing, status=503)
    return web.json_response({"status": "ok", "dry_run": request.app[CONFIG].dry_run, "slack": SURFACE in request.app})


async def _slack_events(request: web.Request) -> web.StreamResponse:
    if SURFACE not in request.app:
        return web.json_response({"error": "Slack is not configured on this relay"}, status=503)
    return await request.app[SURFACE].handle(request)


async def _collect_garbage_as_a_server(app: web.Application) -> None:
    """What start-up made (the SDKs' modules, the adapters, the config) lives as long as the process:
    it is moved out of the garbage collector's sight (CPython's `gc.freeze`), so a collection scans only
    what requests and deliveries make, and its pauses stay short under load. And the youngest objects are
    collected every 20,000 allocations, not every 700: a request makes thousands, so CPython's default
    collected several times per request, and each collection paused every request in flight (at 50
    `/broadcast` in flight on two instances, p99 89 ms against 103, median of five runs each)."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from_env(os.environ)
        config = load_config(settings, SPECS)
        vault_from(settings)
        sign_in_pages.public_url(settings)
        warnings = startup_warnings(settings, config)
        sock = listening_socket(settings.listen_host, settings.port)
    except ConfigError as error:
        print(f"relay cannot start:\n{error}", file=sys.stderr)
        raise SystemExit(2) from None
    for line in warnings:
        log.warning("*** %s", line)
    app = build_app(settings, config)
    app.on_startup.append(_collect_garbage_as_a_server)  # after the relay has started (cleanup_ctx)
    where = f"{settings.listen_host} only" if settings.listen_host else "all interfaces"
    try:
        asyncio.run(serve(app, sock, lambda: log.info("listening on port %d (%s)", settings.port, where)))
    except StoreError as error:
        print(f"relay cannot start: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
