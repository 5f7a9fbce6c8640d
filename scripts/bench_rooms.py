"""Issue 21's rooms benchmark: what a room's message costs the server when
the chat holds many other rooms and connections.

At each total rate R (msg/s, spread over the rooms) this runs two cases
back to back, each on a fresh one-process SQLite server (as
``bench_backends.py --modes sqlite`` starts it, with the per-user limits
raised), driven by ``scripts/bench.py --rooms``:

- ``A``: 1000 receivers in 100 public rooms of 10, and 10 senders; message
  i goes to room i mod 100 from sender i mod 10, so each room has exactly
  one sender among its members (room r's is sender r mod 10);
- ``B``: 10 receivers in one public room (a created room, not general, so
  that both cases take the same path in the server), and 1 sender, its
  only sender.

Both cases deliver each message to the 10 receivers of its room and to no
one else (the senders get nothing back), and every user is also in general,
which is quiet. What A adds is the 990 other receivers, the 99 other rooms
and the 9 other senders: the issue wants A's server CPU over the send phase
at most ``--max-ratio`` (1.2) times B's. Latency is the bench's delivery
latency (send to receipt).

Usage, from the repository root (``ulimit -n 4096`` or more)::

    .venv/bin/python scripts/bench_rooms.py
    .venv/bin/python scripts/bench_rooms.py --rates 100,400 --duration 20 --repeat 3

``--repeat K`` runs each pair K times, B first on even repeats and A first on
odd ones, and the ratio is that of the medians. The machine is shared by
the server, the load generator and whatever else runs: ``--wait-load L``
waits before each run until the 1-minute load average is below L, and each
row shows the load before and after it, and the server's CPU over the
settle before sending (what the connects left it to do). Progress goes to stderr (the
bench's own lines included); a table goes to stdout and every run's figures
with the ratios to ``bench-results/rooms-<timestamp>.json``. Exit status: 0
when every run passed the bench's checks (nothing lost, duplicated,
reordered or delivered outside its room) and every ratio is within the
bound, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_backends import BENCH, REPO_ROOT, load_average, serving

#: case -> (receivers, rooms, senders).
CASES = {"A": (1000, 100, 10), "B": (10, 1, 1)}
#: Seconds between the last connect and the first send: 1000 users' joins
#: (presence to everyone online) must be over before the CPU is measured.
SETTLE = 5.0
DRAIN = 60.0
#: --wait-load: most seconds to wait for a quiet machine before a run.
MAX_LOAD_WAIT = 900.0


@dataclass(frozen=True, slots=True)
class Plan:
    rates: list[float]
    duration: float
    repeat: int
    max_ratio: float
    json_path: Path
    #: Wait before each run until the 1-minute load average is below this.
    wait_load: float | None = None


def parse_args(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        description="Issue 21: server CPU of 1000 receivers in 100 rooms against 10 in one.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rates", default="100,400", help="total msg/s, comma-separated")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of sending a run")
    parser.add_argument("--repeat", type=int, default=1, help="pairs of runs at each rate")
    parser.add_argument("--max-ratio", type=float, default=1.2, help="A's CPU over B's at most")
    parser.add_argument(
        "--wait-load",
        type=float,
        default=None,
        metavar="L",
        help="before each run, wait (up to 15 min) until the 1-minute load average is below L:"
        " on a shared machine, other work skews the CPU figures",
    )
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="results file")
    args = parser.parse_args(argv)
    try:
        rates = [float(r) for r in args.rates.split(",")]
    except ValueError as exc:
        parser.error(str(exc))
    if not rates or any(r <= 0 for r in rates):
        parser.error("--rates must be positive numbers")
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat must be 1..20")
    if not 1 <= args.duration <= 600:
        parser.error("--duration must be 1..600")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Plan(
        rates=rates,
        duration=args.duration,
        repeat=args.repeat,
        max_ratio=args.max_ratio,
        json_path=args.json_path or REPO_ROOT / "bench-results" / f"rooms-{stamp}.json",
        wait_load=args.wait_load,
    )


def note(text: str) -> None:
    print(f"[bench_rooms] {text}", file=sys.stderr, flush=True)


def bench_argv(case: str, rate: float, duration: float, url: str, pid: int, out: Path) -> list[str]:
    receivers, rooms, senders = CASES[case]
    return [
        sys.executable, str(BENCH), "--url", url, "--server-pid", str(pid),
        "--rooms", str(rooms), "--receivers", str(receivers), "--senders", str(senders),
        "--rate", f"{rate:g}", "--duration", f"{duration:g}",
        "--settle", f"{SETTLE:g}", "--drain", f"{DRAIN:g}", "--json", str(out),
    ]  # fmt: skip


def wait_for_quiet(limit: float) -> None:
    """Sleep until the 1-minute load average is below ``limit`` (bounded)."""
    deadline = time.monotonic() + MAX_LOAD_WAIT
    while (load := load_average()[0]) >= limit and time.monotonic() < deadline:
        note(f"load average {load:.2f} >= {limit:g}: waiting")
        time.sleep(15)


def one_run(plan: Plan, case: str, rate: float) -> dict[str, Any]:
    """One case at one rate on a fresh server: its row and the bench's JSON."""
    if plan.wait_load is not None:
        wait_for_quiet(plan.wait_load)
    with tempfile.TemporaryDirectory(prefix=f"bench-rooms-{case}-") as tmp:
        workdir = Path(tmp)
        with serving("sqlite", workdir) as (urls, pids):
            out = workdir / "bench.json"
            argv = bench_argv(case, rate, plan.duration, urls[0], pids[0], out)
            note(f"case {case}, {rate:g} msg/s: {' '.join(argv[1:])}")
            load_before = load_average()
            status = subprocess.run(argv, stdout=subprocess.DEVNULL, check=False).returncode
            load_after = load_average()
            bench = json.loads(out.read_text()) if out.exists() else None
    row = summarize(case, rate, bench)
    row.update(bench_status=status, load_before=load_before, load_after=load_after)
    note(format_row(row))
    return {"row": row, "bench": bench}


