"""What an idle welcomed WebSocket costs, layer by layer: the floor under quartchat.

Starts a server of its own on a free loopback port, one of three apps on
hypercorn's Trio worker with quartchat's hypercorn.toml (and its hypercorn
guards, so a deflate offer is declined in all three), then holds ``--count``
idle connections with the bench's clients (``scripts/idle_rss.py``) and
prints the server's RSS per connection as one JSON line per count:

- ``asgi``: a bare ASGI app, no framework: accept, read the ``hello``,
  answer a one-line ``welcome``, then read until the client goes;
- ``quart``: the same in a bare Quart-Trio app (``@app.websocket``);
- ``quartchat``: the chat itself on a fresh SQLite file.

The difference between two layers is what the upper one costs per
connection. ``--trace`` instead runs the server under tracemalloc, holds
``--count`` connections, snapshots, holds as many more, snapshots again and
prints the allocations that grew between the two, grouped by traceback:
what each idle connection keeps alive. ``--cycles N`` connects and
disconnects N times (``idle_rss.py --cycles``) and prints RSS along the way.

Usage (the open-files limit must allow count + a few hundred)::

    ulimit -n 20000
    .venv/bin/python scripts/idle_floor.py --app asgi --count 1000 --count 10000
    .venv/bin/python scripts/idle_floor.py --app quartchat --count 1000 --deflate
    .venv/bin/python scripts/idle_floor.py --app quartchat --trace --count 500
    .venv/bin/python scripts/idle_floor.py --app quartchat --cycles 60000

Server-side settings go through the environment (``QUARTCHAT_*``,
``MALLOC_ARENA_MAX``...), which the server inherits.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import idle_rss

HERE = Path(__file__).resolve()
APPS = ("asgi", "quart", "quartchat")
WELCOME = '{"type":"welcome","token":"floor"}'
#: Seconds a server has to start listening.
START_TIMEOUT = 90.0
#: Frames kept per traceback in --trace.
TRACE_FRAMES = 40


# ----- the servers (run in a child process: ``idle_floor.py serve``) ---------


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The floor: the least an ASGI app can do to hold a welcomed socket."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    sent_welcome = False
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if not sent_welcome:
            await send({"type": "websocket.send", "text": WELCOME})
            sent_welcome = True


def quart_app() -> Any:
    """The same as :func:`asgi_app` as a bare Quart-Trio app."""
    from quart import websocket
    from quart_trio import QuartTrio

    app = QuartTrio(__name__)

    @app.websocket("/ws")
    async def chat_socket() -> None:
        await websocket.accept()
        await websocket.receive()
        await websocket.send(WELCOME)
        while True:
            await websocket.receive()

    return app


def install_snapshot_handler(directory: Path) -> None:
    """SIGUSR2 starts tracemalloc (once the server is up: tracing the start
    would only slow it); SIGUSR1 writes a snapshot to ``directory/<n>.snap``."""
    taken = [0]
    signal.signal(signal.SIGUSR2, lambda signum, frame: tracemalloc.start(TRACE_FRAMES))

    def snapshot(signum: int, frame: object) -> None:
        taken[0] += 1
        path = directory / f"{taken[0]}.snap"
        tracemalloc.take_snapshot().dump(str(path) + ".part")
        os.replace(str(path) + ".part", path)

    signal.signal(signal.SIGUSR1, snapshot)


def install_trim_handler() -> None:
    """SIGUSR2 collects garbage, has glibc's malloc hand the memory it holds
    free back to the system (``malloc_trim(0)``: what RSS keeps after that
    is in use or fragmented) and prints pymalloc's statistics to stderr."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")

    def trim(signum: int, frame: object) -> None:
        import gc

        gc.set_debug(gc.DEBUG_SAVEALL)  # keep what the collection finds, to count it
        found = gc.collect()
        kinds: dict[str, int] = {}
        for obj in gc.garbage:
            name = f"{type(obj).__module__}.{type(obj).__qualname__}"
            kinds[name] = kinds.get(name, 0) + 1
        gc.garbage.clear()
        gc.set_debug(0)
        top = sorted(kinds.items(), key=lambda item: -item[1])[:25]
        print(f"garbage: {found} objects in cycles; {top}", file=sys.stderr, flush=True)
        libc.malloc_trim(0)
        sys._debugmallocstats()  # pymalloc's arenas and pools, to stderr

    signal.signal(signal.SIGUSR2, trim)


