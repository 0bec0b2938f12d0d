"""The server on the internet: slow, malformed and crowding clients, against the real bot process with a
low open-file limit (the finding: 300 half-sent requests made /healthz time out and asyncio wrote 33 MB of
"Too many open files" tracebacks in 22 s). Loopback only, bounded in count and in time."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import aiohttp
import pytest

from relay.server import BODY_SECONDS, HEADER_SECONDS
from tests.bot_process import BotProcess, free_port
from tests.conftest import bot_env, config_text
from tests.fakes import FakeSlack, FakeX
from tests.proof import tally
from tests.test_abuse import INPUTS

OPEN_FILES = 256  # what the finding ran with; systemd's default is 1,024
SLOW_CLIENTS = 300
MALFORMED = [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\x01: y\r\n\r\n",
    b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",
    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
]


async def limited_bot(tmp_path: Path, slack: FakeSlack, x: FakeX) -> tuple[BotProcess, int]:
    if shutil.which("prlimit") is None:
        pytest.skip("`prlimit` (util-linux) is not installed: cannot lower the bot's open-file limit")
    port = free_port()
    env = {**bot_env(tmp_path, slack, x, config_text()), "PORT": str(port)}
    process = BotProcess(env, prefix=("prlimit", f"--nofile={OPEN_FILES}:{OPEN_FILES}", "--"))
    await process.start()
    return process, port


async def healthy(port: int) -> bool:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http,
        http.get(f"http://127.0.0.1:{port}/healthz") as answer,
    ):
        return answer.status == 200


async def closed_by_the_server(reader: asyncio.StreamReader) -> bytes:
    """What the server said before closing (b"" when it just closed)."""
    try:
        return await reader.read()
    except ConnectionError:
        return b""


async def test_slow_clients_neither_starve_the_server_nor_fill_its_log(
    tmp_path: Path, slack: FakeSlack, x: FakeX
) -> None:
    process, port = await limited_bot(tmp_path, slack, x)
    logged = len(process.log)
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        # One body that never finishes, then many request heads that never finish.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nshort")
        slow_body = asyncio.create_task(closed_by_the_server(reader))
        held.append((reader, writer))
        for _ in range(SLOW_CLIENTS):
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
            except (OSError, TimeoutError):
                continue
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Wait: ")
            held.append((reader, writer))
        assert len(held) > OPEN_FILES, "the clients really outnumber the bot's file descriptors"
        for _ in range(10):
            assert await healthy(port), "/healthz answers while the slow clients hold on"
        async with asyncio.timeout(max(HEADER_SECONDS, BODY_SECONDS) + 10):
            said = await asyncio.gather(*(closed_by_the_server(r) for r, _ in held[1:]), slow_body)
        assert said[-1].startswith(b"HTTP/1.1 408"), "a body that never finishes is answered 408"
        assert all(not answer for answer in said[:-1]), "a head that never finishes is closed"
        assert await healthy(port)
    finally:
        for _, writer in held:
            writer.close()
        await process.stop()
    new = process.log[logged:]
    assert not [line for line in new if "Traceback" in line or "Too many open files" in line], "".join(new)
    assert len(new) <= 10 and sum(map(len, new)) < 4000, "".join(new)
    tally("slow or crowding clients held off, /healthz answering", len(held))


async def test_malformed_requests_get_400_and_cost_at_most_a_log_line(
    tmp_path: Path, slack: FakeSlack, x: FakeX
) -> None:
    process, port = await limited_bot(tmp_path, slack, x)
    logged = len(process.log)
    try:
        for _ in range(20):
            for request in MALFORMED:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request)
                answer = await asyncio.wait_for(closed_by_the_server(reader), 5)
                writer.close()
                assert re.match(rb"HTTP/1\.[01] 4\d\d ", answer), (request[:60], answer[:100])
                tally(INPUTS)
        assert await healthy(port)
    finally:
        await process.stop()
    new = process.log[logged:]
    assert not [line for line in new if "Traceback" in line], "".join(new)
    assert len(new) <= 2, "one line for all of them, not one each:\n" + "".join(new)