def summarize(case: str, rate: float, bench: dict[str, Any] | None) -> dict[str, Any]:
    receivers, rooms, senders = CASES[case]
    row: dict[str, Any] = {
        "case": case,
        "rate": rate,
        "receivers": receivers,
        "rooms": rooms,
        "senders": senders,
    }
    if bench is None:
        return {**row, "passed": False}
    server, de = bench["server"] or {}, bench["deliveries"]
    latency = bench["latency_ms"]["delivery"]
    return {
        **row,
        "passed": bench["pass"],
        "failures": bench["failures"],
        "connected": bench["clients"]["receivers_connected"],
        "acked": bench["sending"]["acked"],
        "received": de["received"],
        "expected": de["expected"],
        "lost": de["lost"],
        "leaked": de["leaked"],
        "cpu_pct_settle": server.get("cpu_pct_settle"),
        "cpu_pct_send": server.get("cpu_pct_send"),
        "cpu_pct_send_and_drain": server.get("cpu_pct_send_and_drain"),
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
        "rss_mb": server.get("rss_mb_end"),
        "generator_lag_p99_ms": bench["generator"]["loop_lag_ms"]["p99"],
    }


def median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [row[key] for row in rows if row.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def ratios(plan: Plan, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At each rate: the medians of A and B, and A's CPU over B's."""
    found = []
    for rate in plan.rates:
        a = [r for r in rows if r["rate"] == rate and r["case"] == "A"]
        b = [r for r in rows if r["rate"] == rate and r["case"] == "B"]
        cpu_a, cpu_b = median(a, "cpu_pct_send"), median(b, "cpu_pct_send")
        ratio = round(cpu_a / cpu_b, 2) if cpu_a is not None and cpu_b else None
        found.append(
            {
                "rate": rate,
                "cpu_pct_send_a": cpu_a,
                "cpu_pct_send_b": cpu_b,
                "p99_ms_a": median(a, "p99_ms"),
                "p99_ms_b": median(b, "p99_ms"),
                "ratio": ratio,
                "within": ratio is not None and ratio <= plan.max_ratio,
            }
        )
    return found


COLUMNS = [
    ("R msg/s", "rate"), ("case", "case"), ("receivers", "receivers"), ("rooms", "rooms"),
    ("senders", "senders"), ("CPU % settle", "cpu_pct_settle"), ("CPU % send", "cpu_pct_send"),
    ("CPU % send+drain", "cpu_pct_send_and_drain"), ("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"),
    ("received/expected", "received"), ("lost", "lost"), ("leaked", "leaked"),
    ("RSS MB", "rss_mb"), ("gen lag p99 ms", "generator_lag_p99_ms"), ("pass", "passed"),
    ("load before/after", "load"),
]  # fmt: skip


def cell(row: dict[str, Any], key: str) -> str:
    if key == "received":
        return f"{row.get('received', '-')}/{row.get('expected', '-')}"
    if key == "receivers":
        return f"{row.get('connected', '-')}/{row['receivers']}"
    if key == "load":
        return f"{row['load_before'][0]:.2f} / {row['load_after'][0]:.2f}"
    return plain(row.get(key))


def format_row(row: dict[str, Any]) -> str:
    return "  ".join(f"{title}={cell(row, key)}" for title, key in COLUMNS)


def print_tables(plan: Plan, rows: list[dict[str, Any]], found: list[dict[str, Any]]) -> None:
    """Markdown tables: every run, then the ratio at each rate."""
    print("| " + " | ".join(title for title, _ in COLUMNS) + " |")
    print("|" + " --- |" * len(COLUMNS))
    for row in rows:
        print("| " + " | ".join(cell(row, key) for _, key in COLUMNS) + " |")
    print()
    print("| R msg/s | CPU % A | CPU % B | A/B | p99 ms A | p99 ms B | within |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in found:
        cells = [r["rate"], r["cpu_pct_send_a"], r["cpu_pct_send_b"], r["ratio"]]
        cells += [r["p99_ms_a"], r["p99_ms_b"], f"{r['within']} (<= {plan.max_ratio:g})"]
        print("| " + " | ".join(plain(c) for c in cells) + " |")


def plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    plan = parse_args(argv)
    runs = []
    for rate in plan.rates:
        for rep in range(plan.repeat):
            for case in ("B", "A") if rep % 2 == 0 else ("A", "B"):
                runs.append(one_run(plan, case, rate))
    rows = [run["row"] for run in runs]
    found = ratios(plan, rows)
    print_tables(plan, rows, found)
    plan.json_path.parent.mkdir(parents=True, exist_ok=True)
    summary = {"cases": CASES, "max_ratio": plan.max_ratio, "ratios": found, "runs": runs}
    plan.json_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"json    {plan.json_path}")
    passed = all(row["passed"] for row in rows) and all(r["within"] for r in found)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
