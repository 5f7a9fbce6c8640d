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
the repository root), ``--connect-concurrency`` (50), ``--procs`` (1: the
receivers are read by this process alone; N spreads them over N processes,
for 1000 receivers and more on a machine with cores to spare).

Other cases, each instead of the run above: ``--ingest`` (closed loop: each
sender keeps ``--in-flight`` sends unanswered for ``--duration`` s, 10
receivers by default; reports acked messages/s), ``--storm N`` (N new users
connect, ``--storm-concurrency`` handshakes at a time; reports the time
until all are welcomed and the presence objects each one got) and ``--idle
N`` (N idle welcomed tabs of one user; reports server RSS per connection).
``--deflate`` makes the storm and idle clients offer permessage-deflate as
browsers do. The server's limits apply: raise ``QUARTCHAT_SEND_RATE`` and
``QUARTCHAT_SEND_BURST`` for ``--ingest``, and
``QUARTCHAT_NEW_IDENTITY_BURST`` for many new users from this one address,
and ``QUARTCHAT_ROOM_RATE`` and ``QUARTCHAT_ROOM_BURST`` for ``--rooms``
(one user creates them all).
The pieces live in ``scripts/benchlib/``.

``--rooms N`` runs the open loop in N public rooms instead of general: a
setup client creates them, receivers join them round-robin, message i goes
to room i mod N (each sender joins the rooms of its messages), and every
client expects only the messages of its rooms; one delivered to a client
outside its room fails the run. ``scripts/bench_rooms.py`` compares 1000
receivers in 100 rooms with 10 in one (issue 21). ``--settle S`` waits S
seconds between connecting and sending (1).

The server limits each user to 10 msg/s (burst 20), so keep rate/senders at 10
or below. Each second a progress line goes to stderr. At the end the tool
prints a table to stdout and writes the figures as JSON. Exit status: 0 when
every planned message (with --ingest: every send) was sent and acked and
nothing was lost, duplicated, echoed or reordered (with --storm and --idle:
every client was welcomed and none was closed); 1 otherwise; 2 on bad usage.
Only loopback servers are accepted.
"""

from __future__ import annotations

import sys

from benchlib import connections, load
from benchlib.config import Config, parse_args
from benchlib.output import end_progress, print_report, warn, write_json
from benchlib.procstats import child_pids

#: The server's default sustained send rate per user.
PER_USER_RATE = 10.0


def raise_fd_limit(needed: int) -> None:
    """Lift the soft open-files limit towards the hard one if the run needs it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        warn(f"open-files limit {target} is below the {needed} this run needs")


def warn_about(cfg: Config) -> None:
    """Warnings about a run that will likely measure the server's limits, not its speed."""
    if cfg.mode == "load" and cfg.rate / cfg.senders > PER_USER_RATE:
        per_user = cfg.rate / cfg.senders
        warn(f"{per_user:g} msg/s per sender is over the server's {PER_USER_RATE:g}/s per user;")
        warn("expect rate_limited errors (add --senders)")
    for pid in cfg.server_pids:
        children = child_pids(pid)
        if children:
            warn(f"--server-pid {pid} has child processes {' '.join(children)};")
            warn("hypercorn serves from its worker processes: pass their pids instead")


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    raise_fd_limit(cfg.receivers + cfg.senders + cfg.clients + 64)
    warn_about(cfg)
    case = connections if cfg.mode in ("storm", "idle") else load
    try:
        results = case.run(cfg)
    except KeyboardInterrupt:
        end_progress()
        print("interrupted", file=sys.stderr)
        return 130
    end_progress()
    urls = " ".join(cfg.urls)
    title = f"quartchat bench {cfg.mode}  run {results['run']}  {urls}  {results['started_at']}"
    notes = load.notes(results) if case is load else []
    print_report(title, case.report_rows(results), notes, results["failures"])
    write_json(results, cfg.json_path)
    return 0 if results["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
