"""The connection cases: many clients connect and then stay idle.

``--storm N``: N new users connect, ``--storm-concurrency`` handshakes at a
time (as after a restart); reported: seconds until all are welcomed, each
handshake's time, and the presence objects (and frames, bytes) each client
got by the time everything settled: when every client knows of everyone
welcomed (its welcome's online list plus the presence objects after it),
which the run checks.

``--idle N``: N welcomed connections, all tabs of one user (so no presence
storm and no new-identity limit), then quiet; reported: the server's RSS
per connection (with ``--server-pid``). ``--hold S`` keeps either case's
connections open S seconds more once settled and reports the server's CPU
over them: what idle connections cost it (pings, and reading the answers).

Both use ``fastws``, whose ``--deflate`` offers permessage-deflate as
browsers do. A storm of N clients sends each about N presence objects (a
gigabyte at 5,000), so objects are counted by the type their line starts
with, not decoded one by one (decoding them was half the generator's CPU).
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trio

from .config import Config
from .fastws import Closed, FastClient, open_fast
from .output import Row, fmt_count, fmt_latency, fmt_values, percentiles_ms, show_progress
from .procstats import ProcProbe

#: Seconds one client has for TCP connect, upgrade, hello and welcome.
HANDSHAKE_TIMEOUT = 30.0
#: Seconds every client together has to connect.
CONNECT_LIMIT = 600.0
#: Once all are connected (--idle): wait until no presence object arrived for this long...
QUIET_SECONDS = 2.0
#: ...but no longer than this, then measure.
SETTLE_LIMIT = 60.0
PROGRESS_INTERVAL = 1.0
PHASES = {
    "connect": ("before_connect", "connected"),
    "settle": ("connected", "settled"),
    "hold": ("settled", "held"),
}
POINTS = {
    "before_connect": "before_connect",
    "connected": "connected",
    "settled": "settled",
    "held": "held",
}
#: How the lines of two kinds start: the server writes each object as compact
#: JSON on one line, "type" first (a raw newline only ever ends a line).
PRESENCE_HEAD = '{"type":"presence"'
WELCOME_HEAD = '{"type":"welcome"'


@dataclass(slots=True, eq=False)
class Held:
    """One welcomed client, and the objects it got by type."""

    ws: FastClient
    objects: Counter[str] = field(default_factory=Counter)
    #: How many users its welcome listed online, itself included.
    listed: int = 0

    def knows(self) -> int:
        """How many users it has heard of: its list, then one per presence
        object (in a storm nobody leaves or is renamed, so each is a join)."""
        return self.listed + self.objects["presence"]


def count_objects(text: str, into: Counter[str]) -> None:
    """Count the objects of one frame by type: presence lines by their start,
    at C speed; any other line is decoded (``malformed`` if it is not an object)."""
    lines = text.count("\n") + 1
    presence = text.count("\n" + PRESENCE_HEAD) + text.startswith(PRESENCE_HEAD)
    into["presence"] += presence
    if presence == lines:
        return
    for line in text.split("\n"):
        if line.startswith(PRESENCE_HEAD):
            continue
        obj = parse_object(line)
        into["malformed" if obj is None else str(obj.get("type"))] += 1


async def greet(url: str, hello: dict[str, Any], deflate: bool) -> tuple[Held, str | None]:
    """Open the socket, send ``hello`` and read up to the welcome; return the
    client and the welcome's token. Only the welcome's start is looked at
    unless its line is short: a storm's welcomes list everyone online.
    Raises ``Closed`` or OSError."""
    held = Held(await open_fast(url, deflate))
    try:
        await held.ws.send_text(json.dumps(hello))
        token: str | None = None
        while not held.objects["welcome"]:
            # Frames that came in the same read as the welcome count too.
            for text in await held.ws.next_texts():
                first, _, rest = text.partition("\n")
                if held.objects["welcome"] or not first.startswith(WELCOME_HEAD):
                    count_objects(text, held.objects)
                    continue
                held.objects["welcome"] += 1
                held.listed = listed_online(first)
                token = _token_of(first)
                if rest:
                    count_objects(rest, held.objects)
        return held, token
    except BaseException:
        await held.ws.aclose()
        raise


def parse_object(line: str) -> dict[str, Any] | None:
    """One line of a server frame as a JSON object, or None if it is not one."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def listed_online(welcome: str) -> int:
    """How many users a welcome line lists online, without decoding it: one
    ``{"id":`` per user, the welcome's own ``user`` first, then the list, up
    to ``"last_id"``, the key after it (protocol 1.1's ``rooms`` and
    ``direct``, further on, hold objects with an ``id`` too). A quote inside
    a string is escaped, so neither pattern matches inside a nick."""
    end = welcome.find(',"last_id":')
    return welcome.count('{"id":', 0, end if end >= 0 else len(welcome)) - 1


