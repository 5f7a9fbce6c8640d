"""What one Redis call costs the worker in CPU: through coredis, and through
the lean connection (quartchat/backends/redis_lean.py) that the two calls made
once per message use.

Usage, with a Redis of its own (it writes and deletes keys under ``--prefix``)::

    redis-server --port 6390 --save '' --dir /tmp/r &
    .venv/bin/python scripts/redis_call_cost.py --url redis://127.0.0.1:6390/0

Three kinds of call, ``--calls`` of each per client: a ``GET`` round trip, a
small Lua script (``EVALSHA``, as the append is), and the tail's case, a
blocking ``XREAD`` woken by an entry that another *process* adds every 5 ms
(so only the reading side is counted). The figure is this process's CPU time
per call (``time.process_time``), which a busy machine inflates less than
wall time. Progress goes to stderr; a table, then one line of JSON, to stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import coredis
import trio

from quartchat.backends.redis_lean import LeanConnection

SCRIPT = "return redis.call('GET', KEYS[1])"
#: Seconds between two entries of the writer process in the tail's case.
WRITE_EVERY = 0.005


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="redis://host:port/db of a Redis of its own")
    parser.add_argument("--calls", type=int, default=2000, help="calls of each kind per client")
    parser.add_argument("--prefix", default="callcost:")
    return parser.parse_args()


def writer(url: str, key: str, count: int) -> subprocess.Popen[bytes]:
    """Another process adding ``count`` entries to ``key``, one every WRITE_EVERY s."""
    code = (
        "import sys, time, coredis, trio\n"
        "async def main(url, key, count):\n"
        "    async with coredis.Redis.from_url(url) as r:\n"
        "        for _ in range(count):\n"
        f"            await trio.sleep({WRITE_EVERY})\n"
        "            await r.xadd(key, {'f': 'v'})\n"
        "trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, url, key, str(count)])


async def per_call(calls: int, call: Callable[[], Awaitable[object]]) -> float:
    """Microseconds of this process's CPU per call (after a warm-up)."""
    for _ in range(min(50, calls)):
        await call()
    start = time.process_time()
    for _ in range(calls):
        await call()
    return (time.process_time() - start) / calls * 1e6


async def tail_cost(url: str, key: str, calls: int, read: Callable[[str], Awaitable[str]]) -> float:
    """CPU per entry of a loop of blocking reads that follows ``key``."""
    process = writer(url, key, calls)
    try:
        position, got = "$", 0
        start = time.process_time()
        while got < calls:
            position = await read(position)
            got += 1
        return (time.process_time() - start) / calls * 1e6
    finally:
        process.wait()


async def main() -> None:
    args = parse_args()
    key, stream = args.prefix + "k", args.prefix + "s"
    figures: dict[str, dict[str, float]] = {}
    async with coredis.Redis.from_url(args.url, decode_responses=True) as client:
        lean = LeanConnection(args.url, "measure")
        script = client.register_script(SCRIPT)
        await client.set(key, "value")
        await client.delete([stream])

        async def coredis_xread(after: str) -> str:
            reply = await client.xread({stream: after}, count=1, block=5000)
            return str((reply or {})[stream][-1].identifier)

        async def lean_xread(after: str) -> str:
            return (await lean.xread(stream, after, 1, 5000))[-1][0]

        for name, get, run_script, read in (
            ("coredis", lambda: client.get(key), lambda: script(keys=[key]), coredis_xread),
            (
                "lean",
                lambda: lean.call("GET", key),
                lambda: lean.run_script(SCRIPT, [key], []),
                lean_xread,
            ),
        ):
            print(f"{name}: GET, script, blocking XREAD...", file=sys.stderr)
            figures[name] = {
                "get_us": round(await per_call(args.calls, get), 1),
                "script_us": round(await per_call(args.calls, run_script), 1),
                "tail_read_us": round(await tail_cost(args.url, stream, args.calls // 4, read), 1),
            }
        await lean.aclose()
        await client.delete([key, stream])
    print_table(figures)
    print(json.dumps({"calls": args.calls, "cpu_us_per_call": figures}))


def print_table(figures: dict[str, dict[str, Any]]) -> None:
    print("| client | GET µs CPU | script µs CPU | blocking XREAD µs CPU per entry |")
    print("| --- | --- | --- | --- |")
    for name, row in figures.items():
        print(f"| {name} | {row['get_us']} | {row['script_us']} | {row['tail_read_us']} |")


if __name__ == "__main__":
    trio.run(main)
