"""Load generator for the quartchat WebSocket server (protocol v1).

Opens many clients against a server on this machine. All of them listen, and a
few (the senders) also send chat messages at a fixed total rate. The send
schedule is open loop and driven by the Trio clock. The tool then checks that
every acknowledged message reached every other connection exactly once, in id
order, and never came back to the connection that sent it. It reports ack and
delivery latency, throughput and error codes, plus the server's memory and
CPU use when given its pid.

Usage, from the repository root with the server running::

    .venv/bin/python scripts/bench.py
    .venv/bin/python scripts/bench.py --receivers 1000 --senders 20 --rate 150 \\
        --duration 30 --server-pid 12345 --json /tmp/bench.json

``--server-pid`` must be a process that serves: hypercorn runs the app in
worker processes spawned by the one you started (``pgrep -P <that pid>``).
Repeat ``--url`` to spread the clients over several servers (workers on
other ports, or hosts) in turn, and ``--server-pid`` to add up the CPU and
memory of several processes (every worker, and Redis).

Options (see ``--help``): ``--url`` (ws://127.0.0.1:8000/ws), ``--receivers``
(100), ``--senders`` (10), ``--rate`` (total msg/s, 40), ``--duration`` (s of
sending, 10), ``--drain`` (most seconds to wait afterwards, 10),
``--server-pid``, ``--json PATH`` (bench-results/bench-<timestamp>.json under
the repository root), ``--connect-concurrency`` (50).

The server limits each user to 10 msg/s (burst 20), so keep rate/senders at 10
or below. Each second a progress line goes to stderr. At the end the tool
prints a table to stdout and writes the figures as JSON. Exit status: 0 when
every planned message was sent and acked and nothing was lost, duplicated,
echoed or reordered; 1 otherwise; 2 on bad usage. Only loopback servers are
accepted.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import re
import resource
import secrets
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    connect_websocket_url,
)
from wsproto.utilities import LocalProtocolError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "ws://127.0.0.1:8000/ws"
#: Server frames may coalesce many objects, so allow large frames.
MAX_MESSAGE_SIZE = 1 << 20
#: Frames trio-websocket buffers per connection before it stops reading the socket.
MESSAGE_QUEUE_SIZE = 32
#: Seconds one client has for TCP connect, upgrade, hello and welcome.
HANDSHAKE_TIMEOUT = 10.0
#: Seconds each connect phase (receivers, then senders) may take in total.
CONNECT_PHASE_LIMIT = 120.0
#: Pause between connecting and sending, so that join presence and backlogs settle.
SETTLE_SECONDS = 1.0
#: A sender that falls this far behind its schedule stops; the rest is "not sent".
SEND_GRACE = 5.0
#: Seconds for closing all sockets at the end.
CLOSE_TIMEOUT = 3.0
#: Added to the sum of all phase limits to get the hard limit of the whole run.
HARD_LIMIT_MARGIN = 30.0
PROGRESS_INTERVAL = 1.0
#: Period of the probe that measures how late this process's own event loop runs.
LAG_PROBE_INTERVAL = 0.01
#: Above this p99 loop lag (ms) the table warns that latencies include generator delay.
LAG_WARN_MS = 50.0
DRAIN_POLL = 0.05
#: Frames read while waiting for ``welcome`` before giving up on the client.
MAX_WELCOME_FRAMES = 100
#: The server's default sustained send rate per user.
PER_USER_RATE = 10.0
MAX_CLIENTS = 20_000
MAX_MESSAGES = 1_000_000
#: Only lines holding one of these words are decoded; presence and typing are skipped.
INTERESTING = re.compile(r'"(?:message|ack|error|welcome)"')


class UsageError(Exception):
    """A bad command line; reported with exit status 2."""


class NoWelcome(Exception):
    """The server did not answer ``hello`` with ``welcome``."""


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class Config:
    #: Chat socket URLs; clients are spread over them in turn (one per worker or host).
    urls: tuple[str, ...]
    receivers: int
    senders: int
    rate: float
    duration: float
    drain: float
    #: Processes whose CPU and memory are sampled and added up (workers, Redis).
    server_pids: tuple[int, ...]
    json_path: Path
    connect_concurrency: int

    @property
    def planned_messages(self) -> int:
        return math.floor(self.rate * self.duration)

    @property
    def hard_limit(self) -> float:
        """Seconds after which the run is cut, whatever state it is in."""
        return (
            2 * CONNECT_PHASE_LIMIT
            + SETTLE_SECONDS
            + self.duration
            + SEND_GRACE
            + self.drain
            + CLOSE_TIMEOUT
            + HARD_LIMIT_MARGIN
        )


def parse_args(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(
        description="Load generator for quartchat (loopback servers only).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--url",
        dest="urls",
        action="append",
        help="chat socket URL; repeat it to spread the clients over several servers"
        " (default ws://127.0.0.1:8000/ws)",
    )
    parser.add_argument("--receivers", type=int, default=100, help="clients that only listen")
    parser.add_argument("--senders", type=int, default=10, help="clients that send and listen")
    parser.add_argument("--rate", type=float, default=40.0, help="total messages/s")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of sending")
    parser.add_argument("--drain", type=float, default=10.0, help="max seconds to wait after")
    parser.add_argument(
        "--server-pid",
        dest="server_pids",
        type=int,
        action="append",
        help="sample this pid's RSS/CPU; repeat it for several workers (and Redis): figures add up",
    )
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="results file")
    parser.add_argument("--connect-concurrency", type=int, default=50, help="pending connects")
    args = parser.parse_args(argv)
    try:
        return build_config(args)
    except UsageError as exc:
        parser.error(str(exc))  # exits with status 2


def build_config(args: argparse.Namespace) -> Config:
    urls = tuple(args.urls or [DEFAULT_URL])
    for url in urls:
        check_loopback(url)
    pids = tuple(args.server_pids or ())
    checks = [
        (0 <= args.receivers <= MAX_CLIENTS, f"--receivers must be 0..{MAX_CLIENTS}"),
        (1 <= args.senders <= MAX_CLIENTS, f"--senders must be 1..{MAX_CLIENTS}"),
        (args.rate > 0, "--rate must be > 0"),
        (0 < args.duration <= 3600, "--duration must be in (0, 3600]"),
        (0 <= args.drain <= 600, "--drain must be in [0, 600]"),
        (args.connect_concurrency >= 1, "--connect-concurrency must be >= 1"),
        (args.rate * args.duration <= MAX_MESSAGES, f"rate x duration over {MAX_MESSAGES}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    for pid in pids:
        if not Path(f"/proc/{pid}/stat").exists():
            raise UsageError(f"--server-pid {pid}: no such process")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    json_path = args.json_path or REPO_ROOT / "bench-results" / f"bench-{stamp}.json"
    return Config(
        urls=urls,
        receivers=args.receivers,
        senders=args.senders,
        rate=args.rate,
        duration=args.duration,
        drain=args.drain,
        server_pids=pids,
        json_path=json_path,
        connect_concurrency=args.connect_concurrency,
    )


def check_loopback(url: str) -> None:
    """Refuse any URL whose host is not localhost, 127.0.0.0/8 or ::1."""
    parts = urlsplit(url)
    if parts.scheme != "ws":
        raise UsageError(f"--url must start with ws:// (got {url!r})")
    host = parts.hostname
    if host == "localhost":
        return
    try:
        loopback = host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(f"refusing non-loopback host {host!r}: only localhost, 127.0.0.0/8, ::1")


def raise_fd_limit(needed: int) -> None:
    """Lift the soft open-files limit towards the hard one if the run needs it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        warn(f"open-files limit {target} is below the {needed} this run needs")


