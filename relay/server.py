"""The HTTP server's own defences: what a slow, malformed or crowding client may cost, and no more.

Slack and Teams need the bot reachable from the internet, where anyone can open connections and never
finish them. aiohttp bounds sizes (a request line or header field of 8,190 bytes, `client_max_size` for
bodies) but not how many connections are open, nor how long a body may take; its keep-alive timer, which
starts with every connection, closes one that has not sent a whole request head in time. So here:

- at most `connection_limit()` connections at once, kept well under the open-file limit (a process out of
  file descriptors cannot accept, and asyncio logs a traceback for every try). When full, the connection
  that has waited longest without sending a request makes room for the new one: a client that sends its
  request at once (a health check, Slack) always gets through, however many idle connections are open;
- HEADER_SECONDS for a request head, BODY_SECONDS for its body (answered 408);
- a malformed request, a refused connection, an exhausted resource cost one log line a minute at most, never
  a traceback, whatever a client sends;
- every answer says not to sniff, cache or frame it.

gunicorn and uvicorn bound connections the same way (`--worker-connections`, `--limit-concurrency`); they
refuse the newcomer, which would let idle connections lock everyone out.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import signal
import socket
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from relay.config import ConfigError
from relay.printable import printable

log = logging.getLogger(__name__)

HEADER_SECONDS = 10.0  # Slack and Teams send a request's head in one packet; a person's browser, nearly so
BODY_SECONDS = 10.0  # Slack's bodies are a few kilobytes, Teams' activities tens of kilobytes
LINGER_SECONDS = 2.0
MAX_CONNECTIONS = 1000
BACKLOG = 128  # asyncio accepts up to this many connections in one go, each a file descriptor, before any closes
QUIET_SECONDS = 60.0


def connection_limit() -> tuple[int, int]:
    """(connections, backlog) for this process: half the open-file limit is left to the database and the
    connections to the networks, and a burst of accepted connections must fit before any is closed."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    usable = MAX_CONNECTIONS * 2 if soft == resource.RLIM_INFINITY else soft
    backlog = max(8, min(BACKLOG, usable // 8))
    return max(8, min(MAX_CONNECTIONS, usable // 2 - backlog)), backlog


def listening_socket(host: str | None, port: int) -> socket.socket:
    """Bind before anything else starts, so a port in use is one line naming it, not a traceback after
    "relay ready". `host` None: every interface, IPv6 too where the machine has it."""
    where = f"{host}:{port}" if host else f"port {port}"
    try:
        if host is None:
            if socket.has_dualstack_ipv6():
                try:
                    return socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
                except OSError as error:
                    if error.errno in (errno.EADDRINUSE, errno.EACCES):
                        raise
            return socket.create_server(("", port))
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        return socket.create_server(address[:2], family=family)
    except socket.gaierror:
        raise ConfigError(f"HOST={host!r} is not an address of this machine; set HOST to one, or unset it") from None
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise ConfigError(f"{where} is already in use: stop what listens there, or set PORT to another") from None
        raise ConfigError(f"cannot listen on {where}: {error.strerror}") from None


class ConnectionGuard:
    """Counts the server's connections, and chooses which one gives way when there are too many."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[asyncio.BaseTransport, _Guarded] = {}  # longest idle first
        self._quiet = Quiet()

    def protocol(self, inner: asyncio.Protocol) -> asyncio.Protocol:
        return _Guarded(inner, self)

    def admit(self, connection: _Guarded, transport: asyncio.BaseTransport) -> bool:
        if len(self._open) >= self.limit:
            idle = next((c for c in self._open.values() if not c.busy), None)
            if idle is None:
                self._quiet.say(f"refusing connections: all {self.limit} are busy with requests")
                return False
            self._quiet.say(f"{self.limit} connections open: closing those idle longest to make room")
            self.forget(idle)
            idle.transport_abort()
        self._open[transport] = connection
        return True

    def forget(self, connection: _Guarded) -> None:
        if connection.transport is not None:
            self._open.pop(connection.transport, None)

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Marks the connection busy while its request is handled: it does not give way then."""
        connection = self._open.get(request.transport) if request.transport is not None else None
        if connection is not None:
            connection.busy += 1
        try:
            return await handler(request)
        finally:
            if connection is not None:
                connection.busy -= 1
                if request.transport in self._open:  # now the most recently active
                    self._open[request.transport] = self._open.pop(request.transport)


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, admitted (or not) by the guard first."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self.inner = inner
        self.guard = guard
        self.busy = 0
        self.admitted = False
        self.transport: asyncio.BaseTransport | None = None

    def transport_abort(self) -> None:
        if isinstance(self.transport, asyncio.Transport):
            self.transport.abort()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.admitted = self.guard.admit(self, transport)
        if self.admitted:
            self.inner.connection_made(transport)
        else:
            self.transport_abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.admitted:
            self.guard.forget(self)
            self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.admitted:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.admitted else None

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class _GuardedSite(web.BaseSite):
    """aiohttp's SockSite, with each connection's protocol wrapped by the guard."""

    def __init__(self, runner: web.AppRunner, sock: socket.socket, guard: ConnectionGuard, backlog: int) -> None:
        super().__init__(runner, backlog=backlog)
        self._sock = sock
        self._guard = guard

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: self._guard.protocol(server()), sock=self._sock, backlog=self._backlog
        )


class Quiet:
    """One log line per QUIET_SECONDS for a kind of trouble a client can cause at will, with the count of
    what was left unsaid: a client can make it happen a thousand times a second, and the log must not grow
    with it."""

    def __init__(self) -> None:
        self._last = -QUIET_SECONDS
        self._unsaid = 0

    def allow(self) -> str | None:
        """None to stay silent; else what to add to the line (how many were not said)."""
        now = time.monotonic()
        if now - self._last < QUIET_SECONDS:
            self._unsaid += 1
            return None
        unsaid, self._last, self._unsaid = self._unsaid, now, 0
        return f" ({unsaid} more like it in the last {int(QUIET_SECONDS)} s, not logged)" if unsaid else ""

    def say(self, message: str) -> None:
        extra = self.allow()
        if extra is not None:
            log.warning("%s%s", message, extra)


class _QuietRecords(logging.Filter):
    """Turns the records `matches` picks (tracebacks a client can trigger) into one quiet line each."""

    def __init__(self, matches: Callable[[logging.LogRecord], str | None]) -> None:
        super().__init__()
        self.matches = matches
        self.quiet = Quiet()

    def filter(self, record: logging.LogRecord) -> bool:
        said = self.matches(record)
        if said is None:
            return True
        extra = self.quiet.allow()
        if extra is None:
            return False
        record.msg, record.args, record.exc_info, record.exc_text = f"{said}{extra}", (), None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _malformed(record: logging.LogRecord) -> str | None:
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, HttpProcessingError):
        reason = printable(" ".join(str(error.message).split())[:120])  # a client's bytes, for a terminal
        return f"refused a malformed request ({error.code}: {reason})"
    return None


def _out_of_files(record: logging.LogRecord) -> str | None:
    if str(record.msg).startswith("socket.accept() out of system resource"):
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return f"cannot accept connections for a second: out of file descriptors (the open-file limit is {soft})"
    return None


def quiet_client_noise() -> None:
    logging.getLogger("aiohttp.server").addFilter(_QuietRecords(_malformed))
    logging.getLogger("asyncio").addFilter(_QuietRecords(_out_of_files))


@web.middleware
async def bounded_body(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The body must arrive within BODY_SECONDS (aiohttp already bounds its size, answering 413)."""
    if request.body_exists:
        try:
            async with asyncio.timeout(BODY_SECONDS):
                await request.read()  # aiohttp keeps it for the handler's own read
        except TimeoutError:
            late = web.HTTPRequestTimeout(text="the request's body did not arrive in time")
            late.force_close()  # the rest of the body may still come: the connection cannot carry another request
            raise late from None
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer, errors included: no answer is to be sniffed as another type, cached (the status
    page's lists, a person's pages), framed, or allowed to run anything unless it says so itself."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    # "same-origin", not "no-referrer": under the latter a browser sends `Origin: null` with the page's own
    # forms (fetch.spec.whatwg.org, "serializing a request origin"), and the status page checks it.
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")


async def serve(app: web.Application, sock: socket.socket, announce: Callable[[], None]) -> None:
    """Serve `app` on `sock` until SIGINT or SIGTERM; `announce` once it listens."""
    limit, backlog = connection_limit()
    guard = ConnectionGuard(limit)
    app.middlewares.insert(0, guard.middleware)
    quiet_client_noise()
    # The keep-alive timer starts with each connection and closes it while no whole request head has come;
    # after an answer given before its request's body was all read (a 408, a 413), the rest is read and
    # dropped for LINGER_SECONDS at most (aiohttp's default, 10 s, would double a slow body's hold).
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, keepalive_timeout=HEADER_SECONDS, lingering_time=LINGER_SECONDS
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    await runner.setup()
    try:
        await _GuardedSite(runner, sock, guard, backlog).start()
        announce()
        await stop.wait()
    finally:
        await runner.cleanup()
