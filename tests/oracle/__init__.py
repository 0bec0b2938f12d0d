"""The networks' reference code, run once per test session: twitter-text 3.1.0 and @atproto/api's RichText.

One node process (oracle.mjs) answers batches over a pipe, so thousands of texts are judged in seconds.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


class Oracle:
    def __init__(self) -> None:
        self._node = subprocess.Popen(
            ["node", str(HERE / "oracle.mjs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="surrogatepass",
        )

    def _ask(self, kind: str, texts: list[str]) -> list[dict[str, Any]]:
        assert self._node.stdin is not None and self._node.stdout is not None
        self._node.stdin.write(json.dumps({kind: texts}) + "\n")
        self._node.stdin.flush()
        answer: list[dict[str, Any]] = json.loads(self._node.stdout.readline())[kind]
        return answer

    def twitter(self, texts: list[str]) -> list[dict[str, Any]]:
        """parseTweet's weightedLength and valid, and extractUrlsWithIndices (UTF-16 indices), per text."""
        return self._ask("twitter", texts)

    def richtext(self, texts: list[str]) -> list[dict[str, Any]]:
        """detectFacetsWithoutResolution's facets, graphemeLength and UTF-8 length, per text."""
        return self._ask("richtext", texts)

    def close(self) -> None:
        assert self._node.stdin is not None and self._node.stdout is not None
        self._node.stdin.close()
        self._node.wait(timeout=10)
        self._node.stdout.close()
