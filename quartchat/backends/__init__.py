"""Where the chat's shared state lives: the seams in :mod:`.base`, their
implementations side by side (the embedded default beside Redis), and the one
place that picks them from the settings: :func:`open_backends`."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from ..broker import LocalBroker
from ..config import Settings
from ..errors import ConfigError
from .base import EventBus, MessageLog, PresenceBoard, RateLimits

Service = Callable[..., Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Backends:
    """One worker's view of the shared state, and the local fan-out its
    connections subscribe to (fed by the log's tail and the event bus)."""

    log: MessageLog
    bus: EventBus
    presence: PresenceBoard
    limits: RateLimits
    broker: LocalBroker
    #: Runs the backends' own tasks (``nursery.start``); ready once all answer.
    run: Service
    #: Releases what ``open_backends`` took (after ``log.aclose``).
    release: Callable[[], None]


async def open_backends(settings: Settings) -> Backends:
    """The embedded default without ``redis_url``, else Redis for everything."""
    broker = LocalBroker()
    if settings.redis_url is None:
        return await _open_embedded(settings, broker)
    return _open_redis(settings, settings.redis_url, broker)


async def _open_embedded(settings: Settings, broker: LocalBroker) -> Backends:
    from .local_bus import LocalBus
    from .local_limits import LocalLimits
    from .local_presence import LocalPresence
    from .sqlite_log import SqliteLog

    release = hold_single_writer(settings.db_path)
    limits = LocalLimits()  # the log spends the send buckets in it
    try:
        log = await SqliteLog.open(settings.db_path, limits)
    except BaseException:
        release()
        raise
    bus, presence = LocalBus(broker), LocalPresence()

    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for service in (log.run, bus.run, presence.run):
                await nursery.start(service)
            task_status.started()

    return Backends(log, bus, presence, limits, broker, run, release)


def _open_redis(settings: Settings, url: str, broker: LocalBroker) -> Backends:
    from .redis_bus import RedisBus
    from .redis_client import redis_client
    from .redis_limits import RedisLimits
    from .redis_log import RedisLog
    from .redis_presence import RedisPresence

    prefix = settings.redis_prefix
    log = RedisLog(url, prefix=prefix, max_messages=settings.redis_max_messages)
    # The log holds its own pool (its tail blocks on a connection); presence,
    # events and limits share this one.
    shared = redis_client(url)
    bus = RedisBus(shared, broker, prefix)
    presence = RedisPresence(shared, prefix, heartbeat_ttl=settings.redis_heartbeat_ttl)

    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with shared, trio.open_nursery() as nursery:
            for service in (log.run, bus.run, presence.run):
                await nursery.start(service)
            task_status.started()

    return Backends(log, bus, presence, RedisLimits(shared, prefix), broker, run, lambda: None)


def hold_single_writer(db_path: Path) -> Callable[[], None]:
    """Make sure this is the only process serving ``db_path``.

    The embedded default fans messages out inside one process: a second
    worker on the same file would store correctly but split the chat in two
    (each would only hear its own clients). So the second one is refused.
    The lock is on a file of its own beside the database, never on the
    database itself, whose POSIX locks SQLite owns."""
    lock_path = Path(f"{db_path}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            f"{db_path} is already served by another process; to run several workers, "
            "set QUARTCHAT_REDIS_URL so they share one chat through Redis"
        ) from None
    return lambda: os.close(fd)
