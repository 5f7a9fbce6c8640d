"""What is queued for one connection: a bounded list with one waiting reader.

A connection's frames come from the broker (every live event, in publish
order) and from its own reader (replies), always without waiting; its writer
takes everything queued at once. That is all a memory channel would do here,
so this is the cheaper core of one: a list, a bound, and the writer's task
woken when the first item arrives. It runs once per delivery, the hottest
path of a busy server.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import trio
from trio.lowlevel import Abort, RaiseCancelT, Task, current_task, reschedule, wait_task_rescheduled

T = TypeVar("T")


class Outbox(Generic[T]):
    """At most ``size`` items, waiting for one consumer task."""

    __slots__ = ("_items", "_size", "_waiter")

    def __init__(self, size: int) -> None:
        self._items: list[T] = []
        self._size = size
        self._waiter: Task | None = None

    def put(self, item: T) -> bool:
        """Queue ``item``; False (and nothing queued) when the outbox is full."""
        if len(self._items) >= self._size:
            return False
        self._items.append(item)
        if self._waiter is not None:
            task, self._waiter = self._waiter, None
            reschedule(task)
        return True

    async def take_all(self) -> list[T]:
        """Everything queued, oldest first, waiting for the first item if none is."""
        if self._items:
            await trio.lowlevel.checkpoint()
        else:
            assert self._waiter is None, "an outbox has one consumer"
            self._waiter = current_task()

            def abort(_: RaiseCancelT) -> Abort:
                self._waiter = None
                return Abort.SUCCEEDED

            await wait_task_rescheduled(abort)
        items, self._items = self._items, []
        return items
