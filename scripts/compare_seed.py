"""quartchat against the tutorial's Node server, case by case: the tables of
docs/performance.md ("Against the seed").

Each case is one run of the team's comparison kit, ``compare.sh`` (kept
beside the checkout in ``../shared/peer/``, not in this repository): it
starts the seed's server and then quartchat (one hypercorn worker on a fresh
SQLite file, from the venv given), each pinned to core 0, and drives both
with the same Node load generator pinned to core 1. This script runs the
cases one after the other, shows each summary line as it arrives, and ends
with one table and a JSON file (``bench-results/seed-<timestamp>.json``).

Usage, from the repository root::

    ulimit -n 16384
    .venv/bin/python scripts/compare_seed.py                  # every case
    .venv/bin/python scripts/compare_seed.py --cases fanout-40,ingest

The per-user and per-connection limits and the new-identity limit are
raised for quartchat's runs (every generator client is a new user from
127.0.0.1 and a sender may need more than 10 messages/s); the seed has no
such limits. Exit status: 0 when every case ran, 1 when one gave no figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KIT = REPO_ROOT.parent / "shared" / "peer" / "compare.sh"
#: Limits raised so that only the server's speed limits the load.
LIMITS_ENV = {
    "QUARTCHAT_SEND_RATE": "100000",
    "QUARTCHAT_SEND_BURST": "100000",
    "QUARTCHAT_FRAME_RATE": "100000",
    "QUARTCHAT_FRAME_BURST": "100000",
    "QUARTCHAT_NEW_IDENTITY_RATE": "100000",
    "QUARTCHAT_NEW_IDENTITY_BURST": "100000",
}
#: Each case: what it shows, and its load.js options (10 s of sending each).
CASES: dict[str, tuple[str, list[str]]] = {
    "fanout-40": ("1000 receivers, 40 msg/s", ["--receivers=1000", "--rate=40"]),
    "fanout-40-deflate": (
        "1000 receivers, 40 msg/s, clients offer deflate",
        ["--receivers=1000", "--rate=40", "--deflate=1"],
    ),
    "fanout-80": ("1000 receivers, 80 msg/s", ["--receivers=1000", "--rate=80"]),
    "fanout-100": ("1000 receivers, 100 msg/s", ["--receivers=1000", "--rate=100"]),
    "fanout-120": ("1000 receivers, 120 msg/s", ["--receivers=1000", "--rate=120"]),
    "small-400": ("100 receivers, 400 msg/s", ["--receivers=100", "--rate=400"]),
    "ingest": ("10 receivers, closed loop (ingest)", ["--receivers=10", "--rate=0"]),
}
COMMON = ["--senders=10", "--duration=10"]
#: One summary line of compare.sh, e.g. ``seed: N=100 R=40 acked=400/400 ...``.
SUMMARY = re.compile(
    r"^(?P<server>seed|quartchat): N=(?P<receivers>\d+) R=(?P<rate>\S+) "
    r"acked=(?P<acked>\d+)/(?P<sent>\d+) deliv=(?P<got>\d+)/(?P<expected>\d+) "
    r"dps=(?P<dps>\d+) p50=(?P<p50>[\d.]+) p99=(?P<p99>[\d.]+) max=(?P<max>[\d.]+) "
    r"srvCPU=(?P<cpu>\d+)% rss=(?P<rss>[\d.]+)MB genCPU=(?P<gen>\d+)%"
)


def parse_summary(line: str) -> dict[str, Any] | None:
    """The figures of one compare.sh summary line, or None for other lines."""
    found = SUMMARY.match(line.strip())
    if found is None:
        return None
    raw = found.groupdict()
    figures: dict[str, Any] = {"server": raw.pop("server"), "rate": raw.pop("rate")}
    for key, value in raw.items():
        figures[key] = float(value) if "." in value else int(value)
    figures["lost"] = figures["expected"] - figures["got"]
    return figures


def run_case(kit: Path, venv: Path, options: list[str]) -> list[dict[str, Any]]:
    """Run compare.sh once; echo its lines; return its summaries (seed, quartchat)."""
    env = {**os.environ, **LIMITS_ENV}
    command = ["bash", str(kit), str(REPO_ROOT), str(venv), *COMMON, *options]
    print("$ " + " ".join(command[1:]), file=sys.stderr, flush=True)
    proc = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    assert proc.stdout is not None
    summaries = []
    for line in proc.stdout:
        print("  " + line.rstrip(), file=sys.stderr, flush=True)
        figures = parse_summary(line)
        if figures is not None:
            summaries.append(figures)
    proc.wait()
    return summaries


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    head = (
        "| case | server | acked | lost | deliveries/s | p50 ms | p99 ms | CPU % | RSS MB |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    rows = [head]
    for name, summaries in results.items():
        for s in summaries:
            rows.append(
                f"| {CASES[name][0]} | {s['server']} | {s['acked']}/{s['sent']} | {s['lost']} "
                f"| {s['dps']:,} | {s['p50']:g} | {s['p99']:g} | {s['cpu']} | {s['rss']:g} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--kit", type=Path, default=DEFAULT_KIT, help="path of compare.sh")
    parser.add_argument("--venv", type=Path, default=REPO_ROOT / ".venv", help="quartchat's venv")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench-results")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASES]
    if unknown or not args.kit.is_file():
        problem = f"unknown cases {unknown}" if unknown else f"no compare.sh at {args.kit}"
        parser.error(f"{problem} (cases: {', '.join(CASES)})")

    results: dict[str, list[dict[str, Any]]] = {}
    runs = []
    for number, name in enumerate(names, 1):
        print(f"[compare_seed] case {number}/{len(names)}: {name}", file=sys.stderr, flush=True)
        before = os.getloadavg()[0]
        started = time.time()
        results[name] = run_case(args.kit, args.venv, CASES[name][1])
        runs.append(
            {
                "case": name,
                "what": CASES[name][0],
                "options": COMMON + CASES[name][1],
                "summaries": results[name],
                "load_before_after": [before, os.getloadavg()[0]],
                "seconds": round(time.time() - started, 1),
            }
        )
    print(table(results))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"seed-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps({"env": LIMITS_ENV, "runs": runs}, indent=2))
    print(f"json    {path}")
    return 0 if all(len(s) == 2 for s in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
