"""Connecting to Redis from ``QUARTCHAT_REDIS_URL``, and Redis's failures in
the project's own terms, so no ``coredis`` exception crosses a seam.

The client is a coredis async context manager: enter it once in the
backend's ``run`` task (which owns the connection pool's task group); other
tasks then share it for commands.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

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


def redis_client(url: str) -> coredis.Redis[str]:
    """A client for ``url`` (``redis://host:port/db``) answering with ``str``."""
    return coredis.Redis.from_url(
        url, decode_responses=True, connect_timeout=CONNECT_TIMEOUT, stream_timeout=ANSWER_TIMEOUT
    )


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
