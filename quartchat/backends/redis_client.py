"""Connecting to Redis from ``QUARTCHAT_REDIS_URL``, and Redis's failures in
the project's own terms, so no ``coredis`` exception crosses a seam.

The client is a coredis async context manager: enter it once in the
backend's ``run`` task (which owns the connection pool's task group); other
tasks then share it for commands.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import coredis
import coredis.exceptions

from ..errors import StoreError, Unavailable

#: Seconds to open a TCP connection before Redis counts as unreachable.
CONNECT_TIMEOUT = 2.0
#: Seconds to wait for any answer; blocking reads (XREAD BLOCK) must block
#: for less than this.
ANSWER_TIMEOUT = 15.0


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
        raise Unavailable(f"Redis is unreachable ({action})") from exc
    except coredis.exceptions.RedisError as exc:
        raise StoreError(f"Redis refused to {action}: {exc}") from exc
