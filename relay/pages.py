"""Fetching a page a broadcast links to, as a stranger's server must be fetched: briefly, a little, publicly.

Every fetch is bounded: in time (the caller's patience, for the whole fetch with its redirects), in size
(the body is read up to a limit and refused past it, whatever Content-Length claims; a compressed body
is counted as it is decompressed), in redirects (a few, each one checked again) and in where it may go
(relay/addresses.py: the resolver refuses a host with any non-public address, and an IP literal is checked
before connecting, since aiohttp connects to one without asking the resolver). No proxy from the
environment is used (aiohttp's default), so the check is on the address actually connected to.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from relay.addresses import Reach, Refused, check_url

MAX_REDIRECTS = 3  # a site moved to https and to www needs two; more is a chain nobody needs followed
_REDIRECTS = (301, 302, 303, 307, 308)
USER_AGENT = "broadcast-relay (reading a link card)"


class Unfetched(Exception):
    """The page could not be had: said in words, for the log."""


@dataclass(frozen=True)
class Page:
    url: str  # where it was found, after redirects: relative links in it are relative to this
    content_type: str
    charset: str | None
    body: bytes


class CheckedResolver(AbstractResolver):
    """DNS as usual, but a host with any address `reach` refuses is refused whole: a name that resolves to
    both a public and a private address is someone's trick, not a web page."""

    def __init__(self, reach: Reach) -> None:
        self.reach = reach
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        for result in found:
            address = ipaddress.ip_address(result["host"].split("%", 1)[0])
            if not self.reach(address):
                raise Refused(f"{host} resolves to {address}, which is not a public address")
        return found

    async def close(self) -> None:
        await self._resolver.close()


class Pages:
    """A client for strangers' pages: one connection pool, made on first use (a session belongs to the
    event loop it was made in). `patience` bounds each whole fetch, redirects included."""

    def __init__(self, patience: float, reach: Reach) -> None:
        self.patience = patience
        self.reach = reach
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=CheckedResolver(self.reach), limit=8),
                timeout=aiohttp.ClientTimeout(total=self.patience),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def get(self, url: str, limit: int, kinds: tuple[str, ...]) -> Page:
        """The page at `url`, at most `limit` bytes, of a type starting with one of `kinds` ("text/html",
        "image/"). Raises Refused, Unfetched, or aiohttp's and asyncio's transport errors."""
        accept = ", ".join(f"{kind}*" if kind.endswith("/") else kind for kind in kinds)
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, self.reach)
            async with self._http().get(url, allow_redirects=False, headers={"Accept": accept}) as response:
                if response.status in _REDIRECTS and "Location" in response.headers:
                    url = urljoin(url, response.headers["Location"])
                    continue
                if response.status != 200:
                    raise Unfetched(f"{url} answered {response.status}")
                if not response.content_type.startswith(kinds):
                    raise Unfetched(f"{url} is {response.content_type or 'of no type'}, not {accept}")
                if (response.content_length or 0) > limit:
                    raise Unfetched(f"{url} is {response.content_length:,} bytes, more than {limit:,}")
                body = bytearray()
                async for chunk in response.content.iter_chunked(65536):
                    body += chunk
                    if len(body) > limit:
                        raise Unfetched(f"{url} is more than {limit:,} bytes")
                return Page(url, response.content_type, response.charset, bytes(body))
        raise Unfetched(f"more than {MAX_REDIRECTS} redirects")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
