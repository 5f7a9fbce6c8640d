"""``quartchat`` (and ``python -m quartchat``): serve the chat with its own settings.

The same server as ``hypercorn --config hypercorn.toml quartchat:app``, with
hypercorn's settings read from the package, plus what a service needs:

- The settings, the database (or Redis, which must answer a PING) and the
  address are checked before anything listens: a bad one prints one line
  naming the cause, and the exit status is 2, so a supervisor flags it.
- Logging is configured once, here, not by the app.
- A stop is prompt: SIGINT or SIGTERM, sent to the main process or to any
  worker (systemd signals every process of a service), closes every chat
  socket with 1001 at once; hypercorn then finishes and the store
  checkpoints and closes.

With ``--workers 1`` (the default) the server is this one process. With
more, this process owns the listening sockets and runs that many worker
processes; a stop reaches all of them, and a worker that is signalled alone,
or ends, stops the others too, so a supervisor sees the service end and
restarts it.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import signal
import sys
from functools import partial
from importlib import resources
from multiprocessing.connection import wait
from multiprocessing.synchronize import Event
from pathlib import Path

import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app
from quart_trio import QuartTrio

from .app import HUB_KEY, close_sessions, create_app
from .backends import hold_single_writer
from .backends.sqlite_log import SqliteLog
from .config import Settings
from .errors import ConfigError, StoreError
from .open_files import quiet_accept_errors, raise_open_file_limit
from .patches import apply as apply_patches
from .store import Store
from .usage import OneLineParser, bad_start

#: Exit status of a stop that could not checkpoint the store (a full disk):
#: nothing is lost, but the database file alone is not a complete copy.
STOP_FAILED = 1
#: hypercorn's own log line layout, so every line looks alike.
LOG_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
LOG_DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"
#: Seconds between a worker's looks at the main process's stop event.
STOP_POLL_INTERVAL = 0.1


def main(argv: list[str] | None = None) -> int:
    """Check everything, then serve until stopped; the exit status.
    ``quartchat migrate ...`` copies a chat to Redis instead (:mod:`.migrate`);
    ``quartchat admin ...`` grants admins and reads the audit (:mod:`.admin_cli`)."""
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["migrate"]:
        from .migrate import main as migrate

        return migrate(arguments[1:])
    if arguments[:1] == ["admin"]:
        from .admin_cli import main as admin

        return admin(arguments[1:])
    if arguments[:1] == ["serve"]:  # the default, also said out loud
        arguments = arguments[1:]
    args = _parser().parse_args(arguments)
    for address in args.bind or ():
        if (problem := bind_problem(address)) is not None:
            return _bad_start(f"--bind {address}: {problem}")
    try:
        workers = worker_count(args.workers)
    except ValueError as exc:
        return _bad_start(f"--workers: {exc}")
    configure_logging()
    config = hypercorn_config(args.bind)
    try:
        settings = Settings.from_env()
        apply_patches(settings)  # refuses unverified versions
        if settings.redis_url is None:
            Store(settings.db_path).close()  # creates or migrates it now, or says why not
            hold_single_writer(settings.db_path)()  # another server on it? say so now
        else:
            from .backends.redis_client import check_reachable  # coredis is an extra

            try:
                trio.run(check_reachable, settings.redis_url)
            except StoreError as exc:
                raise ConfigError(f"QUARTCHAT_REDIS_URL={settings.redis_url}: {exc}") from exc
    except (ConfigError, StoreError) as exc:
        return _bad_start(str(exc))
    if workers > 1 and settings.redis_url is None:
        # Each worker would fan out to its own clients only: one chat split in N.
        return _bad_start(
            f"--workers {workers} needs QUARTCHAT_REDIS_URL, so that the workers"
            " share one chat; without it, run one worker"
        )
    try:
        sockets = config.create_sockets()
    except OSError as exc:  # taken, not ours to take, or a host that does not resolve
        binds = " ".join(f"--bind {address}" for address in config.bind)
        return _bad_start(f"{binds}: cannot listen: {exc.strerror or exc}")
    raise_open_file_limit()  # every connection is a file descriptor
    if workers == 1:
        return serve(create_app(settings), config, sockets)
    return _supervise(config, sockets, workers)


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="quartchat",
        usage="quartchat [serve] [-b HOST:PORT]... [-w N]",
        description="Serve the chat (settings: QUARTCHAT_* variables, see the README).",
        epilog=(
            "Copy a chat from its SQLite file to Redis, with the server stopped:\n"
            "  quartchat migrate --to redis://host:6379/0   (see quartchat migrate --help)\n"
            "Grant or revoke the admin role, list the admins, read the moderation audit\n"
            "(the server may be running):\n"
            "  quartchat admin grant USER_ID | revoke USER_ID | list | audit"
            "   (see quartchat admin --help)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-b",
        "--bind",
        action="append",
        metavar="HOST:PORT",
        help="address to listen on: HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N;"
        " repeat for several (default 127.0.0.1:8000)",
    )
    parser.add_argument(
        "-w",
        "--workers",
        default="1",
        metavar="N",
        help="worker processes (default 1: one process serves everything;"
        " more need QUARTCHAT_REDIS_URL)",
    )
    return parser


#: What a --bind without a port is told (hypercorn would quietly take 8000).
NO_PORT = "no port (write HOST:PORT, e.g. 127.0.0.1:8000)"
MAX_PORT = 65535


def bind_problem(address: str) -> str | None:
    """What is wrong with a ``--bind`` address, or None. The forms are
    hypercorn's: ``HOST:PORT`` (``[::1]:PORT`` for IPv6; an empty host is
    every interface), ``unix:PATH`` and ``fd://N``. Checked here because
    hypercorn takes a missing port for 8000 and stops on a port past 65535
    with a traceback; a host that does not resolve is found when listening."""
    if address.startswith("unix:"):
        return None if address.removeprefix("unix:") else "no socket path after 'unix:'"
    if address.startswith("fd://"):
        fd = address.removeprefix("fd://")
        return None if fd.isascii() and fd.isdigit() else f"{fd!r} is not a file descriptor"
    if address.startswith("["):
        _, bracket, after = address.partition("]")
        if not bracket or not after.startswith(":"):
            return NO_PORT
        port = after.removeprefix(":")
    else:
        _, colon, port = address.rpartition(":")
        if not colon:
            return NO_PORT
    if not port:
        return NO_PORT
    if not (port.isascii() and port.isdigit()):
        return f"port {port!r} is not a number"
    if int(port) > MAX_PORT:
        return f"port must be 0-{MAX_PORT}"
    return None


def worker_count(raw: str) -> int:
    """``--workers``: a whole number, 1 or more; ValueError says what is wrong."""
    if not (raw.isascii() and raw.strip().isdigit()):
        raise ValueError(f"{raw!r} is not a whole number")
    count = int(raw)
    if count < 1:
        raise ValueError(f"{count} is too few (1 or more)")
    return count


def _bad_start(cause: str) -> int:
    return bad_start(cause)


def configure_logging() -> None:
    """INFO and up to stderr, hypercorn's lines included, each line once."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, datefmt=LOG_DATE_FORMAT)
    quiet_accept_errors()  # out of file descriptors: one line a second, not ten tracebacks