def child_pids(pid: int) -> list[str]:
    """Pids of the direct children of ``pid`` (empty if unknown)."""
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


def warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


# ---------------------------------------------------------------- state


@dataclass(slots=True)
class Countdown:
    """An event that fires once ``tick`` has been called ``left`` times."""

    left: int
    event: trio.Event = field(default_factory=trio.Event)

    def __post_init__(self) -> None:
        if self.left <= 0:
            self.event.set()

    def tick(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.event.set()


@dataclass(slots=True, eq=False)
class Client:
    """One connection and what it has received of this run's messages."""

    nick: str
    #: The server this client talks to.
    url: str
    #: None for receivers; the sender's index (as in its nick) otherwise.
    sender_index: int | None = None
    ws: WebSocketConnection | None = None
    welcomed: bool = False
    open: bool = False
    stopping: bool = False
    seen: set[int] = field(default_factory=set)
    last_id: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    echoes: int = 0
    reader: trio.CancelScope = field(default_factory=trio.CancelScope)


@dataclass(slots=True)
class Ledger:
    """Counters over all clients: what was sent, acked, refused and delivered."""

    #: Sends written to a socket; planned minus sent were skipped (sender gone or behind).
    sent: int = 0
    #: client_offset -> send time, until an ack or an error answers it.
    pending: dict[str, float] = field(default_factory=dict)
    #: message id -> sender index, from acks.
    acked: dict[int, int] = field(default_factory=dict)
    acked_by_sender: Counter[int] = field(default_factory=Counter)
    ack_latencies: list[float] = field(default_factory=list)
    #: Error frames by code, and how many sends they refused.
    errors: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    #: Acks for an offset that was not pending (a repeat, or an unknown offset).
    stray_acks: int = 0
    #: First deliveries of this run's messages (all clients) and their latencies.
    received: int = 0
    delivery_latencies: list[float] = field(default_factory=list)
    last_delivery: float = 0.0
    #: Message frames from elsewhere: backlog, other users, other runs.
    foreign: int = 0
    #: Lines that failed to decode, or this run's payloads that failed to parse.
    malformed: int = 0
    binary_frames: int = 0
    connect_failures: Counter[str] = field(default_factory=Counter)
    unexpected_closes: Counter[str] = field(default_factory=Counter)
    #: Exceptions raised inside trio-websocket for one connection (its known bugs).
    library_errors: Counter[str] = field(default_factory=Counter)
    max_send_lag: float = 0.0


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
        taken = None
        if samples:
            taken = ProcSample(
                at=now,
                cpu_seconds=sum(s.cpu_seconds for s in samples),
                rss_kb=sum(s.rss_kb for s in samples),
                hwm_kb=sum(s.hwm_kb for s in samples),
            )
        if taken is not None:
            self.peak_rss_kb = max(self.peak_rss_kb, taken.rss_kb)
        return taken

    def mark(self, name: str) -> None:
        taken = self.sample()
        if taken is not None:
            self.marks[name] = taken


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


@dataclass(slots=True, eq=False)
class Bench:
    """One run: settings, clients, counters and the times of its phases."""

    cfg: Config
    run: str
    receivers: list[Client]
    senders: list[Client]
    ledger: Ledger
    limiter: trio.CapacityLimiter
    closed: Countdown
    probe: ProcProbe | None
    phase: str = "connect"
    started: float = 0.0
    connected: float = 0.0
    send_start: float = 0.0
    send_end: float = 0.0
    drain_end: float = 0.0
    own: ProcProbe = field(default_factory=lambda: ProcProbe((os.getpid(),)))
    #: How late the lag probe woke up, in seconds, during send and drain.
    loop_lags: list[float] = field(default_factory=list)
    hard_limit_hit: bool = False
    started_at: str = ""

    @classmethod
    def create(cls, cfg: Config) -> Bench:
        run = secrets.token_hex(3)
        return cls(
            cfg=cfg,
            run=run,
            receivers=[
                Client(f"r{i}-{run}", cfg.urls[i % len(cfg.urls)]) for i in range(cfg.receivers)
            ],
            senders=[
                Client(f"s{i}-{run}", cfg.urls[i % len(cfg.urls)], sender_index=i)
                for i in range(cfg.senders)
            ],
            ledger=Ledger(),
            limiter=trio.CapacityLimiter(cfg.connect_concurrency),
            closed=Countdown(cfg.receivers + cfg.senders),
            probe=ProcProbe(cfg.server_pids) if cfg.server_pids else None,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    @property
    def prefix(self) -> str:
        return f"bench|{self.run}|"

    @property
    def clients(self) -> list[Client]:
        return self.receivers + self.senders

    def mark(self, name: str) -> None:
        """Note CPU time and memory of this process and, if probed, of the server."""
        self.own.mark(name)
        if self.probe is not None:
            self.probe.mark(name)

    def expected_for(self, client: Client) -> int:
        own = 0 if client.sender_index is None else self.ledger.acked_by_sender[client.sender_index]
        return len(self.ledger.acked) - own

    def settled(self) -> bool:
        """True when no send awaits an answer and every open client has all it should."""
        if self.ledger.pending:
            return False
        return all(len(c.seen) >= self.expected_for(c) for c in self.clients if c.open)


# ---------------------------------------------------------------- frames


def make_payload(prefix: str, sender: int, seq: int, sent_at: float) -> str:
    return f"{prefix}{sender}|{seq}|{sent_at:.6f}"


def parse_payload(text: str, prefix: str) -> tuple[int, float]:
    """Sender index and send time of one of this run's payloads (ValueError if bad)."""
    sender, _seq, sent_at = text[len(prefix) :].split("|")
    return int(sender), float(sent_at)


def hello_frame(nick: str) -> str:
    return json.dumps(
        {"type": "hello", "token": None, "nick": nick, "last_id": None, "epoch": None}
    )


def send_frame(offset: str, text: str) -> str:
    return json.dumps({"type": "send", "client_offset": offset, "text": text, "to": None})


def handle_frame(bench: Bench, client: Client, frame: str, now: float) -> None:
    for line in frame.split("\n"):
        if line and INTERESTING.search(line):
            handle_line(bench, client, line, now)


def handle_line(bench: Bench, client: Client, line: str, now: float) -> None:
    try:
        obj = json.loads(line)
    except ValueError:
        bench.ledger.malformed += 1
        return
    if not isinstance(obj, dict):
        bench.ledger.malformed += 1
        return
    kind = obj.get("type")
    if kind == "message":
        on_message(bench, client, obj, now)
    elif kind == "ack":
        on_ack(bench, client, obj, now)
    elif kind == "error":
        on_error(bench, obj)
    elif kind == "welcome":
        client.welcomed = True


def on_message(bench: Bench, client: Client, obj: dict[str, Any], now: float) -> None:
    ledger = bench.ledger
    text, msg_id = obj.get("text"), obj.get("id")
    if not isinstance(text, str) or not text.startswith(bench.prefix):
        ledger.foreign += 1
        return
    try:
        if not isinstance(msg_id, int):
            raise ValueError(msg_id)
        sender, sent_at = parse_payload(text, bench.prefix)
    except ValueError:
        ledger.malformed += 1
        return
    if sender == client.sender_index:
        client.echoes += 1
    elif msg_id in client.seen:
        client.duplicates += 1
    else:
        client.seen.add(msg_id)
        if msg_id < client.last_id:
            client.out_of_order += 1
        else:
            client.last_id = msg_id
        ledger.received += 1
        ledger.delivery_latencies.append(now - sent_at)
        ledger.last_delivery = now


def on_ack(bench: Bench, client: Client, obj: dict[str, Any], now: float) -> None:
    ledger = bench.ledger
    sent_at = ledger.pending.pop(str(obj.get("client_offset")), None)
    msg_id = obj.get("id")
    if sent_at is None or client.sender_index is None or not isinstance(msg_id, int):
        ledger.stray_acks += 1
        return
    ledger.acked[msg_id] = client.sender_index
    ledger.acked_by_sender[client.sender_index] += 1
    ledger.ack_latencies.append(now - sent_at)


def on_error(bench: Bench, obj: dict[str, Any]) -> None:
    ledger = bench.ledger
    ledger.errors[str(obj.get("code"))] += 1
    offset = obj.get("client_offset")
    if isinstance(offset, str) and ledger.pending.pop(offset, None) is not None:
        ledger.refused += 1


# ---------------------------------------------------------------- connections


def failure_label(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return "timeout"
    if isinstance(exc, ConnectionRejected):
        return f"rejected HTTP {exc.status_code}"
    if isinstance(exc, ConnectionClosed):
        return f"closed {close_label(exc)}"
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return type(exc).__name__


def close_label(exc: ConnectionClosed) -> str:
    reason = exc.reason
    if reason is None:
        return "no close reason"
    text = f"{reason.code} {reason.name}"
    return f"{text} ({reason.reason})" if reason.reason else text


async def wait_welcome(bench: Bench, client: Client, ws: WebSocketConnection) -> None:
    """Read frames until ``welcome``; backlog lines in them are handled (and ignored)."""
    for _ in range(MAX_WELCOME_FRAMES):
        frame = await ws.get_message()
        if isinstance(frame, str):
            handle_frame(bench, client, frame, trio.current_time())
        if client.welcomed:
            return
    raise NoWelcome(client.nick)


async def open_client(
    bench: Bench, nursery: trio.Nursery, client: Client, deadline: float
) -> WebSocketConnection | None:
    """Connect, say hello and wait for welcome; None (and a counted reason) on failure."""
    ws: WebSocketConnection | None = None
    async with bench.limiter:
        if trio.current_time() > deadline:
            bench.ledger.connect_failures["connect phase over"] += 1
            return None
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                ws = await connect_websocket_url(
                    nursery,
                    client.url,
                    message_queue_size=MESSAGE_QUEUE_SIZE,
                    max_message_size=MAX_MESSAGE_SIZE,
                )
                await ws.send_message(hello_frame(client.nick))
                await wait_welcome(bench, client, ws)
            return ws
        except (
            OSError,
            HandshakeError,
            ConnectionClosed,
            trio.TooSlowError,
            trio.BrokenResourceError,
            NoWelcome,
        ) as exc:
            bench.ledger.connect_failures[failure_label(exc)] += 1
    if ws is not None:
        with trio.move_on_after(CLOSE_TIMEOUT):
            await ws.aclose()
    return None


async def read_loop(bench: Bench, client: Client, ws: WebSocketConnection) -> None:
    """Handle frames until the socket closes or ``client.reader`` is cancelled."""
    while True:
        frame = await ws.get_message()
        if isinstance(frame, str):
            handle_frame(bench, client, frame, trio.current_time())
        else:
            bench.ledger.binary_frames += 1


async def serve_client(bench: Bench, client: Client, ws: WebSocketConnection) -> None:
    """Read until the server closes or the run stops; then close gracefully."""
    client.ws, client.open = ws, True
    try:
        with client.reader:
            await read_loop(bench, client, ws)
    except ConnectionClosed as exc:
        if not client.stopping:
            bench.ledger.unexpected_closes[close_label(exc)] += 1
        return
    finally:
        client.open = False
    with trio.move_on_after(CLOSE_TIMEOUT):
        await ws.aclose()


async def run_client(bench: Bench, client: Client, deadline: float, connected: Countdown) -> None:
    """One client's life, in its own nursery so that a library failure stays contained."""
    async with trio.open_nursery() as nursery:
        ws = None
        try:
            ws = await open_client(bench, nursery, client, deadline)
        finally:
            connected.tick()
        if ws is not None:
            await serve_client(bench, client, ws)


async def client_task(bench: Bench, client: Client, deadline: float, connected: Countdown) -> None:
    try:
        await run_client(bench, client, deadline, connected)
    except* LocalProtocolError as group:
        # trio-websocket 0.12 answers a ping that arrives while our close frame is in
        # flight and its reader task raises (python-trio/trio-websocket#184).
        bench.ledger.library_errors["LocalProtocolError"] += len(group.exceptions)
    finally:
        bench.closed.tick()


async def connect_group(bench: Bench, nursery: trio.Nursery, clients: list[Client]) -> None:
    """Start one task per client and wait until every connect attempt has ended."""
    connected = Countdown(len(clients))
    deadline = trio.current_time() + CONNECT_PHASE_LIMIT
    for client in clients:
        nursery.start_soon(client_task, bench, client, deadline, connected)
    with trio.move_on_after(CONNECT_PHASE_LIMIT + HANDSHAKE_TIMEOUT):
        await connected.event.wait()


# ---------------------------------------------------------------- phases


async def send_task(bench: Bench, sender: Client, indices: range, done: Countdown) -> None:
    """Send this sender's share of the schedule: message i is due at start + i/rate."""
    ledger, cutoff = bench.ledger, bench.send_start + bench.cfg.duration + SEND_GRACE
    index = sender.sender_index if sender.sender_index is not None else -1
    try:
        for seq, slot in enumerate(indices):
            due = bench.send_start + slot / bench.cfg.rate
            await trio.sleep_until(due)
            now = trio.current_time()
            if sender.ws is None or not sender.open or now > cutoff:
                return
            offset = f"{bench.run}-{index}-{seq}"
            frame = send_frame(offset, make_payload(bench.prefix, index, seq, now))
            ledger.pending[offset] = now
            ledger.sent += 1
            ledger.max_send_lag = max(ledger.max_send_lag, now - due)
            try:
                await sender.ws.send_message(frame)
            except ConnectionClosed:
                ledger.pending.pop(offset, None)
                ledger.sent -= 1
                return
    finally:
        done.tick()


async def send_phase(bench: Bench, nursery: trio.Nursery) -> None:
    live = [s for s in bench.senders if s.open]
    total = bench.cfg.planned_messages
    bench.phase = "send"
    bench.send_start = trio.current_time()
    bench.mark("send_start")
    done = Countdown(len(live))
    for position, sender in enumerate(live):
        share = range(position, total, len(live))
        nursery.start_soon(send_task, bench, sender, share, done)
    with trio.move_on_after(bench.cfg.duration + SEND_GRACE + 1):
        await done.event.wait()
    bench.send_end = trio.current_time()
    bench.mark("send_end")


async def drain_phase(bench: Bench) -> None:
    """Wait (bounded) until every send is answered and every delivery has arrived."""
    bench.phase = "drain"
    deadline = trio.current_time() + bench.cfg.drain
    for _ in range(math.ceil(bench.cfg.drain / DRAIN_POLL) + 1):
        if bench.settled() or trio.current_time() >= deadline:
            break
        await trio.sleep(DRAIN_POLL)
    bench.drain_end = trio.current_time()
    bench.mark("drain_end")


async def close_phase(bench: Bench, nursery: trio.Nursery) -> None:
    bench.phase = "close"
    for client in bench.clients:
        client.stopping = True
        client.reader.cancel()
    with trio.move_on_after(CLOSE_TIMEOUT + 1):
        await bench.closed.event.wait()
    nursery.cancel_scope.cancel()


async def progress_task(bench: Bench) -> None:
    """Rewrite one status line on stderr each second; sample the server too."""
    for _ in range(math.ceil(bench.cfg.hard_limit / PROGRESS_INTERVAL) + 1):
        bench.own.sample()
        if bench.probe is not None:
            bench.probe.sample()
        show_progress(progress_line(bench))
        await trio.sleep(PROGRESS_INTERVAL)


def progress_line(bench: Bench) -> str:
    ledger = bench.ledger
    opened = sum(c.open for c in bench.clients)
    return (
        f"[{bench.phase:<7}] {trio.current_time() - bench.started:6.1f}s"
        f"  open {opened}/{len(bench.clients)}  sent {ledger.sent}"
        f"  acked {len(ledger.acked)}  errors {sum(ledger.errors.values())}"
        f"  deliveries {ledger.received}"
    )


def show_progress(line: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\x1b[K{line}")
    else:
        sys.stderr.write(f"{line}\n")
    sys.stderr.flush()


def end_progress() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()


async def lag_probe_task(bench: Bench) -> None:
    """Record how late a short sleep wakes up: a busy generator skews every latency."""
    for _ in range(math.ceil(bench.cfg.hard_limit / LAG_PROBE_INTERVAL) + 1):
        due = trio.current_time() + LAG_PROBE_INTERVAL
        await trio.sleep_until(due)
        if bench.phase in ("send", "drain"):
            bench.loop_lags.append(trio.current_time() - due)


async def run_bench(bench: Bench) -> None:
    """Connect receivers, then senders; settle; send; drain; close.

    Every task runs in one main nursery; each client only adds a small nursery of
    its own for its socket's reader (see ``run_client``).
    """
    bench.started = trio.current_time()
    bench.mark("before_connect")
    with trio.move_on_after(bench.cfg.hard_limit) as hard:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress_task, bench)
            nursery.start_soon(lag_probe_task, bench)
            await connect_group(bench, nursery, bench.receivers)
            await connect_group(bench, nursery, bench.senders)
            bench.connected = trio.current_time()
            bench.mark("connected")
            bench.phase = "settle"
            await trio.sleep(SETTLE_SECONDS)
            await send_phase(bench, nursery)
            await drain_phase(bench)
            await close_phase(bench, nursery)
    bench.hard_limit_hit = hard.cancelled_caught
    end_unfinished_phases(bench, trio.current_time())


def end_unfinished_phases(bench: Bench, now: float) -> None:
    """After a cut by the hard limit, phases that never ended end now."""
    bench.connected = bench.connected or now
    bench.send_start = bench.send_start or now
    bench.send_end = bench.send_end or now
    bench.drain_end = bench.drain_end or now


# ---------------------------------------------------------------- results


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


DELIVERY_COUNTS = (
    "expected_receivers",
    "expected_senders",
    "received_receivers",
    "received_senders",
    "lost",
    "clients_with_loss",
    "duplicated",
    "echoes",
    "out_of_order",
    "unacked_deliveries",
)


def tally_deliveries(bench: Bench) -> dict[str, int]:
    """Compare what each client received with the acked ids it should have received."""
    acked_ids = set(bench.ledger.acked)
    own: dict[int, set[int]] = {}
    for msg_id, sender in bench.ledger.acked.items():
        own.setdefault(sender, set()).add(msg_id)
    totals: Counter[str] = Counter()
    for role, clients in (("receivers", bench.receivers), ("senders", bench.senders)):
        for client in clients:
            if not client.welcomed:
                continue
            mine = own.get(client.sender_index, set()) if client.sender_index is not None else set()
            expected = acked_ids - mine
            missing = len(expected - client.seen)
            totals[f"expected_{role}"] += len(expected)
            totals[f"received_{role}"] += len(expected & client.seen)
            totals["lost"] += missing
            totals["clients_with_loss"] += missing > 0
            totals["unacked_deliveries"] += len(client.seen - acked_ids)
            totals["duplicated"] += client.duplicates
            totals["echoes"] += client.echoes
            totals["out_of_order"] += client.out_of_order
    return {name: totals[name] for name in DELIVERY_COUNTS}


def cpu_pct(marks: dict[str, ProcSample], start: str, end: str) -> float | None:
    """CPU use between two marks, in % of one core."""
    a, b = marks.get(start), marks.get(end)
    if a is None or b is None or b.at <= a.at:
        return None
    return round((b.cpu_seconds - a.cpu_seconds) / (b.at - a.at) * 100, 1)


def rss_mb(marks: dict[str, ProcSample], name: str) -> float | None:
    sample = marks.get(name)
    return None if sample is None else round(sample.rss_kb / 1024, 1)


def proc_summary(probe: ProcProbe) -> dict[str, Any]:
    marks, end = probe.marks, probe.marks.get("drain_end")
    return {
        "pids": list(probe.pids),
        "cpu_pct_connect": cpu_pct(marks, "before_connect", "connected"),
        "cpu_pct_send": cpu_pct(marks, "send_start", "send_end"),
        "cpu_pct_send_and_drain": cpu_pct(marks, "send_start", "drain_end"),
        "rss_mb_before_connect": rss_mb(marks, "before_connect"),
        "rss_mb_connected": rss_mb(marks, "connected"),
        "rss_mb_end": rss_mb(marks, "drain_end"),
        "rss_mb_peak_sampled": round(probe.peak_rss_kb / 1024, 1),
        "vm_hwm_mb": None if end is None else round(end.hwm_kb / 1024, 1),
    }


def verdict(bench: Bench, deliveries: dict[str, int]) -> list[str]:
    """Reasons the run failed; empty when it passed."""
    ledger = bench.ledger
    unacked = ledger.sent - len(ledger.acked)
    not_sent = bench.cfg.planned_messages - ledger.sent
    why = f"{ledger.refused} refused by error, {len(ledger.pending)} unanswered"
    checks = [
        (ledger.sent == 0, "nothing was sent"),
        (not_sent > 0, f"{not_sent} planned messages not sent"),
        (unacked > 0, f"{unacked} sent messages not acked ({why})"),
        (deliveries["lost"] > 0, f"{deliveries['lost']} deliveries lost"),
        (deliveries["duplicated"] > 0, f"{deliveries['duplicated']} deliveries duplicated"),
        (deliveries["echoes"] > 0, f"{deliveries['echoes']} echoes to the sender"),
        (deliveries["out_of_order"] > 0, f"{deliveries['out_of_order']} out of order"),
        (bench.hard_limit_hit, "hard time limit reached"),
    ]
    return [reason for failed, reason in checks if failed]


def summarize(bench: Bench) -> dict[str, Any]:
    cfg, ledger = bench.cfg, bench.ledger
    deliveries = tally_deliveries(bench)
    send_secs = max(bench.send_end - bench.send_start, 1e-9)
    delivery_secs = max(ledger.last_delivery - bench.send_start, 1e-9)
    failures = verdict(bench, deliveries)
    return {
        "run": bench.run,
        "started_at": bench.started_at,
        "config": {
            "urls": list(cfg.urls),
            "receivers": cfg.receivers,
            "senders": cfg.senders,
            "rate": cfg.rate,
            "duration": cfg.duration,
            "drain": cfg.drain,
            "connect_concurrency": cfg.connect_concurrency,
        },
        "clients": {
            "receivers_connected": sum(c.welcomed for c in bench.receivers),
            "senders_connected": sum(c.welcomed for c in bench.senders),
            "connects_failed": sum(ledger.connect_failures.values()),
            "connect_failures": dict(ledger.connect_failures),
            "unexpected_closes": sum(ledger.unexpected_closes.values()),
            "close_codes": dict(ledger.unexpected_closes),
            "connect_seconds": round(bench.connected - bench.started, 3),
            "library_errors": dict(ledger.library_errors),
        },
        "sending": {
            "planned": cfg.planned_messages,
            "sent": ledger.sent,
            "not_sent": cfg.planned_messages - ledger.sent,
            "acked": len(ledger.acked),
            "refused": ledger.refused,
            "unanswered": len(ledger.pending),
            "errors": dict(ledger.errors),
            "stray_acks": ledger.stray_acks,
            "send_seconds": round(send_secs, 3),
            "send_rate": round(ledger.sent / send_secs, 1),
            "max_send_lag_ms": round(ledger.max_send_lag * 1000, 3),
        },
        "deliveries": {
            **deliveries,
            "expected": deliveries["expected_receivers"] + deliveries["expected_senders"],
            "received": deliveries["received_receivers"] + deliveries["received_senders"],
            "per_second": round(ledger.received / delivery_secs, 1) if ledger.received else 0.0,
            "foreign_messages": ledger.foreign,
            "malformed_lines": ledger.malformed,
            "binary_frames": ledger.binary_frames,
        },
        "latency_ms": {
            "ack": percentiles_ms(ledger.ack_latencies),
            "delivery": percentiles_ms(ledger.delivery_latencies),
        },
        "server": None if bench.probe is None else proc_summary(bench.probe),
        "generator": {
            **proc_summary(bench.own),
            "loop_lag_ms": percentiles_ms(bench.loop_lags),
            "wall_seconds": round(bench.drain_end - bench.started, 3),
            "drain_seconds": round(bench.drain_end - bench.send_end, 3),
        },
        "pass": not failures,
        "failures": failures,
    }


# ---------------------------------------------------------------- output


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


def report_rows(res: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows; a row with an empty value is a section heading."""
    cl, se, de, lat = res["clients"], res["sending"], res["deliveries"], res["latency_ms"]
    cfg = res["config"]
    rows = [
        ("clients", ""),
        ("receivers connected", f"{cl['receivers_connected']} / {cfg['receivers']}"),
        ("senders connected", f"{cl['senders_connected']} / {cfg['senders']}"),
        ("connects failed", fmt_count(cl["connects_failed"], cl["connect_failures"])),
        ("unexpected closes (by code)", fmt_count(cl["unexpected_closes"], cl["close_codes"])),
        ("trio-websocket errors", fmt_counter(cl["library_errors"])),
        ("sending", ""),
        ("planned", f"{se['planned']}  ({cfg['rate']:g} msg/s x {cfg['duration']:g} s)"),
        ("sent", f"{se['sent']}  ({se['send_rate']} msg/s, max lag {se['max_send_lag_ms']} ms)"),
        ("not sent", str(se["not_sent"])),
        ("acked", str(se["acked"])),
        ("refused by error / unanswered", f"{se['refused']} / {se['unanswered']}"),
        ("error frames by code", fmt_counter(se["errors"])),
        ("ack latency ms", fmt_latency(lat["ack"])),
        ("deliveries", ""),
        ("expected to receivers", f"{de['expected_receivers']}  (acked x receivers)"),
        ("expected to senders", f"{de['expected_senders']}  (acked x (senders - 1))"),
        ("received (of expected)", f"{de['received']} / {de['expected']}"),
        ("lost", f"{de['lost']}  (on {de['clients_with_loss']} clients)"),
        ("duplicated", str(de["duplicated"])),
        ("echoed to sender", str(de["echoes"])),
        ("out of order", str(de["out_of_order"])),
        ("delivered but never acked", str(de["unacked_deliveries"])),
        ("deliveries/s", f"{de['per_second']}  (first send to last delivery)"),
        ("delivery latency ms", fmt_latency(lat["delivery"])),
        (
            "backlog, other senders / malformed",
            f"{de['foreign_messages']} / {de['malformed_lines']}",
        ),
    ]
    if res["server"] is not None:
        pids = " + ".join(str(pid) for pid in res["server"]["pids"])
        rows += proc_rows(f"server pids {pids} (added up)", res["server"])
    gen = res["generator"]
    rows += proc_rows("generator (this process)", gen)
    rows += [
        ("event loop lag ms", fmt_latency(gen["loop_lag_ms"])),
        ("s connecting / whole run", f"{cl['connect_seconds']} / {gen['wall_seconds']}"),
    ]
    return rows


def proc_rows(title: str, proc: dict[str, Any]) -> list[tuple[str, str]]:
    """CPU and memory rows for the server or the generator."""
    cpu = (proc["cpu_pct_connect"], proc["cpu_pct_send"], proc["cpu_pct_send_and_drain"])
    rss = (proc["rss_mb_before_connect"], proc["rss_mb_connected"], proc["rss_mb_end"])
    return [
        (title, ""),
        ("CPU % connect / send / send+drain", fmt_values(cpu)),
        ("RSS MB start / connected / end", fmt_values(rss)),
        (
            "RSS MB peak sampled / VmHWM",
            fmt_values((proc["rss_mb_peak_sampled"], proc["vm_hwm_mb"])),
        ),
    ]


def print_report(res: dict[str, Any]) -> None:
    urls = " ".join(res["config"]["urls"])
    print(f"quartchat bench  run {res['run']}  {urls}  {res['started_at']}")
    rows = report_rows(res)
    width = max(len(label) for label, _ in rows) + 4
    for label, value in rows:
        print(label if not value else f"  {label:<{width}}{value}")
    lag_p99 = res["generator"]["loop_lag_ms"]["p99"]
    if lag_p99 is not None and lag_p99 > LAG_WARN_MS:
        print(f"note    generator event loop lag p99 {lag_p99} ms: latencies include its delay")
    outcome = "PASS" if res["pass"] else "FAIL: " + "; ".join(res["failures"])
    print(f"result  {outcome}")


def write_json(res: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    raise_fd_limit(cfg.receivers + cfg.senders + 64)
    if cfg.rate / cfg.senders > PER_USER_RATE:
        per_user = cfg.rate / cfg.senders
        warn(f"{per_user:g} msg/s per sender is over the server's {PER_USER_RATE:g}/s per user;")
        warn("expect rate_limited errors (add --senders)")
    for pid in cfg.server_pids:
        children = child_pids(pid)
        if children:
            warn(f"--server-pid {pid} has child processes {' '.join(children)};")
            warn("hypercorn serves from its worker processes: pass their pids instead")
    bench = Bench.create(cfg)
    try:
        trio.run(run_bench, bench)
    except KeyboardInterrupt:
        end_progress()
        print("interrupted", file=sys.stderr)
        return 130
    end_progress()
    results = summarize(bench)
    print_report(results)
    write_json(results, cfg.json_path)
    print(f"json    {cfg.json_path}")
    return 0 if results["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
