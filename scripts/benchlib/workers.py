"""``--procs N``: receivers spread over N processes, so that reading their
frames is not limited to one core.

This process keeps the senders, the acks, every receiver whose index is a
multiple of N and the verdict. Worker process k (1 <= k < N) runs the
receivers with index % N == k: it connects them, reports when all have
tried, reports a status line each STATUS_INTERVAL (open clients, first
deliveries, and the fewest first deliveries of any open client, which the
drain compares with the acks), and on ``stop`` closes them and writes what
each one received (ids seen, duplicates, out-of-order, echoes) with its
latency samples. The run then checks every inbox as if it had been read
here, so lost / duplicated / out-of-order / echo counts stay exact.

Lines on the worker's stdout are JSON objects; the parent writes ``stop``
to its stdin. Every process runs Trio on ``SharedClock`` (the system's
monotonic clock), so a send time written by this process and a delivery
time read in a worker are on one clock.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio

from .checker import Inbox
from .config import Config

#: Seconds between a worker's status lines.
STATUS_INTERVAL = 0.1
#: Seconds a worker has to start, connect its receivers and say so, beyond the connect limit.
WORKER_START_MARGIN = 30.0
#: Seconds a worker has, after ``stop``, to close its clients and write its results.
RESULT_TIMEOUT = 60.0
SCRIPTS_DIR = Path(__file__).resolve().parents[1]


class SharedClock(trio.abc.Clock):
    """Trio's time as the system's monotonic clock: the same in every process."""

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return time.monotonic()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return deadline - time.monotonic()


def shares(receivers: int, procs: int) -> list[range]:
    """Receiver indices of each process: process k gets those with index % procs == k."""
    return [range(k, receivers, procs) for k in range(procs)]


# ---------------------------------------------------------------- parent side


@dataclass(slots=True, eq=False)
class Worker:
    """One worker process as the parent sees it."""

    index: int
    share: range
    process: trio.Process | None = None
    connected: trio.Event = field(default_factory=trio.Event)
    finished: trio.Event = field(default_factory=trio.Event)
    open: int = 0
    received: int = 0
    #: Fewest first deliveries of any open client (None: no open client);
    #: with --rooms, of any open client in each room (room index -> count).
    min_seen: int | None = None
    min_by_room: dict[int, int] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None

    async def stop(self) -> None:
        """Ask the worker to close its clients and report."""
        if self.process is not None and self.process.stdin is not None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self.process.stdin.send_all(b"stop\n")


def worker_command(cfg: Config, run: str, index: int, room_ids: list[str]) -> list[str]:
    spec = {
        **asdict(cfg),
        "json_path": str(cfg.json_path),
        "run": run,
        "worker": index,
        "room_ids": room_ids,
    }
    code = (
        f"import sys; sys.path.insert(0, {str(SCRIPTS_DIR)!r});"
        " from benchlib.workers import worker_main; sys.exit(worker_main(sys.argv[1]))"
    )
    return [sys.executable, "-c", code, json.dumps(spec)]


async def spawn(worker: Worker, cfg: Config, run: str, room_ids: list[str]) -> None:
    """Start worker process ``worker.index`` (``follow`` then reads it)."""
    try:
        worker.process = await trio.lowlevel.open_process(
            worker_command(cfg, run, worker.index, room_ids),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
    except OSError as exc:
        worker.error = f"could not start: {exc}"
        worker.connected.set()
        worker.finished.set()


async def follow(worker: Worker) -> None:
    """Follow a started worker's lines until it ends."""
    process = worker.process
    if process is None:
        return
    assert process.stdout is not None
    pending = bytearray()
    try:
        while True:
            chunk = await process.stdout.receive_some(1 << 20)
            if not chunk:
                break
            start = len(pending)
            pending += chunk
            if b"\n" not in chunk:
                continue
            end = pending.rindex(b"\n", start)
            for line in bytes(pending[: end + 1]).splitlines():
                on_line(worker, json.loads(line))
            del pending[: end + 1]
    finally:
        with trio.CancelScope(shield=True):
            with trio.move_on_after(5):
                await process.wait()
            if process.returncode is None:  # hung, or the run was cut: do not leave it behind
                process.kill()
                await process.wait()
        if worker.result is None and worker.error is None:
            worker.error = f"ended with status {process.returncode} before its results"
        worker.open = 0
        worker.connected.set()
        worker.finished.set()


