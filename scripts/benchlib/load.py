"""The message runs: receivers listen while senders send, open loop at a
fixed total rate (the default) or closed loop with a few sends in flight
each (``--ingest``); then every delivery is checked (``checker.py``).

Clients are ``fastws`` connections (a lean WebSocket client on a socket,
read by the client's one task), each a new user. With ``--rooms N`` the
run happens in N public rooms instead of general (``rooms.py``). Message lines of this run are read
with ``lines.fast_message``; other lines that matter are decoded as JSON.
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

from .checker import DeliveryCheck, Inbox
from .config import Config
from .fastws import Closed, FastClient, open_fast
from .lines import INTERESTING, MESSAGE_LINE, FrameReader, make_payload, parse_payload
from .output import (
    Row,
    fmt_count,
    fmt_counter,
    fmt_latency,
    fmt_values,
    percentiles_ms,
    show_progress,
)
from .procstats import ProcProbe
from .rooms import (
    SETUP_TIMEOUT,
    RoomSetupFailed,
    create_rooms,
    join_rooms,
    receiver_rooms,
    room_of_slot,
    sender_rooms,
)
from .workers import (
    RESULT_TIMEOUT,
    WORKER_START_MARGIN,
    SharedClock,
    Worker,
    follow,
    inbox_from,
    inbox_record,
    shares,
    spawn,
)

#: Seconds one client has for TCP connect, upgrade, hello and welcome.
HANDSHAKE_TIMEOUT = 10.0
#: Seconds each connect phase (receivers, then senders) may take in total.
CONNECT_PHASE_LIMIT = 120.0
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
#: CPU phases (start mark, end mark) and RSS marks reported for each process.
PHASES = {
    "connect": ("before_connect", "connected"),
    # Between the last connect and the first send: what joins left to do.
    "settle": ("connected", "send_start"),
    "send": ("send_start", "send_end"),
    "send_and_drain": ("send_start", "drain_end"),
}
POINTS = {"before_connect": "before_connect", "connected": "connected", "end": "drain_end"}


class NoWelcome(Exception):
    """The server did not answer ``hello`` with ``welcome``."""


#: What a socket raises when the connection breaks.
SOCKET_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


def hard_limit(cfg: Config) -> float:
    """Seconds after which the run is cut, whatever state it is in."""
    return (
        2 * CONNECT_PHASE_LIMIT
        + (SETUP_TIMEOUT if cfg.rooms else 0.0)
        + cfg.settle
        + cfg.duration
        + SEND_GRACE
        + cfg.drain
        + CLOSE_TIMEOUT
        + HARD_LIMIT_MARGIN
    )


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
    inbox: Inbox
    raw: FastClient | None = None
    welcomed: bool = False
    open: bool = False
    stopping: bool = False
    reader: trio.CancelScope = field(default_factory=trio.CancelScope)
    #: --ingest: one token per send that may be unanswered; an answer returns it.
    window: trio.Semaphore | None = None
    #: --check-after, receivers only: (time read, frame) of every frame, checked
    #: once the run is over (:func:`check_recorded`); and the message lines in
    #: them, counted as they come, which is all the drain needs to know.
    recorded: list[tuple[float, str]] | None = None
    recorded_messages: int = 0

    @property
    def sender_index(self) -> int | None:
        return self.inbox.sender_index

    @property
    def messages_in(self) -> int:
        """The messages this client has: checked, or recorded to check."""
        return len(self.inbox.seen) + self.recorded_messages


@dataclass(slots=True)
class Ledger:
    """Counters over all clients: what was sent, acked, refused and delivered."""

    check: DeliveryCheck = field(default_factory=DeliveryCheck)
    #: Sends written to a socket; planned minus sent were skipped (sender gone or behind).
    sent: int = 0
    #: client_offset -> send time, until an ack or an error answers it.
    pending: dict[str, float] = field(default_factory=dict)
    #: --rooms: client_offset -> the room index it was sent to, until answered.
    sent_rooms: dict[str, int] = field(default_factory=dict)
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
    #: Frames that carried at least one of those first deliveries: received
    #: over these is how many messages the server's flush windows put in a frame.
    message_frames: int = 0
    binary_frames: int = 0
    connect_failures: Counter[str] = field(default_factory=Counter)
    unexpected_closes: Counter[str] = field(default_factory=Counter)
    #: WebSocket protocol errors that ended a connection (kept for the JSON's shape:
    #: fastws reports them as closes, "protocol error: ...").
    library_errors: Counter[str] = field(default_factory=Counter)
    max_send_lag: float = 0.0


@dataclass(slots=True, eq=False)
class Bench:
    """One run: settings, clients, counters and the times of its phases."""

    cfg: Config
    run: str
    #: Every receiver of the run (with --procs, most are read by worker processes).
    receivers: list[Client]
    senders: list[Client]
    #: The receivers this process connects and reads itself.
    local_receivers: list[Client]
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
    #: --procs: the other processes reading receivers, and what went wrong with them.
    workers: list[Worker] = field(default_factory=list)
    worker_errors: list[str] = field(default_factory=list)
    #: --rooms: the rooms' ids (index -> id), once created; why they could not be.
    room_ids: list[str] = field(default_factory=list)
    setup_error: str | None = None
    reader: FrameReader = field(init=False)

    def __post_init__(self) -> None:
        self.reader = FrameReader(self.prefix)

    @classmethod
    def create(
        cls,
        cfg: Config,
        run: str | None = None,
        share: range | None = None,
        room_ids: list[str] | None = None,
    ) -> Bench:
        """The run's bench; a worker (``share`` given) has only those receivers, no senders."""
        run = run or secrets.token_hex(3)
        rooms, planned = cfg.rooms, cfg.planned_messages or 0
        urls = cfg.urls
        worker = share is not None
        mine = share if share is not None else shares(cfg.receivers, cfg.procs)[0]
        indices = share if share is not None else range(cfg.receivers)
        receivers = [
            Client(
                f"r{i}-{run}",
                urls[i % len(urls)],
                Inbox(rooms=receiver_rooms(i, rooms) if rooms else None),
                recorded=[] if cfg.check_after else None,
            )
            for i in indices
        ]
        local = receivers if worker else [receivers[i] for i in mine]
        senders = [
            Client(
                f"s{i}-{run}",
                urls[i % len(urls)],
                Inbox(
                    sender_index=i,
                    rooms=sender_rooms(i, cfg.senders, rooms, planned) if rooms else None,
                ),
            )
            for i in range(0 if worker else cfg.senders)
        ]
        return cls(
            cfg=cfg,
            run=run,
            receivers=receivers,
            senders=senders,
            local_receivers=local,
            ledger=Ledger(),
            limiter=trio.CapacityLimiter(max(1, math.ceil(cfg.connect_concurrency / cfg.procs))),
            closed=Countdown(len(local) + len(senders)),
            probe=ProcProbe(cfg.server_pids) if cfg.server_pids and not worker else None,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            room_ids=list(room_ids or []),
        )

    @property
    def prefix(self) -> str:
        return f"bench|{self.run}|"

    @property
    def clients(self) -> list[Client]:
        return self.receivers + self.senders

    @property
    def local_clients(self) -> list[Client]:
        return self.local_receivers + self.senders

    def mark(self, name: str) -> None:
        """Note CPU time and memory of this process and, if probed, of the server."""
        self.own.mark(name)
        if self.probe is not None:
            self.probe.mark(name)

    def received_here(self) -> int:
        """This process's first deliveries so far, with those recorded to check."""
        return self.ledger.received + sum(c.recorded_messages for c in self.local_receivers)

    def settled(self) -> bool:
        """True when no send awaits an answer and every open client has all it should."""
        if self.ledger.pending:
            return False
        check = self.ledger.check
        acked = len(check.acked)
        if any(w.min_seen is not None and w.min_seen < acked for w in self.workers):
            return False
        for worker in self.workers:  # --rooms: each room's receivers have its acks
            if any(seen < check.acked_by_room[room] for room, seen in worker.min_by_room.items()):
                return False
        return all(
            c.messages_in >= check.expected_for(c.inbox) for c in self.local_clients if c.open
        )


