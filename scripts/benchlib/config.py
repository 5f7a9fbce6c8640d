"""The command line of ``scripts/bench.py``: one frozen ``Config`` per run."""

from __future__ import annotations

import argparse
import ipaddress
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_URL = "ws://127.0.0.1:8000/ws"
MAX_CLIENTS = 20_000
MAX_MESSAGES = 1_000_000
MAX_ROOMS = 10_000
#: Default seconds between connecting and sending.
DEFAULT_SETTLE = 1.0
#: Receivers when --receivers is not given: the open-loop run, and --ingest.
DEFAULT_RECEIVERS = {"load": 100, "ingest": 10}


class UsageError(Exception):
    """A bad command line; reported with exit status 2."""


@dataclass(frozen=True, slots=True)
class Config:
    #: "load" (open loop at --rate), "ingest", "storm" or "idle".
    mode: str
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
    #: --ingest: sends each sender keeps unanswered.
    in_flight: int
    #: --storm N / --idle N: how many clients.
    clients: int
    #: --storm and --idle: offer permessage-deflate as browsers do.
    deflate: bool
    #: Processes reading the receivers (this one and procs - 1 workers).
    procs: int = 1
    #: Receivers keep their frames and check them after the run (see load.Client.recorded).
    check_after: bool = False
    #: --storm and --idle: seconds to stay connected once settled, to read
    #: what idle connections cost the server (its pings and their answers).
    hold: float = 0.0
    #: --rooms N: public rooms the run creates and spreads its clients and
    #: messages over (0: everything in general, as before rooms).
    rooms: int = 0
    #: Seconds between connecting and sending, for presence and joins to settle.
    settle: float = DEFAULT_SETTLE

    @property
    def planned_messages(self) -> int | None:
        """Messages the open-loop run sends; None for the closed loop (as many as acked)."""
        return math.floor(self.rate * self.duration) if self.mode == "load" else None


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
        f" (default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--receivers",
        type=int,
        default=None,
        help="clients that only listen (100, or 10 with --ingest)",
    )
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
    cases = parser.add_mutually_exclusive_group()
    cases.add_argument(
        "--ingest",
        action="store_true",
        help="closed loop instead of --rate: each sender keeps --in-flight sends unanswered"
        " for --duration s; reports acked messages/s",
    )
    cases.add_argument(
        "--storm",
        type=int,
        metavar="N",
        help="connect N new users, --storm-concurrency handshakes at a time; reports the time"
        " until all are welcomed and the presence objects each one got",
    )
    cases.add_argument(
        "--idle",
        type=int,
        metavar="N",
        help="hold N idle welcomed connections (tabs of one user); reports server RSS per"
        " connection (with --server-pid)",
    )
    parser.add_argument("--in-flight", type=int, default=4, help="--ingest: unanswered sends")
    parser.add_argument(
        "--storm-concurrency", type=int, default=100, help="--storm: handshakes at a time"
    )
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="--storm, --idle: offer permessage-deflate in the handshake, as browsers do",
    )
    parser.add_argument(
        "--hold",
        type=float,
        default=0.0,
        metavar="S",
        help="--storm, --idle: once settled, stay connected S seconds more and report the"
        " server's CPU over them: what the idle connections cost it (pings and their answers)",
    )
    parser.add_argument(
        "--procs",
        type=int,
        default=1,
        help="spread the receivers over this many processes (this one included), so that"
        " reading their frames is not limited to one core",
    )
    parser.add_argument(
        "--check-after",
        action="store_true",
        help="receivers keep every frame and check it once the run is over, so the"
        " generator's CPU during the run goes to reading only (memory: about 200 bytes a"
        " delivery, 800 MB for 1000 receivers at 400 msg/s for 10 s)",
    )
    parser.add_argument(
        "--rooms",
        type=int,
        default=0,
        metavar="N",
        help="create N public rooms; receivers join them round-robin and the messages go to"
        " them in turn, each checked against its room's members only (0: all in general)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=DEFAULT_SETTLE,
        metavar="S",
        help="seconds to wait between connecting and sending",
    )
    args = parser.parse_args(argv)
    try:
        return build_config(args)
    except UsageError as exc:
        parser.error(str(exc))  # exits with status 2


def build_config(args: argparse.Namespace) -> Config:
    if args.storm is not None:
        mode = "storm"
    elif args.idle is not None:
        mode = "idle"
    else:
        mode = "ingest" if args.ingest else "load"
    urls = tuple(args.urls or [DEFAULT_URL])
    for url in urls:
        check_loopback(url)
    pids = tuple(args.server_pids or ())
    receivers = args.receivers if args.receivers is not None else DEFAULT_RECEIVERS.get(mode, 0)
    clients = args.storm if mode == "storm" else args.idle if mode == "idle" else 0
    checks = [
        (0 <= receivers <= MAX_CLIENTS, f"--receivers must be 0..{MAX_CLIENTS}"),
        (1 <= args.senders <= MAX_CLIENTS, f"--senders must be 1..{MAX_CLIENTS}"),
        (args.rate > 0, "--rate must be > 0"),
        (0 < args.duration <= 3600, "--duration must be in (0, 3600]"),
        (0 <= args.drain <= 600, "--drain must be in [0, 600]"),
        (args.connect_concurrency >= 1, "--connect-concurrency must be >= 1"),
        (args.rate * args.duration <= MAX_MESSAGES, f"rate x duration over {MAX_MESSAGES}"),
        (1 <= args.in_flight <= 1000, "--in-flight must be 1..1000"),
        (args.storm_concurrency >= 1, "--storm-concurrency must be >= 1"),
        (
            mode not in ("storm", "idle") or 1 <= clients <= MAX_CLIENTS,
            f"--storm and --idle take 1..{MAX_CLIENTS} clients",
        ),
        (not args.deflate or mode in ("storm", "idle"), "--deflate goes with --storm or --idle"),
        (0 <= args.hold <= 3600, "--hold must be in [0, 3600]"),
        (not args.hold or mode in ("storm", "idle"), "--hold goes with --storm or --idle"),
        (1 <= args.procs <= 16, "--procs must be 1..16"),
        (args.procs == 1 or mode in ("load", "ingest"), "--procs goes with the message runs"),
        (0 <= args.rooms <= MAX_ROOMS, f"--rooms must be 0..{MAX_ROOMS}"),
        (not args.rooms or mode == "load", "--rooms goes with the open-loop run"),
        (0 <= args.settle <= 600, "--settle must be in [0, 600]"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    for pid in pids:
        if not Path(f"/proc/{pid}/stat").exists():
            raise UsageError(f"--server-pid {pid}: no such process")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name = "bench" if mode == "load" else mode
    json_path = args.json_path or REPO_ROOT / "bench-results" / f"{name}-{stamp}.json"
    return Config(
        mode=mode,
        urls=urls,
        receivers=receivers,
        senders=args.senders,
        rate=args.rate,
        duration=args.duration,
        drain=args.drain,
        server_pids=pids,
        json_path=json_path,
        connect_concurrency=(
            args.storm_concurrency if mode == "storm" else args.connect_concurrency
        ),
        in_flight=args.in_flight,
        clients=clients,
        deflate=args.deflate,
        procs=args.procs,
        check_after=args.check_after,
        hold=args.hold,
        rooms=args.rooms,
        settle=args.settle,
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