def hypercorn_config(bind: list[str] | None = None) -> Config:
    """The package's hypercorn.toml, listening on ``bind`` when given."""
    with resources.as_file(resources.files(__package__) / "hypercorn.toml") as path:
        config = Config.from_toml(path)
    if bind:
        config.bind = bind
    # A logger (not "-") makes hypercorn log through the root handler above
    # instead of adding a handler of its own.
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


def serve(app: QuartTrio, config: Config, sockets: Sockets, stop: Event | None = None) -> int:
    """Serve ``app`` in this process until SIGINT, SIGTERM or ``stop``; the exit status."""
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
        sock.listen(config.backlog)
    closed: list[int] = []  # the trigger's count of the chat sockets it closed
    trigger = partial(_until_stopped, app, stop, closed)
    try:
        asgi = wrap_app(app, config.wsgi_max_body_size, "asgi")
        trio.run(partial(worker_serve, asgi, config, sockets=sockets, shutdown_trigger=trigger))
    except KeyboardInterrupt:  # a second Ctrl+C during the stop: stop at once
        return 130
    _report_stop(app, sum(closed))
    log = getattr(app.extensions.get(HUB_KEY), "log", None)
    if isinstance(log, SqliteLog) and log.close_failure is not None:
        return STOP_FAILED  # the store said why, in one line
    return 0


