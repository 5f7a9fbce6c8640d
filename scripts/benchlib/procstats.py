"""CPU time and memory of processes, read from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio


@dataclass(frozen=True, slots=True)
class ProcSample:
    at: float
    cpu_seconds: float
    rss_kb: int
    hwm_kb: int


@dataclass(slots=True)
class ProcProbe:
    """Samples of /proc for some processes (the server's workers and Redis, or
    our own), added up: named marks plus the peak RSS."""

    pids: tuple[int, ...]
    marks: dict[str, ProcSample] = field(default_factory=dict)
    peak_rss_kb: int = 0

    def sample(self) -> ProcSample | None:
        now = trio.current_time()
        samples = [s for s in (read_proc(pid, now) for pid in self.pids) if s is not None]
        if not samples:
            return None
        taken = ProcSample(
            at=now,
            cpu_seconds=sum(s.cpu_seconds for s in samples),
            rss_kb=sum(s.rss_kb for s in samples),
            hwm_kb=sum(s.hwm_kb for s in samples),
        )
        self.peak_rss_kb = max(self.peak_rss_kb, taken.rss_kb)
        return taken

    def mark(self, name: str) -> None:
        taken = self.sample()
        if taken is not None:
            self.marks[name] = taken

    def cpu_pct(self, start: str, end: str) -> float | None:
        """CPU use between two marks, in % of one core."""
        a, b = self.marks.get(start), self.marks.get(end)
        if a is None or b is None or b.at <= a.at:
            return None
        return round((b.cpu_seconds - a.cpu_seconds) / (b.at - a.at) * 100, 1)

    def rss_mb(self, name: str) -> float | None:
        sample = self.marks.get(name)
        return None if sample is None else round(sample.rss_kb / 1024, 1)

    def summary(self, phases: dict[str, tuple[str, str]], points: dict[str, str]) -> dict[str, Any]:
        """CPU % over each named phase (start mark, end mark), RSS at each named
        mark, and the high-water mark at the latest of them that was taken (a
        phase a run skipped, such as ``--hold`` left out, has no mark)."""
        taken = [self.marks[mark] for mark in points.values() if mark in self.marks]
        last = max(taken, key=lambda sample: sample.at, default=None)
        return {
            "pids": list(self.pids),
            **{f"cpu_pct_{name}": self.cpu_pct(*ends) for name, ends in phases.items()},
            **{f"rss_mb_{name}": self.rss_mb(mark) for name, mark in points.items()},
            "rss_mb_peak_sampled": round(self.peak_rss_kb / 1024, 1),
            "vm_hwm_mb": None if last is None else round(last.hwm_kb / 1024, 1),
        }


def read_proc(pid: int, at: float) -> ProcSample | None:
    """CPU seconds (user + system) and memory of ``pid``, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    # Fields after "(comm) " start at field 3 (state); utime and stime are 14 and 15.
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    memory = {}
    for line in status.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, value = line.split()[:2]
            memory[name] = int(value)
    return ProcSample(
        at=at,
        cpu_seconds=ticks / os.sysconf("SC_CLK_TCK"),
        rss_kb=memory.get("VmRSS:", 0),
        hwm_kb=memory.get("VmHWM:", 0),
    )


def child_pids(pid: int) -> list[str]:
    """Pids of the direct children of ``pid`` (empty if unknown)."""
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
