"""How often one connection may be sent a frame: the flush windows.

Sending a frame costs about the same CPU whatever it holds (Quart, hypercorn,
wsproto and a system call: about 40 µs here), so a busy worker spends its
time on sends, not on messages. The pacer spreads a budget of frames per
second over the chat's connections (this worker's and, on Redis, the other
workers'). After a frame, a connection's writer parks until the pacer's next
*tick*; ticks come one *window* apart (``connections / budget`` seconds, at
most ``window_max``), and whatever was queued for the connection meanwhile
goes out in its next frame. With the default budget of 6,000 frames/s, 100
connections have a window of 17 ms and 1,000 connections one of 0.15 s (the
default cap), whatever the message rate.

A writer parks only after it has sent something, so a quiet connection's
next frame goes at once and pacing adds no delay to a chat that is not busy;
:meth:`FlushPacer.wake` lets a session's own reply (an ack, a pong) end the
wait early. One ticker task wakes every parked writer at once: no timer or
cancel scope per connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import trio
from trio.lowlevel import Abort, RaiseCancelT, Task, current_task, reschedule, wait_task_rescheduled


class FlushPacer:
    """The flush windows shared by one worker's connections."""

    def __init__(
        self, budget: float, window_max: float, elsewhere: Callable[[], int] = lambda: 0
    ) -> None:
        #: Frames per second for all connections together.
        self.budget = budget
        #: The longest window, in seconds.
        self.window_max = window_max
        #: How many connections other workers of the chat serve (see below).
        self._elsewhere = elsewhere
        self._connections = 0
        #: Writers waiting for the next tick (a dict: ordered, O(1) removal).
        self._parked: dict[Task, None] = {}
        self._someone_parked = trio.Event()

    @contextmanager
    def pacing(self) -> Iterator[None]:
        """Count one connection's writer for as long as it runs."""
        self._connections += 1
        try:
            yield
        finally:
            self._connections -= 1

    def window(self) -> float:
        """Seconds between two ticks: the chat's connections over the budget.

        Counting the other workers' connections too makes the budget the
        chat's, not each worker's: 1,000 receivers on two workers get the
        window they would get on one, and so the same frames per delivery.
        (A worker with a core of its own could afford its whole budget, but
        would spend twice the CPU per delivery for a shorter window.)"""
        connections = self._connections + self._elsewhere()
        return min(self.window_max, connections / self.budget)

    async def wait_turn(self) -> None:
        """Park the calling writer until the next tick (or its :meth:`wake`)."""
        if self.window() <= 0:
            await trio.lowlevel.checkpoint()
            return
        task = current_task()
        self._parked[task] = None
        self._someone_parked.set()

        def abort(_: RaiseCancelT) -> Abort:
            self._parked.pop(task, None)
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    def wake(self, task: Task) -> None:
        """End ``task``'s wait now, if it is parked."""
        if self._parked.pop(task, False) is None:
            reschedule(task)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The ticker: one window after a writer parks, wake all parked writers."""
        task_status.started()
        while True:
            await self._someone_parked.wait()
            await trio.sleep(self.window())
            parked, self._parked = self._parked, {}
            self._someone_parked = trio.Event()
            for task in parked:
                reschedule(task)
