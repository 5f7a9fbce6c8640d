"""Open N idle, welcomed connections and print the server's RSS before and after.

The same as ``scripts/bench.py --idle N --server-pid PID`` (which see), with
the one-line JSON this script always printed. The clients can offer
permessage-deflate the way a browser does (``--deflate``); the offer takes
effect only if the server accepts it. All connections are tabs of one user,
so the figure is per connection, no presence storm slows the run, and the
server's limit on new identities per address does not apply.

``--cycles N`` instead connects and disconnects N times (``--concurrency`` at
a time, each welcomed, then closed with 1000; ``--abrupt``: the TCP
connection is dropped instead), pausing every ``--sample-every`` cycles until
the server is quiet to read its RSS: a leak shows as RSS that keeps growing
from one sample to the next. Cycles are tabs of one user, held online by one
more connection, unless ``--new-users`` (each cycle a new identity: raise
``QUARTCHAT_NEW_IDENTITY_BURST`` on the server first).

Usage, with the server's worker pid (``pgrep -P <hypercorn pid> -f spawn_main``;
``python -m quartchat`` with one worker serves in its own process):

    .venv/bin/python scripts/idle_rss.py --pid 1234 --count 1000 [--deflate]
    .venv/bin/python scripts/idle_rss.py --pid 1234 --cycles 60000

``scripts/idle_floor.py`` starts servers of its own (a bare ASGI app, a bare
Quart-Trio app, or quartchat) and runs these measurements against them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import trio

from benchlib import connections
from benchlib.config import parse_args
from benchlib.connections import greet
from benchlib.fastws import Closed, FastClient
from benchlib.output import end_progress, show_progress
from benchlib.procstats import read_proc

T = TypeVar("T")
#: Seconds to wait after a batch before reading RSS: past the server's default
#: leave grace (5 s), so that what a departed connection left behind is gone.
QUIET_SECONDS = 6.0
#: Seconds a cycle's client waits for the server to answer its close.
CLOSE_WAIT = 2.0


def raise_fd_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib(pid: int) -> int:
    sample = read_proc(pid, 0.0)
    if sample is None:
        raise SystemExit(f"process {pid} is gone")
    return sample.rss_kb


def measure_idle(
    url: str, pid: int, count: int, deflate: bool, concurrency: int = 50
) -> dict[str, Any]:
    """Hold ``count`` idle connections to ``url`` (bench.py --idle); the server's RSS."""
    cfg = parse_args(
        [
            *("--idle", str(count), "--url", url),
            *("--server-pid", str(pid), "--connect-concurrency", str(concurrency)),
            *(["--deflate"] if deflate else []),
        ]
    )
    result = connections.run(cfg)
    server = result["server"]
    return {
        "count": count,
        "welcomed": result["clients"]["welcomed"],
        "deflate_offered": deflate,
        "deflate_accepted": result["clients"]["deflate_accepted"],
        "rss_before_mib": server["rss_mb_before_connect"],
        "rss_after_mib": server["rss_mb_settled"],
        "kib_per_connection": server["kb_per_connection"],
    }


def hold_in_steps(
    url: str, count: int, deflate: bool, steps: int, at_each: Callable[[], T]
) -> list[T]:
    """Open ``count`` more idle connections ``steps`` times (all tabs of one
    user), calling ``at_each`` (in a thread) once each batch is welcomed."""
    cfg = parse_args(["--idle", str(count * steps), "--url", url, *(["--deflate"] * deflate)])
    holder = connections.Holder(cfg)
    results: list[T] = []

    async def run() -> None:
        limiter = trio.CapacityLimiter(cfg.connect_concurrency)
        async with trio.open_nursery() as nursery:
            token = await nursery.start(
                connections.hold_one, holder, url, connections.hello(None, None), limiter
            )
            greeting = connections.hello(None, token)
            for step in range(steps):
                holder.attempts_left = count - (1 if step == 0 else 0)
                holder.all_attempted = trio.Event()
                for _ in range(holder.attempts_left):
                    nursery.start_soon(connections.hold_one, holder, url, greeting, limiter)
                await holder.all_attempted.wait()
                await trio.sleep(2)
                show_progress(f"holding {len(holder.clients)} connections; measuring")
                results.append(await trio.to_thread.run_sync(at_each))
            nursery.cancel_scope.cancel()

    trio.run(run)
    end_progress()
    if holder.failures or holder.closes:
        raise SystemExit(f"failed: {dict(holder.failures)}, closed: {dict(holder.closes)}")
    return results


