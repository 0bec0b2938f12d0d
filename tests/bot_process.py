"""The real bot as a subprocess, started, killed and restarted the way an operator's machine would."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class BotProcess:
    """`python bot.py` as an operator runs it, with its log collected."""

    def __init__(self, env: dict[str, str], cwd: Path = ROOT, prefix: Sequence[str] = ()) -> None:
        """`prefix`: a command the bot runs under (`unshare …`), as a service manager may wrap it."""
        self.env = env
        self.cwd = cwd
        self.prefix = tuple(prefix)
        self.log: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._logged = asyncio.Condition()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        await self._spawn()
        async with asyncio.timeout(30):
            await self._listening.wait()
        if not any("listening on port" in line for line in self.log):
            raise AssertionError(f"the bot stopped before listening:\n{''.join(self.log)}")

    async def exits(self, timeout: float = 30.0) -> int:
        """Start it expecting it to stop by itself (a refusal to start); its exit status."""
        await self._spawn()
        assert self.process is not None
        try:
            async with asyncio.timeout(timeout):
                code = await self.process.wait()
        except TimeoutError:
            await self.kill()
            raise AssertionError(f"the bot kept running:\n{''.join(self.log)}") from None
        if self._reader:
            await self._reader
        return code

    async def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """The first line of the log containing `text`, as soon as the bot writes it."""
        async with self._logged:
            try:
                async with asyncio.timeout(timeout):
                    while not (found := next((line for line in self.log if text in line), None)):
                        await self._logged.wait()
                    return found
            except TimeoutError:
                raise AssertionError(f"no {text!r} in the log within {timeout}s:\n{''.join(self.log)}") from None

    async def _spawn(self) -> None:
        self._listening.clear()
        self.process = await asyncio.create_subprocess_exec(
            *self.prefix,
            sys.executable,
            str(ROOT / "bot.py"),
            cwd=self.cwd,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **self.env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read(self.process))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace")
            async with self._logged:
                self.log.append(line)
                self._logged.notify_all()
            if "listening on port" in line:
                self._listening.set()
        self._listening.set()  # it stopped: `start` need not wait any longer

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        if self._reader:
            await self._reader

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.terminate()
            self.process.send_signal(signal.SIGCONT)  # a test may have left it frozen (SIGSTOP)
            await self.process.wait()
        if self._reader:
            await self._reader


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