# ---------------------------------------------------------------- frames


def hello_frame(nick: str | None, token: str | None = None) -> str:
    return json.dumps(
        {"type": "hello", "token": token, "nick": nick, "last_id": None, "epoch": None}
    )


def send_frame(offset: str, text: str, room: str | None = None) -> str:
    """A public send: to general as version 1 wrote it, or (``room``) to that room."""
    frame = {"type": "send", "client_offset": offset, "text": text, "to": None}
    if room is not None:
        frame["room"] = room
    return json.dumps(frame)


def handle_frame(bench: Bench, client: Client, frame: str, now: float) -> None:
    """Every line of one server frame: all at once when the frame holds only
    this run's messages in the usual shape (and presence, typing), else line
    by line."""
    before = bench.ledger.received
    fast = bench.reader.messages(frame)
    if fast is not None:
        for msg_id, sender, sent_at in fast:
            deliver(bench, client, msg_id, sender, sent_at, now)
    else:
        for line in frame.split("\n"):
            if not line:
                continue
            one = bench.reader.message(line)
            if one is not None:
                deliver(bench, client, *one, now)
            elif INTERESTING.search(line):
                handle_line(bench, client, line, now)
    if bench.ledger.received > before:
        bench.ledger.message_frames += 1


def take_frames(bench: Bench, client: Client, texts: list[str], now: float) -> None:
    """Frames read at ``now``: checked at once, or (--check-after) recorded."""
    recorded = client.recorded
    if recorded is None:
        for text in texts:
            handle_frame(bench, client, text, now)
        return
    for text in texts:
        recorded.append((now, text))
        client.recorded_messages += text.count(MESSAGE_LINE)


