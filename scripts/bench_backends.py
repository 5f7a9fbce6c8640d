"""SQLite and Redis modes under the same load, back to back: the figures of
docs/performance.md ("Workers on Redis").

For every mode, receiver count and rate given, this starts what that mode
serves with, on free ports and fresh storage, runs ``scripts/bench.py``
against it, and stops it again:

- ``sqlite``: one ``quartchat`` process on a fresh SQLite file;
- ``redis1``: one ``quartchat`` process on a private ``redis-server``;
- ``redis2``: two ``quartchat`` processes on two ports sharing one private
  ``redis-server`` (the bench spreads its clients over both).

The private Redis runs with AOF and ``appendfsync everysec`` (never the
machine's Redis on 6379), and its pid is given to the bench with the
workers', so server CPU is the sum of all of them. Nothing is pinned: the
load generator shares the machine's cores with the servers.

Usage, from the repository root (needs the ``bench`` extra and
``redis-server``)::

    ulimit -n 8192
    .venv/bin/python scripts/bench_backends.py --modes sqlite,redis1,redis2 \\
        --receivers 100,1000 --rates 40
    .venv/bin/python scripts/bench_backends.py --modes redis2 --receivers 1000 \\
        --rates 40,50,60,70 --stop-on-miss

Each run prints its progress on stderr (the bench's own lines included);
at the end a table goes to stdout and every run's figures, with the load
average of the machine before and after it, to the JSON file
(``bench-results/backends-<timestamp>.json``). A run "holds" the rate when
every planned message was acked and delivered exactly once, in order
(bench.py's verdict), and the delivery p99 is under ``--p99-ms``.
``--stop-on-miss`` stops raising the rate for a mode and receiver count
after its first miss. Exit status: 0 when every run passed bench.py's
checks, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH = REPO_ROOT / "scripts" / "bench.py"
#: Workers per mode, and whether they share a Redis.
MODES = {"sqlite": (1, False), "redis1": (1, True), "redis2": (2, True)}
#: Seconds a server has to answer (``/healthz``, or Redis's PING) after its start.
START_TIMEOUT = 30.0
#: Seconds a server has to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
#: Per-user and per-connection limits raised for the bench, so only the
#: server's speed limits the rate (each sender sends rate/senders a second).
BENCH_ENV = {
    "QUARTCHAT_SEND_RATE": "1000",
    "QUARTCHAT_SEND_BURST": "1000",
    "QUARTCHAT_FRAME_RATE": "1000",
    "QUARTCHAT_FRAME_BURST": "1000",
    # Every bench client is a new identity from 127.0.0.1.
    "QUARTCHAT_NEW_IDENTITY_RATE": "10000",
    "QUARTCHAT_NEW_IDENTITY_BURST": "100000",
    # One setup client makes every room of a --rooms run.
    "QUARTCHAT_ROOM_RATE": "10000",
    "QUARTCHAT_ROOM_BURST": "100000",
}


@dataclass(frozen=True, slots=True)
class Plan:
    modes: list[str]
    receivers: list[int]
    rates: list[float]
    senders: int
    duration: float
    p99_ms: float
    stop_on_miss: bool
    json_path: Path
    #: Processes the bench spreads its receivers over (its ``--procs``).
    procs: int = 1
    #: The bench's ``--check-after``: receivers check their frames after the run.
    check_after: bool = False


def parse_args(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        description="Run scripts/bench.py against SQLite and Redis modes, back to back.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--modes", default="sqlite,redis1,redis2", help=f"of {', '.join(MODES)}")
    parser.add_argument("--receivers", default="100,1000", help="receiver counts, comma-separated")
    parser.add_argument("--rates", default="40", help="total msg/s, comma-separated, in order")
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of sending")
    parser.add_argument("--p99-ms", type=float, default=250.0, help="delivery p99 to hold a rate")
    parser.add_argument("--stop-on-miss", action="store_true", help="stop a mode's rates at a miss")
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="results file")
    parser.add_argument(
        "--procs", type=int, default=1, help="bench.py processes for the receivers (its --procs)"
    )
    parser.add_argument(
        "--check-after",
        action="store_true",
        help="bench.py's --check-after: receivers check every frame after the run, so the"
        " generator takes less of the cores the workers share",
    )
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    if unknown := [m for m in modes if m not in MODES]:
        parser.error(f"unknown mode(s) {unknown}: choose from {list(MODES)}")
    try:
        receivers = [int(r) for r in args.receivers.split(",")]
        rates = [float(r) for r in args.rates.split(",")]
    except ValueError as exc:
        parser.error(str(exc))
    if any(MODES[m][1] for m in modes) and shutil.which("redis-server") is None:
        parser.error("redis-server is not installed")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Plan(
        modes=modes,
        receivers=receivers,
        rates=rates,
        senders=args.senders,
        duration=args.duration,
        p99_ms=args.p99_ms,
        stop_on_miss=args.stop_on_miss,
        json_path=args.json_path or REPO_ROOT / "bench-results" / f"backends-{stamp}.json",
        procs=args.procs,
        check_after=args.check_after,
    )


def note(text: str) -> None:
    print(f"[bench_backends] {text}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def wait_until(check: Any, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited at start (status {process.returncode})")
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer within {START_TIMEOUT} s")


@contextmanager
def running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, stopped with SIGTERM (then SIGKILL) at the end."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@contextmanager
def serving(mode: str, workdir: Path) -> Iterator[tuple[list[str], list[int]]]:
    """The servers of ``mode``: their chat URLs and the pids to sample."""
    workers, with_redis = MODES[mode]
    env = {**os.environ, **BENCH_ENV, "QUARTCHAT_DB": str(workdir / "chat.db")}
    pids: list[int] = []
    with ExitStack() as stack:
        if with_redis:
            port = free_port()
            redis = stack.enter_context(
                running(
                    [
                        "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                        "--dir", str(workdir), "--appendonly", "yes",
                        "--appendfsync", "everysec", "--save", "",
                    ],
                    env,
                    workdir / "redis.log",
                )
            )  # fmt: skip
            wait_until(lambda: redis_answers(port), redis, "redis-server")
            env["QUARTCHAT_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
            pids.append(redis.pid)
        urls = []
        for index in range(workers):
            port = free_port()
            server = stack.enter_context(
                running(
                    [str(Path(sys.executable).parent / "quartchat"), "--bind", f"127.0.0.1:{port}"],
                    env,
                    workdir / f"worker{index}.log",
                )
            )
            wait_until(lambda port=port: healthy(port), server, f"worker {index}")
            urls.append(f"ws://127.0.0.1:{port}/ws")
            pids.insert(index, server.pid)
        yield urls, pids


def one_run(plan: Plan, mode: str, receivers: int, rate: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{mode}-") as tmp:
        workdir = Path(tmp)
        with serving(mode, workdir) as (urls, pids):
            result_path = workdir / "bench.json"
            argv = [sys.executable, str(BENCH)]
            for url in urls:
                argv += ["--url", url]
            for pid in pids:
                argv += ["--server-pid", str(pid)]
            argv += [
                "--receivers", str(receivers), "--senders", str(plan.senders),
                "--rate", f"{rate:g}", "--duration", f"{plan.duration:g}",
                "--json", str(result_path), "--procs", str(plan.procs),
            ]  # fmt: skip
            if plan.check_after:
                argv.append("--check-after")
            load_before = load_average()
            note(f"{mode}, {receivers} receivers, {rate:g} msg/s: {' '.join(argv[1:])}")
            status = subprocess.run(argv, stdout=subprocess.DEVNULL, check=False).returncode
            load_after = load_average()
            bench = json.loads(result_path.read_text()) if result_path.exists() else None
    row = summarize_run(plan, bench)
    row.update(
        mode=mode,
        receivers=receivers,
        rate=rate,
        bench_status=status,
        load_before=load_before,
        load_after=load_after,
    )
    note(format_row(row))
    return {"row": row, "bench": bench}


def summarize_run(plan: Plan, bench: dict[str, Any] | None) -> dict[str, Any]:
    if bench is None:
        return {"passed": False, "holds": False}
    deliveries, server = bench["deliveries"], bench["server"] or {}
    gen = bench["generator"]
    p99 = bench["latency_ms"]["delivery"]["p99"]
    busy_seconds = bench["sending"]["send_seconds"] + gen["drain_seconds"]
    cpu_pct = server.get("cpu_pct_send_and_drain")
    cpu_us = None
    if cpu_pct is not None and deliveries["received"]:
        cpu_us = round(cpu_pct / 100 * busy_seconds / deliveries["received"] * 1e6, 2)
    frames = deliveries.get("message_frames")
    return {
        "passed": bench["pass"],
        "holds": bool(bench["pass"] and p99 is not None and p99 < plan.p99_ms),
        "connected": bench["clients"]["receivers_connected"],
        "acked": bench["sending"]["acked"],
        "expected": deliveries["expected"],
        "received": deliveries["received"],
        "deliveries_per_s": deliveries["per_second"],
        "lost": deliveries["lost"],
        "duplicated": deliveries["duplicated"],
        "out_of_order": deliveries["out_of_order"],
        "p50_ms": bench["latency_ms"]["delivery"]["p50"],
        "p99_ms": p99,
        "cpu_pct": cpu_pct,
        "cpu_us_per_delivery": cpu_us,
        # Messages per frame that carried any: the flush windows' coalescing,
        # which CPU per delivery depends on.
        "deliveries_per_frame": round(deliveries["received"] / frames, 2) if frames else None,
        "rss_mb": server.get("rss_mb_end"),
        "generator_lag_p99_ms": gen["loop_lag_ms"]["p99"],
    }


COLUMNS = [
    ("mode", "mode"), ("recv", "receivers"), ("msg/s", "rate"), ("deliv/s", "deliveries_per_s"),
    ("lost", "lost"), ("dup", "duplicated"), ("ooo", "out_of_order"), ("p50 ms", "p50_ms"),
    ("p99 ms", "p99_ms"), ("CPU %", "cpu_pct"), ("CPU µs/deliv", "cpu_us_per_delivery"),
    ("deliv/frame", "deliveries_per_frame"),
    ("RSS MB", "rss_mb"), ("holds", "holds"), ("load before/after", "load"),
]  # fmt: skip


def cell(row: dict[str, Any], key: str) -> str:
    if key == "receivers":  # connected of asked: a storm can outlast the connect phase
        return f"{row.get('connected', '-')}/{row['receivers']}"
    if key == "load":
        return f"{row['load_before'][0]:.2f} / {row['load_after'][0]:.2f}"
    value = row.get(key)
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


def format_row(row: dict[str, Any]) -> str:
    return "  ".join(f"{title}={cell(row, key)}" for title, key in COLUMNS)


def print_table(rows: list[dict[str, Any]]) -> None:
    """A Markdown table, ready for docs/performance.md."""
    print("| " + " | ".join(title for title, _ in COLUMNS) + " |")
    print("|" + " --- |" * len(COLUMNS))
    for row in rows:
        print("| " + " | ".join(cell(row, key) for _, key in COLUMNS) + " |")


def main(argv: list[str] | None = None) -> int:
    plan = parse_args(argv)
    runs = []
    for receivers in plan.receivers:
        for mode in plan.modes:
            for rate in plan.rates:
                run = one_run(plan, mode, receivers, rate)
                runs.append(run)
                if plan.stop_on_miss and not run["row"]["holds"]:
                    break
    rows = [run["row"] for run in runs]
    print_table(rows)
    plan.json_path.parent.mkdir(parents=True, exist_ok=True)
    plan.json_path.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    print(f"json    {plan.json_path}")
    return 0 if all(row["passed"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
