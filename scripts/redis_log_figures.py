"""Fill a Redis log and measure what the README states about it: the memory a
message costs, and how long a history or replay page takes on a big log.

Usage, with a Redis of its own (never a shared one: this writes a lot)::

    redis-server --port 6390 --save '' --appendonly yes --appendfsync everysec --dir /tmp/r &
    .venv/bin/python scripts/redis_log_figures.py --url redis://127.0.0.1:6390/0 --count 1000000

It appends ``--count`` messages (about 3% private, among ``--users`` users)
through :class:`quartchat.backends.redis_log.RedisLog` in batches, unless the
log under ``--prefix`` already has them; reports Redis's ``used_memory``
growth per message and ``MEMORY USAGE`` of the keys; then times ``--runs``
calls of each kind of page, as a client sees them (round trip and decoding
included, and the client process's CPU time per page, which a busy machine
inflates less than wall time) and as Redis spent them (``INFO commandstats``).
Progress goes to stderr, figures to stdout.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import trio

from quartchat.backends.redis_log import RedisLog
from quartchat.models import Draft, User

BATCH = 1000


async def fill(log: RedisLog, users: list[User], count: int, rng: random.Random) -> int:
    """Append messages until the log holds ``count``; return how many were added."""
    have = await log.last_id()
    added = 0
    while have + added < count:
        drafts = []
        for _ in range(min(BATCH, count - have - added)):
            sender = rng.choice(users)
            to = rng.choice(users) if rng.random() < 0.03 else None
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 14)))
            drafts.append(Draft(sender, f"f{have + added + len(drafts)}", text, to, origin="f.1"))
        await log.append(drafts)
        added += len(drafts)
        if added % 50_000 < BATCH:
            print(f"  {have + added:,} messages", file=sys.stderr)
    return added


async def timed(runs: int, call: Callable[[], Awaitable[object]]) -> str:
    samples = []
    cpu = time.process_time()
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    cpu_each = (time.process_time() - cpu) / runs * 1000
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return (
        f"p50 {statistics.median(samples):.2f} ms, p99 {p99:.2f} ms, max {samples[-1]:.2f} ms"
        f" (client CPU {cpu_each:.2f} ms)"
    )


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(1)
    log = RedisLog(args.url, prefix=args.prefix)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        redis = log._redis  # the figures read Redis's own counters
        users = [User(f"u-fig-{i:03d}", f"user{i}") for i in range(args.users)]
        before = int((await redis.info("memory"))["used_memory"])
        added = await fill(log, users, args.count, rng)
        after = int((await redis.info("memory"))["used_memory"])
        last = await log.last_id()
        print(f"log: {last:,} messages under {args.prefix!r}")
        if added:
            per = (after - before) / added
            print(
                f"used_memory grew {after - before:,} bytes for {added:,} messages:"
                f" {per:.0f} B each"
            )
        for key in ["log", "pub", f"dm:{users[0].id}", f"dedup:{users[0].id}"]:
            size = await redis.memory_usage(args.prefix + key, samples=0)
            print(f"MEMORY USAGE {args.prefix + key}: {size:,} bytes")
        viewer, other = users[0], users[1]
        deep = max(2, last // 2)
        cases: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("history newest 50", lambda: log.history(viewer.id, None, 50, None)),
            ("history newest 200", lambda: log.history(viewer.id, None, 200, None)),
            ("history 50 from the middle", lambda: log.history(viewer.id, deep, 50, None)),
            ("history 50 with_user", lambda: log.history(viewer.id, None, 50, other.id)),
            ("replay 500 after a cursor", lambda: log.read_after(viewer.id, last - 600, 500)),
            ("replay first visit 50", lambda: log.read_after(viewer.id, None, 50)),
        ]
        for name, call in cases:
            await redis.config_resetstat()
            client_side = await timed(args.runs, call)
            stats = await redis.info("commandstats")
            in_redis = float(_stat(stats, "evalsha")["usec_per_call"]) / 1000
            print(f"{name}: {client_side}; in Redis {in_redis:.2f} ms per page")
        await log.aclose()


def _stat(stats: dict[str, object], command: str) -> dict[str, object]:
    """One command's line of INFO commandstats (coredis parses it into a dict)."""
    entry = stats[f"cmdstat_{command}"]
    assert isinstance(entry, dict)
    return entry


WORDS = [
    *("the", "a", "chat", "quart", "trio", "redis", "stream", "message", "hello", "there"),
    *("ok", "thanks", "see", "you", "soon", "what", "when", "why", "lunch", "meeting"),
    *("deploy", "build", "test", "green", "red", "ship", "it", "later", "now"),
]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="redis://host:port/db of a Redis of its own")
    parser.add_argument("--prefix", default="figures:")
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--runs", type=int, default=200)
    return parser.parse_args()


if __name__ == "__main__":
    trio.run(main, parse())
