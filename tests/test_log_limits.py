"""A repeated fault writes one line a second, not one per occurrence."""

from __future__ import annotations

import logging

import pytest

from quartchat.log_limits import OncePer, limit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("quartchat.test", logging.WARNING, __file__, 1, message, args, None)


def test_one_line_per_kind_per_interval_and_a_count_of_the_rest() -> None:
    clock = Clock()
    once = OncePer(1.0, clock=clock)
    passed = [once.filter(record("disk full: %s", n)) for n in range(500)]
    assert passed == [True] + [False] * 499
    clock.now = 1.0
    later = record("disk full: %s", "again")
    assert once.filter(later)
    assert later.getMessage() == "disk full: again (499 more since)"


def test_kinds_are_limited_apart() -> None:
    once = OncePer(1.0, clock=Clock())
    assert once.filter(record("disk full"))
    assert once.filter(record("too many open files"))
    assert not once.filter(record("disk full"))


def test_limit_adds_one_filter_to_a_logger(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("quartchat.test_log_limits")
    try:
        assert limit(logger) is limit(logger)
        with caplog.at_level(logging.INFO, logger.name):
            for _ in range(100):
                logger.warning("closed a connection hypercorn failed on")
        assert len(caplog.records) == 1
    finally:
        logger.filters.clear()
