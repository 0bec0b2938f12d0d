"""Microsoft's own Adaptive Cards library as an oracle: a Node process (tests/msteams/adaptive_card.js)
that parses and validates each card as Teams would render it, and answers with what it found wrong."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent.parent / "msteams" / "adaptive_card.js"
INSTALL = "bash tests/msteams/install.sh"


class CardChecker:
    """One long-lived `node` process; cards are checked one at a time, in order."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        node = shutil.which("node")
        if node is None or not (SCRIPT.parent / "node_modules" / "adaptivecards").is_dir():
            raise RuntimeError(f"the Adaptive Cards reference is not installed: run `{INSTALL}` (needs Node 20)")
        self._process = await asyncio.create_subprocess_exec(
            node, str(SCRIPT), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=SCRIPT.parent
        )

    async def problems(self, card: Any) -> list[str]:
        """What the Adaptive Cards library refuses in `card`; empty when it renders."""
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise RuntimeError("CardChecker is not started")
        async with self._lock:
            process.stdin.write(json.dumps(card).encode() + b"\n")
            await process.stdin.drain()
            answer: list[str] = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        return answer

    async def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()