def _token_of(welcome: str) -> str | None:
    """The token of a welcome line, found without decoding its online list
    (it comes before the list; a quote inside a string is escaped, so
    ``"token":"`` only matches the key)."""
    key = '"token":"'
    start = welcome.find(key)
    if start < 0:
        return None
    start += len(key)
    end = welcome.find('"', start)
    return welcome[start:end] if end > start else None


@dataclass(slots=True, eq=False)
class Holder:
    """The clients of one run and what happened to them."""

    cfg: Config
    run: str = field(default_factory=lambda: secrets.token_hex(3))
    clients: list[Held] = field(default_factory=list)
    handshakes: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    #: Closes by the server after a client was welcomed.
    closes: Counter[str] = field(default_factory=Counter)
    attempts_left: int = 0
    all_attempted: trio.Event = field(default_factory=trio.Event)
    last_presence: float = 0.0
    phase: str = "connect"
    started: float = 0.0
    connected: float = 0.0
    settled: float = 0.0
    probe: ProcProbe | None = None
    own: ProcProbe = field(default_factory=lambda: ProcProbe((os.getpid(),)))
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def mark(self, name: str) -> None:
        self.own.mark(name)
        if self.probe is not None:
            self.probe.mark(name)

    def attempted(self) -> None:
        self.attempts_left -= 1
        if self.attempts_left <= 0:
            self.all_attempted.set()


def hello(nick: str | None, token: str | None) -> dict[str, Any]:
    return {"type": "hello", "token": token, "nick": nick, "last_id": None, "epoch": None}