def check_recorded(bench: Bench) -> None:
    """--check-after: check every frame the local receivers recorded, as it
    would have been checked when it came, with the time it came."""
    for client in bench.local_receivers:
        recorded, client.recorded = client.recorded or [], None
        client.recorded_messages = 0
        for now, frame in recorded:
            handle_frame(bench, client, frame, now)


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
        on_error(bench, client, obj)
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
    deliver(bench, client, msg_id, sender, sent_at, now)


def deliver(
    bench: Bench, client: Client, msg_id: int, sender: int, sent_at: float, now: float
) -> None:
    """One delivery of this run's message ``msg_id`` (sent by ``sender``) to ``client``."""
    if client.inbox.deliver(msg_id, sender):
        ledger = bench.ledger
        ledger.received += 1
        ledger.delivery_latencies.append(now - sent_at)
        ledger.last_delivery = now


def answered(client: Client) -> None:
    """A send of this client was acked or refused: it may send another (--ingest)."""
    if client.window is not None:
        client.window.release()


def on_ack(bench: Bench, client: Client, obj: dict[str, Any], now: float) -> None:
    ledger = bench.ledger
    offset = str(obj.get("client_offset"))
    sent_at = ledger.pending.pop(offset, None)
    room = ledger.sent_rooms.pop(offset, None)
    msg_id = obj.get("id")
    if sent_at is None or client.sender_index is None or not isinstance(msg_id, int):
        ledger.stray_acks += 1
        return
    ledger.check.ack(msg_id, client.sender_index, room)
    ledger.ack_latencies.append(now - sent_at)
    answered(client)


def on_error(bench: Bench, client: Client, obj: dict[str, Any]) -> None:
    ledger = bench.ledger
    ledger.errors[str(obj.get("code"))] += 1
    offset = obj.get("client_offset")
    if isinstance(offset, str) and ledger.pending.pop(offset, None) is not None:
        ledger.sent_rooms.pop(offset, None)
        ledger.refused += 1
        answered(client)


# ---------------------------------------------------------------- connections


