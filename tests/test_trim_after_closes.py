"""The app's heap trim after every so many closed connections."""

from __future__ import annotations

from quartchat.app import TrimAfterCloses


def test_trims_once_per_so_many_closes() -> None:
    calls: list[None] = []
    trimmer = TrimAfterCloses(3, lambda: calls.append(None))
    for _ in range(2):
        trimmer.closed()
    assert calls == []
    trimmer.closed()
    assert len(calls) == 1
    for _ in range(6):
        trimmer.closed()
    assert len(calls) == 3
