"""Where the chat's shared state lives: the seams in :mod:`.base`, their
implementations side by side (the embedded default beside Redis), and the one
place that picks them from the settings: :func:`open_backends`."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

from ..broker import LocalBroker
from ..config import Settings
from ..errors import ConfigError
from .base import EventBus, Identities, MessageLog, PresenceBoard, RateLimits, RoomDirectory
from .moderation import ModerationBoard

Service = Callable[..., Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Backends:
    """One worker's view of the shared state, and the local fan-out its
    connections subscribe to (fed by the log's tail and the event bus)."""

    log: MessageLog
    #: Who writes to the log (often the log's own object: see :class:`Identities`).
    identities: Identities
    bus: EventBus
    presence: PresenceBoard
    limits: RateLimits
    broker: LocalBroker
    #: Rooms, memberships, roles and read markers (SQLite beside the log, or Redis).
    rooms: RoomDirectory
    #: Mutes, bans, admins granted by ``quartchat admin``, and the audit
    #: (SQLite in the chat's file, or Redis).
    moderation: ModerationBoard
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
    from .sqlite_moderation import SqliteModeration
    from .sqlite_rooms import SqliteRooms

    release = hold_single_writer(settings.db_path)
    limits = LocalLimits()  # the log spends the send buckets in it
    try:
        log = await SqliteLog.open(settings.db_path, limits)
    except BaseException:
        release()
        raise
    bus, presence = LocalBus(broker), LocalPresence()
    # The same file and threads as the log.
    rooms = SqliteRooms(log.store)
    try:
        moderation = await SqliteModeration.open(log.store)
    except BaseException:
        await log.aclose()
        release()
        raise

    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for service in (log.run, bus.run, presence.run, rooms.run, moderation.run):
                await nursery.start(service)
            task_status.started()

    return Backends(
        log=log,
        identities=log,
        bus=bus,
        presence=presence,
        limits=limits,
        broker=broker,
        rooms=rooms,
        moderation=moderation,
        run=run,
        release=release,
    )


def _open_redis(settings: Settings, url: str, broker: LocalBroker) -> Backends:
    from .redis_bus import RedisBus
    from .redis_client import redis_client
    from .redis_limits import RedisLimits
    from .redis_log import RedisLog
    from .redis_moderation import RedisModeration
    from .redis_presence import RedisPresence
    from .redis_rooms import RedisRooms

    prefix = settings.redis_prefix
    log = RedisLog(url, prefix=prefix, max_messages=settings.redis_max_messages)
    # The log holds its own pool (its tail blocks on a connection); presence,
    # events, limits, rooms and moderation share this one.
    shared = redis_client(url)
    bus = RedisBus(shared, broker, prefix)
    presence = RedisPresence(shared, prefix, heartbeat_ttl=settings.redis_heartbeat_ttl)
    rooms = RedisRooms(shared, prefix)
    moderation = RedisModeration(shared, prefix)

    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with shared, trio.open_nursery() as nursery:
            for service in (log.run, bus.run, presence.run, rooms.run, moderation.run):
                await nursery.start(service)
            task_status.started()

    limits = RedisLimits(shared, prefix)
    return Backends(
        log=log,
        identities=log,
        bus=bus,
        presence=presence,
        limits=limits,
        broker=broker,
        rooms=rooms,
        moderation=moderation,
        run=run,
        release=lambda: None,
    )


def hold_single_writer(db_path: Path) -> Callable[[], None]:
    """Make sure this is the only process serving ``db_path``; the function
    returned gives the database up.

    The embedded default fans messages out inside one process: a second
    worker on the same file would store correctly but split the chat in two
    (each would only hear its own clients). So the second one is refused.
    The lock is an ``flock`` on a file of its own beside the database
    (``chat.db.lock``), never on the database itself, whose POSIX locks
    SQLite owns.

    The lock file is removed when the database is given up, while still
    locked, so a clean stop leaves only the database. That is safe because a
    process that wins the lock then checks that the file it locked is still
    the one at the path: one that opened the file just before it was removed
    would otherwise lock a deleted file while a third process locks a new
    one, and both would serve. A process killed outright leaves the file;
    the kernel drops its lock anyway, so the next start takes it."""
    lock_path = Path(f"{db_path}.lock")
    for _ in range(LOCK_ATTEMPTS):
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"{db_path} is already served by another process; to run several workers, "
                "set QUARTCHAT_REDIS_URL so they share one chat through Redis"
            ) from None
        if _is_at(fd, lock_path):
            return partial(_give_up, fd, lock_path)
        os.close(fd)  # its holder removed it meanwhile: lock the one there now
    raise ConfigError(f"{lock_path} keeps being replaced: is something removing it?")


#: Tries at locking the file at the path before giving up (each try after
#: the first means a holder removed the file between this open and lock).
LOCK_ATTEMPTS = 10


def _is_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is the file now at ``path``."""
    try:
        there = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def _give_up(fd: int, lock_path: Path) -> None:
    """Remove the lock file while it is still locked, then unlock it."""
    try:
        lock_path.unlink(missing_ok=True)
    finally:
        os.close(fd)