def failure_label(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return "timeout"
    if isinstance(exc, Closed | RoomSetupFailed):
        return exc.label
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return type(exc).__name__


async def wait_welcome(bench: Bench, client: Client, raw: FastClient) -> None:
    """Read frames until ``welcome``; backlog lines in them are handled (and ignored)."""
    frames = 0
    while frames < MAX_WELCOME_FRAMES:
        texts = await raw.next_texts()
        now = trio.current_time()
        for text in texts:
            handle_frame(bench, client, text, now)
        if client.welcomed:
            return
        frames += max(len(texts), 1)
    raise NoWelcome(client.nick)


async def open_client(bench: Bench, client: Client, deadline: float) -> FastClient | None:
    """Connect, say hello and wait for welcome; None (and a counted reason) on failure."""
    raw: FastClient | None = None
    async with bench.limiter:
        if trio.current_time() > deadline:
            bench.ledger.connect_failures["connect phase over"] += 1
            return None
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                raw = await open_fast(client.url)
                await raw.send_text(hello_frame(client.nick))
                await wait_welcome(bench, client, raw)
                if bench.room_ids and client.inbox.rooms:
                    await join_rooms(
                        raw,
                        bench.room_ids,
                        client.inbox.rooms,
                        lambda text, now: handle_frame(bench, client, text, now),
                    )
            return raw
        except (*SOCKET_ERRORS, Closed, trio.TooSlowError, NoWelcome, RoomSetupFailed) as exc:
            bench.ledger.connect_failures[failure_label(exc)] += 1
    if raw is not None:
        await raw.aclose()
    return None


async def serve_client(bench: Bench, client: Client, raw: FastClient) -> None:
    """Handle frames until the server closes (or answers our close) or the run stops."""
    client.raw, client.open = raw, True
    ledger = bench.ledger
    try:
        while True:
            texts = await raw.next_texts()
            take_frames(bench, client, texts, trio.current_time())
    except (Closed, *SOCKET_ERRORS) as exc:
        label = failure_label(exc)
        if label.startswith("protocol error"):
            ledger.library_errors[label] += 1
        elif not client.stopping:
            ledger.unexpected_closes[label] += 1
    finally:
        client.open = False
        ledger.binary_frames += raw.binary_frames
        await raw.aclose()


async def client_task(bench: Bench, client: Client, deadline: float, connected: Countdown) -> None:
    """One client's life: connect, then read until closed or cancelled."""
    try:
        raw = None
        try:
            raw = await open_client(bench, client, deadline)
        finally:
            connected.tick()
        if raw is not None:
            with client.reader:
                await serve_client(bench, client, raw)
    finally:
        bench.closed.tick()


async def close_client(client: Client) -> None:
    """Send our close frame; the client's reader ends at the server's answer."""
    client.stopping = True
    if client.raw is None or not client.open:
        return
    with trio.move_on_after(CLOSE_TIMEOUT):
        try:
            await client.raw.close()
        except SOCKET_ERRORS:
            client.reader.cancel()


async def connect_group(bench: Bench, nursery: trio.Nursery, clients: list[Client]) -> None:
    """Start one task per client and wait until every connect attempt has ended."""
    connected = Countdown(len(clients))
    deadline = trio.current_time() + CONNECT_PHASE_LIMIT
    for client in clients:
        nursery.start_soon(client_task, bench, client, deadline, connected)
    with trio.move_on_after(CONNECT_PHASE_LIMIT + HANDSHAKE_TIMEOUT):
        await connected.event.wait()


# ---------------------------------------------------------------- phases


async def send_one(
    bench: Bench, sender: Client, seq: int, now: float, room: int | None = None
) -> bool:
    """Write one send (to general, or to room index ``room``); False if the
    sender's socket is gone (then nothing counts)."""
    ledger = bench.ledger
    index = sender.sender_index if sender.sender_index is not None else -1
    offset = f"{bench.run}-{index}-{seq}"
    room_id = None if room is None else bench.room_ids[room]
    frame = send_frame(offset, make_payload(bench.prefix, index, seq, now), room_id)
    ledger.pending[offset] = now
    if room is not None:
        ledger.sent_rooms[offset] = room
    ledger.sent += 1
    try:
        assert sender.raw is not None
        await sender.raw.send_text(frame)
    except SOCKET_ERRORS:
        ledger.pending.pop(offset, None)
        ledger.sent_rooms.pop(offset, None)
        ledger.sent -= 1
        return False
    return True


async def scheduled_sends(bench: Bench, sender: Client, indices: range) -> None:
    """Open loop: message i of the whole schedule is due at start + i/rate."""
    cutoff = bench.send_start + bench.cfg.duration + SEND_GRACE
    rooms = bench.cfg.rooms
    for seq, slot in enumerate(indices):
        due = bench.send_start + slot / bench.cfg.rate
        await trio.sleep_until(due)
        now = trio.current_time()
        if sender.raw is None or not sender.open or now > cutoff:
            return
        bench.ledger.max_send_lag = max(bench.ledger.max_send_lag, now - due)
        room = room_of_slot(slot, rooms) if rooms else None
        if not await send_one(bench, sender, seq, now, room):
            return


async def closed_loop_sends(bench: Bench, sender: Client) -> None:
    """Closed loop (--ingest): send whenever fewer than --in-flight sends are
    unanswered, until --duration is over."""
    window = sender.window = trio.Semaphore(bench.cfg.in_flight)
    stop = bench.send_start + bench.cfg.duration
    for seq in range(10**9):
        with trio.move_on_at(stop):
            await window.acquire()
        now = trio.current_time()
        if now >= stop or sender.raw is None or not sender.open:
            return
        if not await send_one(bench, sender, seq, now):
            return


async def send_task(bench: Bench, sender: Client, share: range, done: Countdown) -> None:
    try:
        if bench.cfg.mode == "ingest":
            await closed_loop_sends(bench, sender)
        else:
            await scheduled_sends(bench, sender, share)
    finally:
        done.tick()


async def send_phase(bench: Bench, nursery: trio.Nursery) -> None:
    # In rooms, each sender joined the rooms of its own share: shares stay
    # put, and a sender that is gone leaves its share not sent.
    live = bench.senders if bench.cfg.rooms else [s for s in bench.senders if s.open]
    total = bench.cfg.planned_messages or 0
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
    for client in bench.local_clients:
        nursery.start_soon(close_client, client)
    with trio.move_on_after(CLOSE_TIMEOUT + 1):
        await bench.closed.event.wait()
    nursery.cancel_scope.cancel()


async def progress_task(bench: Bench) -> None:
    """Write a status line to stderr each second; sample the server too."""
    for _ in range(math.ceil(hard_limit(bench.cfg) / PROGRESS_INTERVAL) + 1):
        bench.own.sample()
        if bench.probe is not None:
            bench.probe.sample()
        ledger = bench.ledger
        opened = sum(c.open for c in bench.local_clients) + sum(w.open for w in bench.workers)
        received = bench.received_here() + sum(w.received for w in bench.workers)
        show_progress(
            f"[{bench.phase:<7}] {trio.current_time() - bench.started:6.1f}s"
            f"  open {opened}/{len(bench.clients)}  sent {ledger.sent}"
            f"  acked {len(ledger.check.acked)}  errors {sum(ledger.errors.values())}"
            f"  deliveries {received}"
        )
        await trio.sleep(PROGRESS_INTERVAL)


async def lag_probe_task(bench: Bench) -> None:
    """Record how late a short sleep wakes up: a busy generator skews every latency."""
    for _ in range(math.ceil(hard_limit(bench.cfg) / LAG_PROBE_INTERVAL) + 1):
        due = trio.current_time() + LAG_PROBE_INTERVAL
        await trio.sleep_until(due)
        if bench.phase in ("send", "drain"):
            bench.loop_lags.append(trio.current_time() - due)


async def run_bench(bench: Bench) -> None:
    """With --rooms, create the rooms first; then connect receivers, then
    senders; settle; send; drain; close."""
    bench.started = trio.current_time()
    with trio.move_on_after(hard_limit(bench.cfg)) as hard:
        if not bench.cfg.rooms or await setup_rooms(bench):
            await run_phases(bench)
    bench.hard_limit_hit = hard.cancelled_caught
    end_unfinished_phases(bench, trio.current_time())
    check_recorded(bench)
    merge_workers(bench)


async def run_phases(bench: Bench) -> None:
    """Every task runs in one main nursery: one task per client reads its socket."""
    bench.phase = "connect"
    async with trio.open_nursery() as nursery:
        await start_workers(bench, nursery)
        bench.mark("before_connect")
        nursery.start_soon(progress_task, bench)
        nursery.start_soon(lag_probe_task, bench)
        await connect_group(bench, nursery, bench.local_receivers)
        with trio.move_on_after(CONNECT_PHASE_LIMIT + HANDSHAKE_TIMEOUT + WORKER_START_MARGIN):
            for worker in bench.workers:
                await worker.connected.wait()
        await connect_group(bench, nursery, bench.senders)
        bench.connected = trio.current_time()
        bench.mark("connected")
        bench.phase = "settle"
        await trio.sleep(bench.cfg.settle)
        await send_phase(bench, nursery)
        await drain_phase(bench)
        await stop_workers(bench)
        await close_phase(bench, nursery)


async def setup_rooms(bench: Bench) -> bool:
    """--rooms: one setup client creates the rooms; False (and why) if it could not."""
    bench.phase = "rooms"
    cfg = bench.cfg
    show_progress(f"[rooms  ] creating {cfg.rooms} public rooms")
    try:
        bench.room_ids = await create_rooms(
            cfg.urls[0], hello_frame(f"setup-{bench.run}"), bench.run, cfg.rooms
        )
    except (*SOCKET_ERRORS, Closed, trio.TooSlowError, RoomSetupFailed) as exc:
        why = failure_label(exc)
        if why.endswith("rate_limited"):
            why += " (raise QUARTCHAT_ROOM_RATE and QUARTCHAT_ROOM_BURST for the server)"
        bench.setup_error = f"creating the rooms failed: {why}"
        return False
    return True


async def start_workers(bench: Bench, nursery: trio.Nursery) -> None:
    """--procs N: start the N - 1 worker processes (they connect their receivers at once);
    from now on the generator's CPU and memory are theirs and ours, added up."""
    for index, share in enumerate(shares(bench.cfg.receivers, bench.cfg.procs)[1:], start=1):
        worker = Worker(index, share)
        bench.workers.append(worker)
        await spawn(worker, bench.cfg, bench.run, bench.room_ids)
        if worker.process is not None:
            bench.own.pids = (*bench.own.pids, worker.process.pid)
        nursery.start_soon(follow, worker)


async def stop_workers(bench: Bench) -> None:
    """Ask every worker to close its clients, and wait (bounded) for their results."""
    for worker in bench.workers:
        await worker.stop()
    with trio.move_on_after(RESULT_TIMEOUT):
        for worker in bench.workers:
            await worker.finished.wait()


def worker_results(bench: Bench) -> dict[str, Any]:
    """What a worker sends back: each receiver's inbox, and its share of the ledger."""
    ledger = bench.ledger
    return {
        "clients": [{"welcomed": c.welcomed, **inbox_record(c.inbox)} for c in bench.receivers],
        "received": ledger.received,
        "latencies": ledger.delivery_latencies,
        "last_delivery": ledger.last_delivery,
        "foreign": ledger.foreign,
        "malformed": ledger.malformed,
        "message_frames": ledger.message_frames,
        "binary_frames": ledger.binary_frames,
        "stray_acks": ledger.stray_acks,
        "errors": dict(ledger.errors),
        "connect_failures": dict(ledger.connect_failures),
        "unexpected_closes": dict(ledger.unexpected_closes),
        "library_errors": dict(ledger.library_errors),
    }


def merge_workers(bench: Bench) -> None:
    """Put each worker's inboxes on its receivers and add up its ledger."""
    ledger = bench.ledger
    for worker in bench.workers:
        res = worker.result
        if res is None:
            bench.worker_errors.append(f"worker {worker.index}: {worker.error or 'no results'}")
            continue
        for index, record in zip(worker.share, res["clients"], strict=True):
            client = bench.receivers[index]
            client.welcomed = record["welcomed"]
            client.inbox = inbox_from(record)
        ledger.received += res["received"]
        ledger.delivery_latencies += res["latencies"]
        ledger.last_delivery = max(ledger.last_delivery, res["last_delivery"])
        ledger.foreign += res["foreign"]
        ledger.malformed += res["malformed"]
        ledger.message_frames += res["message_frames"]
        ledger.binary_frames += res["binary_frames"]
        ledger.stray_acks += res["stray_acks"]
        ledger.errors.update(res["errors"])
        ledger.connect_failures.update(res["connect_failures"])
        ledger.unexpected_closes.update(res["unexpected_closes"])
        ledger.library_errors.update(res["library_errors"])


def end_unfinished_phases(bench: Bench, now: float) -> None:
    """After a cut by the hard limit, phases that never ended end now."""
    bench.connected = bench.connected or now
    bench.send_start = bench.send_start or now
    bench.send_end = bench.send_end or now
    bench.drain_end = bench.drain_end or now


# ---------------------------------------------------------------- results


def verdict(bench: Bench, deliveries: dict[str, int]) -> list[str]:
    """Reasons the run failed; empty when it passed."""
    ledger = bench.ledger
    unacked = ledger.sent - len(ledger.check.acked)
    planned = bench.cfg.planned_messages
    not_sent = 0 if planned is None else planned - ledger.sent
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
        (bench.setup_error is not None, str(bench.setup_error)),
        (
            deliveries["leaked"] > 0,
            f"{deliveries['leaked']} deliveries to clients not in the message's room",
        ),
        *((True, error) for error in bench.worker_errors),
    ]
    return [reason for failed, reason in checks if failed]


