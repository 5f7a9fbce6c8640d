"""Connecting to Redis from ``QUARTCHAT_REDIS_URL``, and Redis's failures in
the project's own terms, so no ``coredis`` exception crosses a seam.

The client is a coredis async context manager: enter it once in the
backend's ``run`` task (which owns the connection pool's task group); other
tasks then share it for commands.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import coredis
import coredis.exceptions
import trio

from ..errors import StoreError, Unavailable

#: Seconds to open a TCP connection before Redis counts as unreachable.
CONNECT_TIMEOUT = 2.0
#: Seconds to wait for any answer (a blocking read: once its block is over).
ANSWER_TIMEOUT = 15.0
#: Seconds a start-up check gives Redis to answer (coredis retries within it).
STARTUP_TIMEOUT = 5.0

log = logging.getLogger(__name__)


def redis_client(url: str) -> coredis.Redis[str]:
    """A client for ``url`` (``redis://host:port/db``) answering with ``str``."""
    return coredis.Redis.from_url(
        url, decode_responses=True, connect_timeout=CONNECT_TIMEOUT, stream_timeout=ANSWER_TIMEOUT
    )


class LuaScript:
    """A Lua script run by its SHA1 (``EVALSHA``), loaded into Redis
    (``SCRIPT LOAD``) before its first use, and again whenever Redis no
    longer holds it (restarted, or ``SCRIPT FLUSH``), which is logged at
    DEBUG only.

    Used instead of coredis's ``register_script``, which also reloads a
    missing script but reports each miss at INFO ("Retry attempt 1 due to
    error: No matching script"): on a fresh Redis, every worker's first call
    of every script would log it, and an operator reads INFO lines as trouble.
    """

    __slots__ = ("_loaded", "_redis", "sha", "source")

    def __init__(self, redis: coredis.Redis[str], source: str) -> None:
        self._redis = redis
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._loaded = False

    async def load(self) -> None:
        """Put the script in Redis's script cache (idempotent)."""
        await self._redis.script_load(self.source)
        self._loaded = True

    async def __call__(self, *, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        """The script's answer; coredis's errors pass through (callers wrap
        the call in :func:`redis_errors`)."""
        if not self._loaded:
            await self.load()
        try:
            return await self._redis.evalsha(self.sha, keys=keys, args=args)
        except coredis.exceptions.NoScriptError:
            log.debug("Redis lost script %s (restarted?): loading it again", self.sha)
            await self.load()
            return await self._redis.evalsha(self.sha, keys=keys, args=args)


@contextmanager
def redis_errors(action: str) -> Iterator[None]:
    """Turn what goes wrong while doing ``action`` into :class:`Unavailable`
    (Redis cannot be reached or is loading: try again later) or
    :class:`StoreError` (Redis answered with a refusal)."""
    try:
        yield
    except (coredis.exceptions.ConnectionError, OSError) as exc:  # OSError: TimeoutError too
        raise unreachable(action) from exc
    except coredis.exceptions.RedisError as exc:
        raise refused(action, exc) from exc


def unreachable(action: str) -> Unavailable:
    """What every Redis client of quartchat raises when Redis cannot be reached."""
    return Unavailable(f"Redis is unreachable ({action})")


def refused(action: str, answer: object) -> StoreError:
    """What every Redis client of quartchat raises when Redis answers with an error."""
    return StoreError(f"Redis refused to {action}: {answer}")


async def check_reachable(url: str) -> None:
    """Raise :class:`Unavailable` unless Redis at ``url`` answers a PING
    within :data:`STARTUP_TIMEOUT` (a start-up check: say so now, in one line,
    rather than fail inside the first worker's start). coredis's own
    reports of its retries are held back meanwhile: the failure is the news."""
    client = redis_client(url)
    with _quiet("coredis"), trio.move_on_after(STARTUP_TIMEOUT) as waited:
        try:
            with redis_errors("answer a PING"):
                async with client:
                    await client.ping()
        except BaseExceptionGroup as group:  # the pool's task group wraps what failed
            raise Unavailable(f"Redis is unreachable ({_first_cause(group)})") from group
    if waited.cancelled_caught:
        raise Unavailable(f"Redis did not answer within {STARTUP_TIMEOUT:g} s")


def _first_cause(group: BaseExceptionGroup) -> str:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return str(leaf) or type(leaf).__name__


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Only warnings and worse from logger ``name`` meanwhile."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


class CallGuard:
    """The calls in flight on one Redis client for one backend: refused
    once the backend closes (the closer waits for the rest with
    :meth:`drained`), and Redis's errors raised as the project's."""

    def __init__(self, redis: coredis.Redis[str], name: str) -> None:
        self._redis = redis
        #: What a refused call names: "the log", "the room directory".
        self._name = name
        #: Set when the backend closes: no call starts after.
        self.closing = False
        self._in_flight = 0
        self._drained = trio.Event()

    @contextmanager
    def call(self, action: str) -> Iterator[coredis.Redis[str]]:
        if self.closing:
            raise StoreError(f"cannot {action}: {self._name} is closed")
        self._in_flight += 1
        try:
            with redis_errors(action):
                yield self._redis
        finally:
            self._in_flight -= 1
            if self.closing and not self._in_flight:
                self._drained.set()

    async def drained(self) -> None:
        """Return once no call is in flight (after :attr:`closing` is set)."""
        if self._in_flight:
            await self._drained.wait()
