"""A loopback proxy in front of a real server (the reference Bluesky PDS): requests pass through
unchanged unless a fault says otherwise, so faults can be injected into the real thing."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from .server import LoopbackServer

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


@dataclass
class ProxyCall:
    """One request: `endpoint` is "METHOD path" (an XRPC method's path, say), `params` its query."""

    endpoint: str
    params: dict[str, Any]
    headers: Mapping[str, str] = field(repr=False)
    fault: Any = None
    at: float = field(default_factory=time.monotonic, repr=False)


class FaultyProxy(LoopbackServer[ProxyCall]):
    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self._client: aiohttp.ClientSession | None = None
        self.app.router.add_route("*", "/{path:.*}", self._forward)

    @property
    def url(self) -> str:
        return self.origin

    def calls_to(self, endpoint: str) -> list[ProxyCall]:
        return [call for call in self.calls if call.endpoint == endpoint]

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        await super().close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        endpoint = f"{request.method} {request.path}"
        params = dict(request.query)
        body = await request.read()
        fault = self.faults.take(endpoint, params)

        async def apply() -> web.StreamResponse:
            if self._client is None:
                self._client = aiohttp.ClientSession()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            async with self._client.request(
                request.method, f"{self.upstream}{request.path_qs}", data=body or None, headers=headers
            ) as answer:
                content = await answer.read()
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
                return web.Response(status=answer.status, body=content, headers=kept)

        return await self._serve(request, ProxyCall(endpoint, params, request.headers, fault), fault, apply)