def summarize(bench: Bench) -> dict[str, Any]:
    cfg, ledger = bench.cfg, bench.ledger
    planned, acked = cfg.planned_messages, len(ledger.check.acked)
    deliveries = ledger.check.tally(c.inbox for c in bench.clients if c.welcomed)
    send_secs = max(bench.send_end - bench.send_start, 1e-9)
    delivery_secs = max(ledger.last_delivery - bench.send_start, 1e-9)
    failures = verdict(bench, deliveries)
    return {
        "case": cfg.mode,
        "run": bench.run,
        "started_at": bench.started_at,
        "config": {
            "urls": list(cfg.urls),
            "receivers": cfg.receivers,
            "senders": cfg.senders,
            "rate": cfg.rate if cfg.mode == "load" else None,
            "in_flight": cfg.in_flight if cfg.mode == "ingest" else None,
            "duration": cfg.duration,
            "drain": cfg.drain,
            "connect_concurrency": cfg.connect_concurrency,
            "procs": cfg.procs,
            "check_after": cfg.check_after,
            "rooms": cfg.rooms,
            "settle": cfg.settle,
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
            "planned": planned,
            "sent": ledger.sent,
            "not_sent": None if planned is None else planned - ledger.sent,
            "acked": acked,
            "acked_per_second": round(acked / send_secs, 1),
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
            "message_frames": ledger.message_frames,
            "binary_frames": ledger.binary_frames,
        },
        "latency_ms": {
            "ack": percentiles_ms(ledger.ack_latencies),
            "delivery": percentiles_ms(ledger.delivery_latencies),
        },
        "server": None if bench.probe is None else bench.probe.summary(PHASES, POINTS),
        "generator": {
            **bench.own.summary(PHASES, POINTS),
            "loop_lag_ms": percentiles_ms(bench.loop_lags),
            "wall_seconds": round(bench.drain_end - bench.started, 3),
            "drain_seconds": round(bench.drain_end - bench.send_end, 3),
        },
        "pass": not failures,
        "failures": failures,
    }