async def _until_stopped(app: QuartTrio, stop: Event | None, closed: list[int]) -> None:
    """hypercorn's shutdown trigger. Before it returns (and hypercorn stops
    accepting, then gives what is left ``graceful_timeout`` to finish) every
    chat socket is closed with 1001; how many is added to ``closed``."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            if stop is not None:
                nursery.start_soon(_until_set, stop, nursery.cancel_scope)
            async for _ in signals:
                if stop is not None:  # signalled alone: the other workers stop with it
                    stop.set()
                break
            nursery.cancel_scope.cancel()
    # The receiver is closed: a second signal now has its usual, abrupt effect.
    closed.append(await close_sessions(app))


def _report_stop(app: QuartTrio, closed: int) -> None:
    """Log one line saying what a finished stop did: the chat sockets it
    closed, and whether the database file alone now holds the chat (SQLite
    deletes its WAL file once the store has folded it in and closed)."""
    did = f"closed {closed} chat socket{'' if closed == 1 else 's'}"
    hub = app.extensions.get(HUB_KEY)
    if hub is None:  # the app never started
        outcome = ""
    elif hub.settings.redis_url is not None:
        outcome = " (the chat is kept in Redis)"
    else:
        database = hub.settings.db_path
        wal = Path(f"{database}-wal")
        left = wal.stat().st_size if wal.exists() else 0
        outcome = (
            f"; {wal} still holds {left:,} bytes, which SQLite folds into the database"
            " when it next opens it"
            if left
            else f", folded the WAL into {database}"
        )
    logging.getLogger(__name__).info("stopped: %s%s", did, outcome)


async def _until_set(stop: Event, scope: trio.CancelScope) -> None:
    # Polled, not waited on in a thread: a process that ends while one of its
    # threads waits on a multiprocessing Event leaves the Event's condition
    # counting a sleeper that never wakes, and ``stop.set()`` then hangs.
    while not stop.is_set():  # noqa: ASYNC110
        await trio.sleep(STOP_POLL_INTERVAL)
    scope.cancel()


def _supervise(config: Config, sockets: Sockets, workers: int) -> int:
    """Run ``workers`` processes on the shared sockets until a stop or until one ends."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    # Ignored SIGINT is inherited: a Ctrl+C cannot kill a worker half-started.
    # Once serving, each worker listens for SIGINT and SIGTERM itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    processes = [
        context.Process(target=_worker_process, args=(config, sockets, stop), daemon=False)
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    wait([process.sentinel for process in processes])  # a stop ends them all
    stop.set()
    for process in processes:
        process.join()
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
        sock.close()
    failed = sum(process.exitcode != 0 for process in processes)
    some_failed = f", {failed} with a failure status" if failed else ""
    logging.getLogger(__name__).info("stopped: %d workers ended%s", workers, some_failed)
    return 0 if not failed else 1


def _worker_process(config: Config, sockets: Sockets, stop: Event) -> None:
    configure_logging()  # a spawned process starts with no logging set up
    sys.exit(serve(create_app(), config, sockets, stop))
