"""What every case prints: progress on stderr, a table on stdout, JSON on disk."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

#: A table row: (label, value); an empty value makes the label a section heading.
Row = tuple[str, str]


def warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


def show_progress(line: str) -> None:
    """Rewrite one status line on a terminal; one line each time otherwise."""
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\x1b[K{line}")
    else:
        sys.stderr.write(f"{line}\n")
    sys.stderr.flush()


def end_progress() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()


def percentiles_ms(values: list[float]) -> dict[str, float | None]:
    """Nearest-rank p50/p90/p99 and max of latencies in seconds, as milliseconds."""
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None, "count": 0}
    ordered = sorted(values)

    def rank(q: float) -> float:
        index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
        return round(ordered[index] * 1000, 3)

    return {
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": round(ordered[-1] * 1000, 3),
        "count": len(ordered),
    }


def fmt_counter(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"


def fmt_count(total: int, counts: dict[str, int]) -> str:
    return f"{total}  ({fmt_counter(counts)})" if counts else str(total)


def fmt_values(values: tuple[float | None, ...]) -> str:
    """Numbers joined by " / ", with "-" for a phase that was never reached."""
    return " / ".join("-" if v is None else str(v) for v in values)


def fmt_latency(lat: dict[str, float | None]) -> str:
    if not lat["count"]:
        return "n/a"
    return "  ".join(f"{k} {lat[k]:>8.2f}" for k in ("p50", "p90", "p99", "max"))


def print_report(title: str, rows: list[Row], notes: list[str], failures: list[str]) -> None:
    """The table, any notes, and one result line (PASS, or FAIL with the reasons)."""
    print(title)
    width = max(len(label) for label, _ in rows) + 4
    for label, value in rows:
        print(label if not value else f"  {label:<{width}}{value}")
    for note in notes:
        print(f"note    {note}")
    print("result  " + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))


def write_json(res: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=2) + "\n")
    print(f"json    {path}")
