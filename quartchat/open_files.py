"""How many sockets one server process may hold, and what it says when it
runs out.

Every connection is a file descriptor. A process started with a soft limit
of 1,024 (a common default) stopped taking new clients at about 1,010
connections, though its hard limit allowed far more: :func:`raise_open_file_limit`
raises the soft limit to the hard one at start and logs the figure.

When the descriptors do run out, trio's accept loop (``serve_listeners``)
logs ``EMFILE`` with a traceback ten times a second for as long as that
lasts; :func:`quiet_accept_errors` makes it one line, at most once a second.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable

from .log_limits import OncePer

#: The logger trio's ``serve_listeners`` reports accept errors (EMFILE, ENFILE...) on.
ACCEPT_LOGGER = "trio.serve_listeners"
#: Seconds between two lines about the same accept error.
ACCEPT_ERROR_INTERVAL = 1.0

log = logging.getLogger(__name__)


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit, say
    so in one line, and return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or hard == resource.RLIM_INFINITY:
        log.info("open files: at most %s for this process (hard limit: %s)", soft, _count(hard))
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning("open files: at most %d; raising it to %d failed: %s", soft, hard, exc)
        return soft
    log.info("open files: limit raised from %d to %d (the hard limit)", soft, hard)
    return hard


def _count(limit_value: int) -> str:
    return "no limit" if limit_value == resource.RLIM_INFINITY else str(limit_value)


class WithoutTraceback(logging.Filter):
    """Keeps a record's message and drops its traceback: for a failure whose
    message already says all (``accept returned EMFILE``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


def quiet_accept_errors(clock: Callable[[], float] = time.monotonic) -> None:
    """trio's accept errors: one line each, at most one a second per kind,
    with a count of those held back (:class:`~quartchat.log_limits.OncePer`
    on ``clock``). Once per process: a second call changes nothing."""
    logger = logging.getLogger(ACCEPT_LOGGER)
    if any(isinstance(f, OncePer) for f in logger.filters):
        return
    logger.addFilter(OncePer(ACCEPT_ERROR_INTERVAL, clock=clock))  # first: holds back the rest
    logger.addFilter(WithoutTraceback())
