"""The replay of a user in a few rooms, after a busy time in many others
(issue 21): replay and history must never scan other rooms' traffic.

For each backend asked for (``sqlite``: a fresh SQLite file; ``redis``: a
private ``redis-server`` on a free port, in a temporary folder, never the
machine's Redis), this

1. creates a viewer, a friend and ``--writers`` other users; the viewer is in
   ``general`` and two other rooms, and their cursor is the log's last id;
2. while the viewer is away, appends ``--messages`` messages (in batches of
   ``--batch``) to ``--other-rooms`` rooms the viewer is not in, with, spread
   among them, ``--visible`` messages the viewer will see: their three
   rooms' and private messages to them;
3. times ``--runs`` replays after that cursor (``read_after`` with the
   viewer's three rooms and a limit of ``--limit``, the server's default
   ``QUARTCHAT_REPLAY_LIMIT``), checks each holds exactly the viewer's
   messages in id order, and times a history page of one of the viewer's
   rooms and the viewer's unread counts the same way.

Usage, from the repository root::

    .venv/bin/python scripts/replay_rooms.py [--backends sqlite,redis] [--messages 100000]

Progress goes to stderr; a table of milliseconds per call (median, p95,
max; wall time as the caller sees it, round trip included) to stdout, and
every figure to the JSON file (``bench-results/replay-rooms-<timestamp>.json``).
Exit status 1 when a replay was wrong, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio
from bench_backends import free_port, redis_answers, running, wait_until

from quartchat.backends.base import MessageLog
from quartchat.backends.redis_log import RedisLog
from quartchat.backends.sqlite_log import SqliteLog
from quartchat.models import GENERAL, Draft, Message, User

BACKENDS = ("sqlite", "redis")
#: The viewer's rooms besides ``general``.
VIEWER_ROOMS = ("r-viewer-design", "r-viewer-ops")


def note(text: str) -> None:
    print(f"[replay_rooms] {text}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time a replay across a user's rooms after traffic in many others.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--backends", default=",".join(BACKENDS), help="of sqlite, redis")
    parser.add_argument("--messages", type=int, default=100_000, help="to other rooms")
    parser.add_argument("--other-rooms", type=int, default=100)
    parser.add_argument("--visible", type=int, default=200, help="messages the viewer sees")
    parser.add_argument("--writers", type=int, default=50, help="users writing elsewhere")
    parser.add_argument("--batch", type=int, default=500, help="messages per append")
    parser.add_argument("--limit", type=int, default=500, help="the replay's limit")
    parser.add_argument("--runs", type=int, default=30, help="timed calls of each kind")
    parser.add_argument("--json", dest="json_path", type=Path, default=None)
    args = parser.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    if not args.backends or any(b not in BACKENDS for b in args.backends):
        parser.error(f"--backends: of {', '.join(BACKENDS)}")
    if min(args.messages, args.other_rooms, args.writers, args.batch, args.limit, args.runs) < 1:
        parser.error("every count must be at least 1")
    if args.json_path is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        args.json_path = Path("bench-results") / f"replay-rooms-{stamp}.json"
    return args


@asynccontextmanager
async def opened(backend: str, folder: Path) -> AsyncIterator[MessageLog]:
    """A fresh log of ``backend`` in ``folder``, started and closed here."""
    with ExitStack() as stack:
        log: MessageLog
        if backend == "redis":
            port = free_port()
            server = stack.enter_context(
                running(
                    [
                        "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                        "--dir", str(folder), "--appendonly", "no", "--save", "",
                    ],
                    dict(os.environ),
                    folder / "redis.log",
                )
            )  # fmt: skip
            wait_until(lambda: redis_answers(port), server, "redis-server")
            log = RedisLog(f"redis://127.0.0.1:{port}/0", prefix="bench:")
        else:
            log = await SqliteLog.open(folder / "chat.db")
        async with trio.open_nursery() as nursery:
            await nursery.start(log.run)
            try:
                yield log
            finally:
                await log.aclose()
                nursery.cancel_scope.cancel()


async def fill(log: MessageLog, args: argparse.Namespace) -> tuple[User, int, list[Message]]:
    """The viewer, their cursor, and the messages they should see after it."""
    viewer = (await log.create_user("viewer"))[0]
    friend = (await log.create_user("friend"))[0]
    writers = [(await log.create_user(f"writer-{i}"))[0] for i in range(args.writers)]
    cursor = (await log.append([Draft(friend, "before", "before the cursor", None)]))[0]
    cursor_id = cursor.message.id if not isinstance(cursor, Exception) else 0
    total = args.messages + args.visible
    every = max(1, total // max(1, args.visible))
    visible: list[Message] = []
    sent = 0
    started = time.monotonic()
    while sent < total:
        drafts = []
        for i in range(sent, min(total, sent + args.batch)):
            if i % every == every - 1 and i // every < args.visible:
                kind = i // every % 4
                if kind == 3:
                    drafts.append(Draft(friend, f"v{i}", f"to viewer {i}", viewer))
                else:
                    room = (GENERAL, *VIEWER_ROOMS)[kind]
                    drafts.append(Draft(friend, f"v{i}", f"{room} {i}", None, room=room))
            else:
                writer = writers[i % len(writers)]
                room = f"r-other-{i % args.other_rooms}"
                drafts.append(Draft(writer, f"n{i}", f"elsewhere {i}", None, room=room))
        results = await log.append(drafts)
        for draft, result in zip(drafts, results, strict=True):
            if isinstance(result, Exception):
                raise RuntimeError(f"an append failed: {result!r}")
            if draft.sender == friend:
                visible.append(result.message)
        sent += len(drafts)
        if sent % 10_000 < args.batch or sent == total:
            rate = sent / (time.monotonic() - started)
            note(f"  {sent:,}/{total:,} messages stored ({rate:,.0f}/s)")
    return viewer, cursor_id, visible


async def timed(runs: int, call: Callable[[], Awaitable[Any]]) -> tuple[list[float], Any]:
    """Milliseconds of each of ``runs`` calls, and the last call's result."""
    result: Any = None
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = await call()
        times.append((time.perf_counter() - start) * 1000)
    return times, result