async def close_cleanly(client: FastClient, abrupt: bool) -> None:
    """Close with 1000 and wait for the server's answer (or just drop TCP)."""
    try:
        if not abrupt:
            await client.close(1000)
            with trio.move_on_after(CLOSE_WAIT):
                while True:
                    await client.next_texts()  # until the server's close: Closed
    except (OSError, trio.BrokenResourceError, Closed):
        pass
    finally:
        await client.aclose()


def run_cycles(
    url: str,
    pid: int,
    cycles: int,
    deflate: bool,
    *,
    new_users: bool = False,
    abrupt: bool = False,
    concurrency: int = 50,
    sample_every: int = 20_000,
    at_sample: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """Connect, get welcomed and disconnect ``cycles`` times; the server's
    RSS (KiB) at the start and after every ``sample_every`` cycles, each read
    once the server has been quiet for :data:`QUIET_SECONDS`; ``at_sample``
    is called (in a thread) at each of those points too."""
    samples: dict[int, int] = {}
    after_hook: dict[int, int] = {}
    failures: Counter[str] = Counter()
    done = 0

    async def one_cycle(greeting: dict[str, Any]) -> None:
        nonlocal done
        try:
            with trio.fail_after(connections.HANDSHAKE_TIMEOUT):
                held, _ = await greet(url, greeting, deflate)
        except (OSError, Closed, trio.TooSlowError) as exc:
            failures[exc.label if isinstance(exc, Closed) else type(exc).__name__] += 1
        else:
            await close_cleanly(held.ws, abrupt)
        done += 1

    async def worker(quota: list[int], greeting: dict[str, Any] | None, token: str) -> None:
        while quota[0] > 0:
            quota[0] -= 1
            await one_cycle(greeting or connections.hello(None, token if not new_users else None))

    async def progress(started: float) -> None:
        while True:
            elapsed = trio.current_time() - started
            show_progress(
                f"cycles {done}/{cycles}  {done / max(elapsed, 1e-9):6.0f}/s"
                f"  failed {sum(failures.values())}  server RSS {rss_kib(pid) / 1024:.1f} MiB"
            )
            await trio.sleep(1)

    async def run() -> None:
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress, started)
            holder, token = await greet(url, connections.hello(None, None), deflate)
            assert token is not None, "a welcome carries the user's token"
            await trio.sleep(QUIET_SECONDS)
            samples[0] = rss_kib(pid)
            rounds = math.ceil(cycles / sample_every)
            for index in range(rounds):
                quota = [min(sample_every, cycles - index * sample_every)]
                async with trio.open_nursery() as workers:
                    for _ in range(concurrency):
                        workers.start_soon(worker, quota, None, token)
                await trio.sleep(QUIET_SECONDS)
                samples[done] = rss_kib(pid)
                if at_sample is not None:
                    await trio.to_thread.run_sync(at_sample)
                    after_hook[done] = rss_kib(pid)
            await close_cleanly(holder.ws, abrupt=False)
            nursery.cancel_scope.cancel()

    raise_fd_limit()
    trio.run(run)
    end_progress()
    marks = sorted(samples)
    report: dict[str, Any] = {
        "cycles": cycles,
        "new_users": new_users,
        "abrupt": abrupt,
        "deflate_offered": deflate,
        "failures": dict(failures),
        "rss_mib": {str(k): round(samples[k] / 1024, 1) for k in marks},
    }
    if after_hook:
        report["rss_mib_after_at_sample"] = {
            str(k): round(v / 1024, 1) for k, v in sorted(after_hook.items())
        }
    if len(marks) >= 3:
        first, last = samples[marks[1]], samples[marks[-1]]
        report["growth_after_first_round_pct"] = round((last - first) / first * 100, 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--pid", type=int, required=True, help="the server worker's pid")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--concurrency", type=int, default=50, help="handshakes at a time")
    parser.add_argument("--cycles", type=int, help="connect/disconnect this many times instead")
    parser.add_argument("--sample-every", type=int, default=20_000, help="--cycles: RSS every N")
    parser.add_argument("--new-users", action="store_true", help="--cycles: a new user each")
    parser.add_argument("--abrupt", action="store_true", help="--cycles: drop TCP, no close")
    args = parser.parse_args()
    url = f"ws://{args.host}:{args.port}/ws"
    if args.cycles:
        report = run_cycles(
            url,
            args.pid,
            args.cycles,
            args.deflate,
            new_users=args.new_users,
            abrupt=args.abrupt,
            concurrency=args.concurrency,
            sample_every=args.sample_every,
        )
    else:
        report = measure_idle(url, args.pid, args.count, args.deflate, args.concurrency)
        report.pop("welcomed")
        report.pop("deflate_accepted")
    print(json.dumps(report))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