async def hold_one(
    holder: Holder,
    url: str,
    greeting: dict[str, Any],
    limiter: trio.CapacityLimiter,
    task_status: trio.TaskStatus[str | None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Connect (within the limiter), report the welcome's token, then read until cancelled."""
    async with limiter:
        began = trio.current_time()
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                client, token = await greet(url, greeting, holder.cfg.deflate)
        except (OSError, Closed, trio.TooSlowError) as exc:
            label = exc.label if isinstance(exc, Closed) else type(exc).__name__
            holder.failures[label] += 1
            holder.attempted()
            task_status.started(None)
            return
    holder.handshakes.append(trio.current_time() - began)
    holder.clients.append(client)
    holder.attempted()
    task_status.started(token)
    try:
        while True:
            texts = await client.ws.next_texts()
            seen = client.objects["presence"]
            for text in texts:
                count_objects(text, client.objects)
            if client.objects["presence"] != seen:
                holder.last_presence = trio.current_time()
    except (OSError, Closed) as exc:
        holder.closes[exc.label if isinstance(exc, Closed) else type(exc).__name__] += 1
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            await client.ws.aclose()


async def connect_all(holder: Holder, nursery: trio.Nursery) -> None:
    """Start every client; idle clients are tabs of the first one's user."""
    cfg = holder.cfg
    limiter = trio.CapacityLimiter(cfg.connect_concurrency)
    holder.attempts_left = cfg.clients
    token = None
    first = 0
    if cfg.mode == "idle":
        token = await nursery.start(hold_one, holder, cfg.urls[0], hello(None, None), limiter)
        first = 1
    for i in range(first, cfg.clients):
        url = cfg.urls[i % len(cfg.urls)]
        nick = f"c{i}-{holder.run}" if cfg.mode == "storm" else None
        nursery.start_soon(hold_one, holder, url, hello(nick, token), limiter)
    with trio.move_on_after(CONNECT_LIMIT):
        await holder.all_attempted.wait()


async def settle(holder: Holder) -> None:
    """Wait (at most SETTLE_LIMIT) until every client of a storm knows of
    everyone welcomed, or until presence has been quiet for QUIET_SECONDS."""
    deadline = trio.current_time() + SETTLE_LIMIT
    if holder.cfg.mode == "storm":
        everyone = len(holder.clients)
        with trio.move_on_at(deadline):
            while any(c.knows() < everyone for c in holder.clients):  # noqa: ASYNC110
                await trio.sleep(0.1)  # the clients' reader tasks move the counts
        return
    holder.last_presence = max(holder.last_presence, trio.current_time())
    for _ in range(math.ceil(SETTLE_LIMIT / QUIET_SECONDS) + 1):
        quiet_at = min(deadline, holder.last_presence + QUIET_SECONDS)
        if trio.current_time() >= quiet_at:
            return
        await trio.sleep_until(quiet_at)


async def progress_task(holder: Holder) -> None:
    limit = CONNECT_LIMIT + SETTLE_LIMIT + holder.cfg.hold
    for _ in range(math.ceil(limit / PROGRESS_INTERVAL) + 10):
        holder.own.sample()
        if holder.probe is not None:
            holder.probe.sample()
        presence = sum(c.objects["presence"] for c in holder.clients)
        show_progress(
            f"[{holder.phase:<7}] {trio.current_time() - holder.started:6.1f}s"
            f"  welcomed {len(holder.clients)}/{holder.cfg.clients}"
            f"  failed {sum(holder.failures.values())}  presence objects {presence}"
        )
        await trio.sleep(PROGRESS_INTERVAL)


async def run_holder(holder: Holder) -> None:
    holder.started = trio.current_time()
    holder.mark("before_connect")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(progress_task, holder)
        await connect_all(holder, nursery)
        holder.connected = trio.current_time()
        holder.mark("connected")
        holder.phase = "settle"
        await settle(holder)
        holder.settled = trio.current_time()
        holder.mark("settled")
        if holder.cfg.hold:
            holder.phase = "hold"
            await trio.sleep(holder.cfg.hold)
            holder.mark("held")
        holder.phase = "close"
        nursery.cancel_scope.cancel()


def per_client(values: list[int]) -> dict[str, float | int | None]:
    if not values:
        return {"mean": None, "max": None, "min": None, "total": 0}
    return {
        "mean": round(sum(values) / len(values), 1),
        "min": min(values),
        "max": max(values),
        "total": sum(values),
    }


def summarize(holder: Holder) -> dict[str, Any]:
    cfg, clients = holder.cfg, holder.clients
    welcomed = len(clients)
    server = None
    if holder.probe is not None:
        server = holder.probe.summary(PHASES, POINTS)
        before, after = holder.probe.marks.get("before_connect"), holder.probe.marks.get("settled")
        per_conn = None
        if before is not None and after is not None and welcomed:
            per_conn = round((after.rss_kb - before.rss_kb) / welcomed, 1)
        server["kb_per_connection"] = per_conn
    unaware = sum(c.knows() != welcomed for c in clients) if cfg.mode == "storm" else 0
    failures = [
        reason
        for failed, reason in (
            (welcomed < cfg.clients, f"{cfg.clients - welcomed} clients not welcomed"),
            (unaware > 0, f"{unaware} clients do not know of exactly the {welcomed} welcomed"),
            (bool(holder.closes), f"{sum(holder.closes.values())} closed by the server"),
        )
        if failed
    ]
    return {
        "case": cfg.mode,
        "run": holder.run,
        "started_at": holder.started_at,
        "config": {
            "urls": list(cfg.urls),
            "clients": cfg.clients,
            "concurrency": cfg.connect_concurrency,
            "deflate_offered": cfg.deflate,
            "hold_seconds": cfg.hold,
        },
        "clients": {
            "welcomed": welcomed,
            "failed": sum(holder.failures.values()),
            "failures": dict(holder.failures),
            "closed_by_server": dict(holder.closes),
            "deflate_accepted": sum(c.ws.deflate_accepted for c in clients),
            "seconds_until_all_welcomed": round(holder.connected - holder.started, 3),
            "settle_seconds": round(holder.settled - holder.connected, 3),
            "knowing_everyone": len(clients) - unaware if cfg.mode == "storm" else None,
            # The first few that do not, as (listed in the welcome, presence
            # objects after it): a count above everyone is a notice heard twice.
            "not_knowing": [
                (c.listed, c.objects["presence"]) for c in clients if c.knows() != welcomed
            ][:20],
            "handshake_ms": percentiles_ms(holder.handshakes),
        },
        "received_per_client": {
            "presence_objects": per_client([c.objects["presence"] for c in clients]),
            "objects": per_client([sum(c.objects.values()) for c in clients]),
            "frames": per_client([c.ws.frames for c in clients]),
            "bytes": per_client([c.ws.bytes_received for c in clients]),
        },
        "server": server,
        "generator": holder.own.summary(PHASES, POINTS),
        "pass": not failures,
        "failures": failures,
    }


def fmt_spread(figures: dict[str, Any]) -> str:
    if figures["mean"] is None:
        return "n/a"
    return "  ".join(f"{name} {figures[name]}" for name in ("mean", "min", "max", "total"))


def report_rows(res: dict[str, Any]) -> list[Row]:
    cl, got, cfg = res["clients"], res["received_per_client"], res["config"]
    closes = cl["closed_by_server"]
    rows: list[Row] = [
        ("clients", ""),
        ("welcomed", f"{cl['welcomed']} / {cfg['clients']}  ({cfg['concurrency']} at a time)"),
        ("failed", fmt_count(cl["failed"], cl["failures"])),
        ("closed by the server", fmt_count(sum(closes.values()), closes)),
        ("deflate offered / accepted", f"{cfg['deflate_offered']} / {cl['deflate_accepted']}"),
        ("s until all welcomed", str(cl["seconds_until_all_welcomed"])),
        ("handshake ms", fmt_latency(cl["handshake_ms"])),
        ("s settling", str(cl["settle_seconds"])),
    ]
    if cl["knowing_everyone"] is not None:
        knowing = f"{cl['knowing_everyone']} / {cl['welcomed']}"
        rows.append(("knowing of everyone welcomed", knowing))
    rows += [
        ("received per client", ""),
        ("presence objects", fmt_spread(got["presence_objects"])),
        ("objects", fmt_spread(got["objects"])),
        ("frames", fmt_spread(got["frames"])),
        ("bytes", fmt_spread(got["bytes"])),
    ]
    for title, proc in (("server", res["server"]), ("generator (this process)", res["generator"])):
        if proc is None:
            continue
        if title == "server":
            title = f"server pids {' + '.join(str(pid) for pid in proc['pids'])} (added up)"
        cpu = (proc["cpu_pct_connect"], proc["cpu_pct_settle"])
        rss = (proc["rss_mb_before_connect"], proc["rss_mb_connected"], proc["rss_mb_settled"])
        rows += [
            (title, ""),
            ("CPU % connect / settle", fmt_values(cpu)),
            ("RSS MB start / connected / settled", fmt_values(rss)),
        ]
        if "kb_per_connection" in proc:
            per_conn = fmt_values((proc["kb_per_connection"],))
            rows.append(("KB per connection (settled - start)", per_conn))
        if res["config"]["hold_seconds"]:
            held = f"{fmt_values((proc['cpu_pct_hold'],))} over {res['config']['hold_seconds']} s"
            rows.append(("CPU % holding them idle", held))
    return rows


def run(cfg: Config) -> dict[str, Any]:
    """Run --storm or --idle and return its results."""
    holder = Holder(cfg, probe=ProcProbe(cfg.server_pids) if cfg.server_pids else None)
    trio.run(run_holder, holder)
    return summarize(holder)