def figures(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(p95, 3),
        "max_ms": round(ordered[-1], 3),
    }


async def measure(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    rooms = {GENERAL, *VIEWER_ROOMS}
    with tempfile.TemporaryDirectory(prefix=f"replay-rooms-{backend}-") as folder:
        async with opened(backend, Path(folder)) as log:
            note(f"{backend}: filling the log")
            viewer, cursor, visible = await fill(log, args)
            expected = visible[-args.limit :]
            note(f"{backend}: timing {args.runs} replays after id {cursor:,}")
            replay_ms, replay = await timed(
                args.runs, lambda: log.read_after(viewer.id, cursor, args.limit, rooms)
            )
            right = replay.messages == expected
            own_room = VIEWER_ROOMS[0]
            history_ms, _ = await timed(
                args.runs, lambda: log.history(viewer.id, None, 50, None, own_room)
            )
            markers = dict.fromkeys(rooms, cursor)
            unread_ms, unread = await timed(args.runs, lambda: log.unread(viewer.id, markers, {}))
            last_id = await log.last_id()
    row = {
        "backend": backend,
        "messages": last_id,
        "other_rooms": args.other_rooms,
        "replayed": len(replay.messages),
        "replay_right": right,
        "replay": figures(replay_ms),
        "history_room_50": figures(history_ms),
        "unread_3_rooms": figures(unread_ms),
        "unread": {room: [c.unread, c.mentions] for room, c in unread.rooms.items()},
    }
    note(f"{backend}: {json.dumps(row)}")
    return row


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| backend | log | replayed | right | replay ms (median/p95/max) "
          "| history 50 ms | unread ms |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        cells = [
            row["backend"],
            f"{row['messages']:,}",
            str(row["replayed"]),
            "yes" if row["replay_right"] else "NO",
            *(
                "/".join(str(row[kind][k]) for k in ("median_ms", "p95_ms", "max_ms"))
                for kind in ("replay", "history_room_50", "unread_3_rooms")
            ),
        ]
        print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = [trio.run(measure, backend, args) for backend in args.backends]
    print_table(rows)
    args.json_path.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "json_path"}
    args.json_path.write_text(json.dumps({"settings": settings, "runs": rows}, indent=2))
    print(f"json    {args.json_path}")
    return 0 if all(row["replay_right"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