def sending_rows(res: dict[str, Any]) -> list[Row]:
    se, cfg = res["sending"], res["config"]
    if res["case"] == "ingest":
        planned = f"closed loop, {cfg['in_flight']} in flight per sender, {cfg['duration']:g} s"
        rows = [("mode", planned), ("acked messages/s", str(se["acked_per_second"]))]
    else:
        rows = [
            ("planned", f"{se['planned']}  ({cfg['rate']:g} msg/s x {cfg['duration']:g} s)"),
            ("not sent", str(se["not_sent"])),
        ]
    return [
        ("sending", ""),
        *rows,
        ("sent", f"{se['sent']}  ({se['send_rate']} msg/s, max lag {se['max_send_lag_ms']} ms)"),
        ("acked", str(se["acked"])),
        ("refused by error / unanswered", f"{se['refused']} / {se['unanswered']}"),
        ("error frames by code", fmt_counter(se["errors"])),
    ]


def report_rows(res: dict[str, Any]) -> list[Row]:
    """(label, value) rows; a row with an empty value is a section heading."""
    cl, de, lat, cfg = res["clients"], res["deliveries"], res["latency_ms"], res["config"]
    rooms = cfg.get("rooms", 0)
    if rooms:
        where = f"{rooms} public rooms, receivers round-robin, message i to room i mod {rooms}"
        whose = " of its room"
    else:
        where, whose = "general", ""
    rows = [
        ("clients", ""),
        ("messages go to", where),
        ("receivers connected", f"{cl['receivers_connected']} / {cfg['receivers']}"),
        ("senders connected", f"{cl['senders_connected']} / {cfg['senders']}"),
        ("connects failed", fmt_count(cl["connects_failed"], cl["connect_failures"])),
        ("unexpected closes (by code)", fmt_count(cl["unexpected_closes"], cl["close_codes"])),
        ("WebSocket protocol errors", fmt_counter(cl["library_errors"])),
        *sending_rows(res),
        ("ack latency ms", fmt_latency(lat["ack"])),
        ("deliveries", ""),
        ("checked", "after the run (--check-after)" if cfg["check_after"] else "as they came"),
        ("expected to receivers", f"{de['expected_receivers']}  (acked x receivers{whose})"),
        ("expected to senders", f"{de['expected_senders']}  (acked x other senders{whose})"),
        ("received (of expected)", f"{de['received']} / {de['expected']}"),
        ("lost", f"{de['lost']}  (on {de['clients_with_loss']} clients)"),
        ("duplicated", str(de["duplicated"])),
        ("echoed to sender", str(de["echoes"])),
        ("out of order", str(de["out_of_order"])),
        *([("to clients not in its room", str(de["leaked"]))] if rooms else []),
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
    procs = cfg.get("procs", 1)
    title = "generator (this process)" if procs == 1 else f"generator ({procs} processes, added up)"
    rows += proc_rows(title, gen)
    rows += [
        ("event loop lag ms", fmt_latency(gen["loop_lag_ms"])),
        ("s connecting / whole run", f"{cl['connect_seconds']} / {gen['wall_seconds']}"),
    ]
    return rows


def proc_rows(title: str, proc: dict[str, Any]) -> list[Row]:
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


def notes(res: dict[str, Any]) -> list[str]:
    lag_p99 = res["generator"]["loop_lag_ms"]["p99"]
    if lag_p99 is not None and lag_p99 > LAG_WARN_MS:
        return [f"generator event loop lag p99 {lag_p99} ms: latencies include its delay"]
    return []


def run(cfg: Config) -> dict[str, Any]:
    """Run the message case and return its results."""
    bench = Bench.create(cfg)
    trio.run(run_bench, bench, clock=SharedClock())
    return summarize(bench)
