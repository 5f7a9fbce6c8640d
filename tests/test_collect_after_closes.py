"""The app's full garbage collection after every so many closed connections."""

from __future__ import annotations

from quartchat.app import CollectAfterCloses


def test_collects_once_per_so_many_closes() -> None:
    calls: list[None] = []
    collector = CollectAfterCloses(3, lambda: calls.append(None))
    for _ in range(2):
        collector.closed()
    assert calls == []
    collector.closed()
    assert len(calls) == 1
    for _ in range(6):
        collector.closed()
    assert len(calls) == 3