def on_line(worker: Worker, obj: dict[str, Any]) -> None:
    event = obj.get("event")
    if event == "connected":
        worker.connected.set()
    elif event == "status":
        worker.open, worker.received, worker.min_seen = (
            obj["open"],
            obj["received"],
            obj["min_seen"],
        )
        worker.min_by_room = {int(room): seen for room, seen in obj["min_by_room"].items()}
    elif event == "result":
        worker.result = obj


def inbox_record(inbox: Inbox) -> dict[str, Any]:
    """A receiver's inbox as a worker sends it (``inbox_from`` reads it back)."""
    return {
        "rooms": None if inbox.rooms is None else sorted(inbox.rooms),
        "seen": sorted(inbox.seen),
        "last_id": inbox.last_id,
        "duplicates": inbox.duplicates,
        "out_of_order": inbox.out_of_order,
        "echoes": inbox.echoes,
    }


def inbox_from(record: dict[str, Any]) -> Inbox:
    rooms = record.get("rooms")
    return Inbox(
        sender_index=None,
        rooms=None if rooms is None else frozenset(rooms),
        seen=set(record["seen"]),
        last_id=record["last_id"],
        duplicates=record["duplicates"],
        out_of_order=record["out_of_order"],
        echoes=record["echoes"],
    )


# ---------------------------------------------------------------- worker side


def config_from(spec: dict[str, Any]) -> Config:
    fields = {name: spec[name] for name in Config.__dataclass_fields__}
    fields["urls"] = tuple(fields["urls"])
    fields["server_pids"] = tuple(fields["server_pids"])
    fields["json_path"] = Path(fields["json_path"])
    return Config(**fields)


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def worker_main(spec_text: str) -> int:
    """The worker process: its receivers, from connect to close, then its results."""
    from . import load  # the worker runs load's client code

    spec = json.loads(spec_text)
    cfg = config_from(spec)
    index = spec["worker"]
    share = shares(cfg.receivers, cfg.procs)[index]
    bench = load.Bench.create(cfg, run=spec["run"], share=share, room_ids=spec["room_ids"])
    trio.run(worker_bench, bench, clock=SharedClock())
    load.check_recorded(bench)
    emit({"event": "result", **load.worker_results(bench)})
    return 0


async def worker_bench(bench: Any) -> None:
    from . import load

    limit = load.hard_limit(bench.cfg)
    with trio.move_on_after(limit):
        async with trio.open_nursery() as nursery:
            await load.connect_group(bench, nursery, bench.local_receivers)
            emit({"event": "connected"})
            nursery.start_soon(status_task, bench)
            # Until the parent says stop, or goes away (its end of the pipe closes).
            await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            await load.close_phase(bench, nursery)


async def status_task(bench: Any) -> None:
    last: dict[str, Any] | None = None
    for _ in range(math.ceil(86400 / STATUS_INTERVAL)):
        opened = [c for c in bench.local_receivers if c.open]
        status = {
            "open": len(opened),
            "received": bench.received_here(),
            "min_seen": None
            if bench.cfg.rooms
            else min((c.messages_in for c in opened), default=None),
            "min_by_room": min_by_room(opened),
        }
        if status != last:
            emit({"event": "status", **status})
            last = status
        await trio.sleep(STATUS_INTERVAL)


def min_by_room(clients: list[Any]) -> dict[str, int]:
    """--rooms: the fewest first deliveries of any of ``clients`` in each room
    (keys are JSON's strings); empty without rooms."""
    fewest: dict[str, int] = {}
    for client in clients:
        for room in client.inbox.rooms or ():
            key = str(room)
            fewest[key] = min(fewest.get(key, client.messages_in), client.messages_in)
    return fewest