def serve(app_name: str, port: int, snapshots: Path | None) -> None:
    if snapshots is not None:
        install_snapshot_handler(snapshots)
    else:
        install_trim_handler()
    bind = f"127.0.0.1:{port}"
    if app_name == "quartchat":
        from quartchat.cli import main

        sys.exit(main(["-b", bind]))
    import trio
    from hypercorn.trio import serve as hypercorn_serve

    from quartchat.cli import hypercorn_config
    from quartchat.patches import apply as apply_patches

    apply_patches()  # the floor apps run on the same guarded hypercorn as the chat
    config = hypercorn_config([bind])
    app = asgi_app if app_name == "asgi" else quart_app()
    trio.run(hypercorn_serve, app, config)


# ----- the driver ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One ``serve`` child on a free port, stopped on exit."""

    def __init__(self, app: str, snapshots: Path | None = None) -> None:
        self.port = free_port()
        self.snapshots = snapshots
        self._db = tempfile.TemporaryDirectory(prefix="idle-floor-")
        env = dict(os.environ)
        env.setdefault("QUARTCHAT_DB", str(Path(self._db.name) / "chat.db"))
        # Cycles make a new identity per cycle with --new-users.
        env.setdefault("QUARTCHAT_NEW_IDENTITY_BURST", "1000000")
        command = [sys.executable, str(HERE), "serve", "--app", app, "--port", str(self.port)]
        if snapshots is not None:
            command += ["--snapshots", str(snapshots)]
        self.process = subprocess.Popen(command, env=env)
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        if snapshots is not None:
            self.process.send_signal(signal.SIGUSR2)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited with status {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("the server did not listen in time")

    def snapshot(self) -> tracemalloc.Snapshot:
        """Have the server dump a tracemalloc snapshot and load it."""
        assert self.snapshots is not None
        before = set(self.snapshots.glob("*.snap"))
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            new = set(self.snapshots.glob("*.snap")) - before
            if new:
                return tracemalloc.Snapshot.load(str(new.pop()))
            time.sleep(0.2)
        raise SystemExit("no snapshot from the server")

    def trim(self) -> None:
        """Have the server's malloc return its free memory (see install_trim_handler)."""
        self.process.send_signal(signal.SIGUSR2)
        time.sleep(2)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._db.cleanup()


def measure(app: str, count: int, deflate: bool) -> dict[str, Any]:
    server = Server(app)
    try:
        report = idle_rss.measure_idle(server.url, server.pid, count, deflate)
    finally:
        server.stop()
    return {"app": app, **report}


def trace(app: str, count: int, deflate: bool, top: int, keep: Path | None) -> None:
    """Print what grew between ``count`` and ``2 * count`` idle connections
    (the two snapshots stay in ``keep``, when given, as 1.snap and 2.snap)."""
    with tempfile.TemporaryDirectory(prefix="idle-trace-") as scratch:
        folder = keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.snap"):
            old.unlink()
        server = Server(app, folder)
        try:
            snaps = idle_rss.hold_in_steps(
                server.url, count, deflate, steps=2, at_each=server.snapshot
            )
        finally:
            server.stop()
    print_growth(snaps[0], snaps[1], count, top)


#: Who made an allocation: the newest frame of its traceback in one of these
#: (quartchat's hypercorn wrappers count as hypercorn, as they run it).
LAYERS = (
    ("hypercorn", ("/quartchat/cli.py", "/quartchat/patches/", "/hypercorn/")),
    ("quartchat", ("/quartchat/",)),
    ("quart", ("/quart/", "/quart_trio/", "/werkzeug/", "/flask/")),
    ("floor app", ("idle_floor.py",)),
)


def layer_of(traceback: tracemalloc.Traceback) -> tuple[str, str]:
    """The layer that made an allocation, and its newest frame in that layer."""
    for frame in reversed(traceback):  # newest first
        for name, parts in LAYERS:
            if any(part in frame.filename for part in parts):
                return name, f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno}"
    return "other", str(traceback[-1])


