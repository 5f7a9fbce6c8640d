"""Log lines a client or a failing disk cannot multiply.

A fault that repeats (a full disk failing every send, one malformed packet
after another, a process out of file descriptors) must not write a line,
let alone a traceback, each time: the log would grow as fast as anyone
cares to send. :class:`OncePer` lets the first record of a kind through and
then at most one per ``interval`` seconds, telling how many it held back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable

#: The kinds one filter remembers at most; past it the oldest is forgotten
#: (which at worst lets one more line of that kind through).
MAX_KINDS = 1024


def by_message(record: logging.LogRecord) -> Hashable:
    """A record's kind: its logger and its message before formatting."""
    return (record.name, record.msg)


class OncePer(logging.Filter):
    """A logging filter: one record per kind per ``interval`` seconds.

    The record let through after a quiet spell says how many of its kind were
    held back since the last one (``(37 more since)``). The count rides on
    that next record: a burst that ends within its second is summed up only
    when its kind comes back (a timer per kind would cost more than the line).
    """

    def __init__(
        self,
        interval: float = 1.0,
        kind: Callable[[logging.LogRecord], Hashable] = by_message,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.interval = interval
        self._kind = kind
        self._clock = clock
        #: kind -> (when its last record went through, records held back since)
        self._seen: dict[Hashable, tuple[float, int]] = {}

    def forget(self) -> None:
        """Start afresh, as if no record had passed (for tests, which share loggers)."""
        self._seen.clear()

    def filter(self, record: logging.LogRecord) -> bool:
        kind = self._kind(record)
        now = self._clock()
        last = self._seen.get(kind)
        if last is not None and now - last[0] < self.interval:
            self._seen[kind] = (last[0], last[1] + 1)
            return False
        held = 0 if last is None else last[1]
        self._seen.pop(kind, None)
        if len(self._seen) >= MAX_KINDS:
            del self._seen[next(iter(self._seen))]
        self._seen[kind] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more since)"
        return True


def limit(logger: logging.Logger, interval: float = 1.0) -> OncePer:
    """Have ``logger`` pass one record per kind per ``interval``; the filter."""
    for existing in logger.filters:
        if isinstance(existing, OncePer):
            return existing
    once = OncePer(interval)
    logger.addFilter(once)
    return once
