"""The acknowledgement load: signed `/broadcast` commands, then Approve clicks, `in_flight` at a time.

Run in its own process (`python -m bench.ack`), so the fakes' work in the benchmark's process does not
colour what it measures. Prints one JSON line: the latencies, in seconds, of each kind of request.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import sys
import time

import aiohttp

from tests.slack_requests import action_body, command_body, signed_headers


def broadcast_id(answer: str) -> str | None:
    """The id a preview names (`b` and eight hex digits, in backticks), if the answer is one."""
    match = re.search(r"`(b[0-9a-f]{8})`", answer)
    return match.group(1) if match else None


async def measure(
    urls: list[str], secret: str, user: str, response_url: str, in_flight: int, count: int
) -> dict[str, list[float]]:
    """Requests go to each of `urls` in turn, as a load balancer spreads them over instances: a command
    answered by one instance is approved on another."""
    gate = asyncio.Semaphore(in_flight)
    turns = itertools.cycle(urls)
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def send(body: str) -> tuple[float, str]:
            url = next(turns)
            async with gate:
                started = time.perf_counter()
                async with http.post(f"{url}/slack/events", data=body, headers=signed_headers(secret, body)) as answer:
                    text = await answer.text()
                    if answer.status != 200:
                        raise RuntimeError(f"the bot answered {answer.status}: {text[:200]}")
                return time.perf_counter() - started, text

        # The first request to each instance waits for Bolt's auth.test: measured apart, not in the load.
        first, _ = await send(command_body(user, f"Warming up {in_flight}.", response_url))
        for _ in urls[1:]:
            await send(command_body(user, f"Warming up {in_flight}.", response_url))
        commands = await asyncio.gather(
            *(send(command_body(user, f"Benchmark message {in_flight}-{n}.", response_url)) for n in range(count))
        )
        ids = [broadcast_id(text) for _, text in commands]
        clicks = await asyncio.gather(
            *(send(action_body(user, "approve", found, response_url)) for found in ids if found)
        )
    return {
        "command": [seconds for seconds, _ in commands],
        "approve": [seconds for seconds, _ in clicks],
        "first": [first],
    }


if __name__ == "__main__":
    urls, secret, user, response_url, in_flight, count = sys.argv[1:7]
    print(json.dumps(asyncio.run(measure(urls.split(","), secret, user, response_url, int(in_flight), int(count)))))