def print_growth(
    first: tracemalloc.Snapshot, second: tracemalloc.Snapshot, count: int, top: int
) -> None:
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    first, second = first.filter_traces(ignore), second.filter_traces(ignore)
    layers: dict[str, float] = {}
    spots: dict[tuple[str, str], float] = {}
    for stat in second.compare_to(first, "traceback"):
        key = layer_of(stat.traceback)
        layers[key[0]] = layers.get(key[0], 0) + stat.size_diff / count
        spots[key] = spots.get(key, 0) + stat.size_diff / count
    print("=== per connection, by layer (the newest frame of the innermost layer) ===")
    for name, size in sorted(layers.items(), key=lambda item: -item[1]):
        print(f"{size:8.0f} B/conn  {name}")
    for (name, spot), size in sorted(spots.items(), key=lambda item: -item[1])[:top]:
        print(f"{size:8.0f} B/conn  {name:<10} {spot}")
    for key in ("lineno", "traceback"):
        stats = second.compare_to(first, key)
        grown = sum(s.size_diff for s in stats)
        print(f"\n=== by {key}: {grown / count:.0f} B per connection traced in all ===")
        for stat in stats[:top]:
            if stat.size_diff <= 0:
                continue
            print(
                f"{stat.size_diff / count:8.0f} B/conn  {stat.count_diff / count:6.2f} blocks/conn"
            )
            frames = stat.traceback.format(limit=TRACE_FRAMES if key == "traceback" else 1)
            print("    " + "\n    ".join(line for line in frames if line.startswith("  File")))


def cycles(args: argparse.Namespace) -> None:
    """--cycles: RSS along connect/disconnect cycles; with --trace, what grew
    between the second and the last sample (every ``--count`` cycles)."""
    with tempfile.TemporaryDirectory(prefix="idle-trace-") as scratch:
        server = Server(args.app, Path(scratch) if args.trace else None)
        snaps: list[tracemalloc.Snapshot] = []
        try:
            report = idle_rss.run_cycles(
                server.url,
                server.pid,
                args.cycles,
                args.deflate,
                new_users=args.new_users,
                sample_every=(args.count or [20_000])[0],
                at_sample=(
                    (lambda: snaps.append(server.snapshot()))
                    if args.trace
                    else server.trim
                    if args.trim
                    else None
                ),
            )
        finally:
            server.stop()
    print(json.dumps({"app": args.app, **report}))
    if len(snaps) >= 3:
        print_growth(snaps[1], snaps[-1], args.cycles - (args.count or [20_000])[0], args.top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("serve", help="(internal) run one app")
    child.add_argument("--app", choices=APPS, required=True)
    child.add_argument("--port", type=int, required=True)
    child.add_argument("--snapshots", type=Path)
    parser.add_argument("--app", choices=APPS, default="asgi")
    parser.add_argument(
        "--count", type=int, action="append", help="idle connections (repeat for several runs)"
    )
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--trace", action="store_true", help="tracemalloc diff, count vs 2 count")
    parser.add_argument("--top", type=int, default=25, help="--trace: entries shown")
    parser.add_argument("--keep", type=Path, help="--trace: keep the snapshots in this folder")
    parser.add_argument("--cycles", type=int, help="connect/disconnect this many times")
    parser.add_argument("--new-users", action="store_true", help="--cycles: a new user each")
    parser.add_argument(
        "--trim", action="store_true", help="--cycles: malloc_trim(0) in the server at each sample"
    )
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.app, args.port, args.snapshots)
        return
    if args.cycles:
        cycles(args)
        return
    counts = args.count or [1000]
    if args.trace:
        trace(args.app, counts[0], args.deflate, args.top, args.keep)
        return
    for count in counts:
        print(json.dumps(measure(args.app, count, args.deflate)), flush=True)


if __name__ == "__main__":
    main()
