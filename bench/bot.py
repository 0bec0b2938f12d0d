"""The bot under measurement: `python bot.py` in its own process, as an operator runs it, read through /proc."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from psycopg.rows import dict_row

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
FINAL = ("sent", "failed", "unknown", "cancelled")


class Bot:
    def __init__(self, env: dict[str, str], port: int, db: Path) -> None:
        self.env = env
        self.port = port
        self.db = db
        self.url = f"http://127.0.0.1:{port}"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> float:
        """Start the bot; return the seconds until it answers `/healthz`."""
        started = time.perf_counter()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bot.py"),
            cwd=ROOT,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **self.env, "PORT": str(self.port)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with aiohttp.ClientSession() as http:
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"the bot exited with {self.process.returncode} at start")
                try:
                    async with http.get(f"{self.url}/healthz") as answer:
                        if answer.status == 200:
                            return time.perf_counter() - started
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.005)  # polling a port that cannot be awaited

    def cpu_seconds(self) -> tuple[float, float]:
        """User and system CPU time the bot has used so far (system: the kernel's work for it, the
        database's fsyncs and the sockets' calls)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) / TICKS, int(fields[12]) / TICKS

    def peak_memory_mb(self) -> float:
        """The most resident memory the bot has held (VmHWM)."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc")

    async def all_final(self, broadcast_id: str) -> tuple[float, list[dict[str, Any]]]:
        """Wait until every delivery of the broadcast is final, as the bot recorded it; return when the last
        one was recorded (epoch seconds) and the deliveries (destination, state, attempts, last_error). Read
        over one connection: a new one every look cost the machine being measured a PostgreSQL backend each."""
        with self._reader() as read:
            while True:
                rows = await asyncio.to_thread(read, broadcast_id)
                if rows and all(row["state"] in FINAL for row in rows):
                    return max(row["updated_at"] for row in rows), rows
                await asyncio.sleep(0.05)  # the bot's database is read from outside: nothing to await

    @contextmanager
    def _reader(self) -> Iterator[Callable[[str], list[dict[str, Any]]]]:
        query = "SELECT destination, state, attempts, last_error, updated_at FROM deliveries WHERE broadcast_id = ?"
        if url := self.env.get("DATABASE_URL"):
            with psycopg.connect(url, autocommit=True, row_factory=dict_row) as pg:
                yield lambda broadcast_id: pg.execute(query.replace("?", "%s").encode(), (broadcast_id,)).fetchall()
            return
        with contextlib.closing(
            sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10, check_same_thread=False)
        ) as conn:
            conn.row_factory = sqlite3.Row
            yield lambda broadcast_id: [dict(row) for row in conn.execute(query, (broadcast_id,)).fetchall()]

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()
