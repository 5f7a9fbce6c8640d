"""How often one connection may be sent a frame: the flush windows.

Sending a frame costs about the same CPU whatever it holds (about 17 µs
here, most of it the system call, which on loopback also does the receiving
side's TCP work; 40 µs through hypercorn's ASGI path before
:mod:`quartchat.direct_send`), so a busy worker spends its time on sends,
not on messages. The pacer spreads a budget of frames per
second over the chat's connections (this worker's and, on Redis, the other
workers'). After a frame, a busy connection's writer *parks*; every
:data:`SLICE` seconds the pacer wakes the writers parked longest, as many as
the budget allows in a slice, and each sends everything queued for it
meanwhile in one frame. So each connection waits about one *window*
(``connections / budget`` seconds, at most ``window_max``) between frames:
with the default budget of 9,000 frames/s, 100 connections get a window of
11 ms and 1,000 connections one of 0.11 s (the default cap is 0.15 s),
whatever the message rate. Waking a slice at a time, not everyone at once, keeps each
burst of sends short, so the rest of the worker (reading, committing) is
never held up behind a thousand sends.

Pacing only starts when it pays: while the worker queues fewer frames for
its connections than its share of the budget (counted over the current and
the previous :data:`PERIOD`), every frame goes at once, so a chat that is
not busy gets no added delay. A writer parks only after it has sent
something, so a quiet connection's next frame goes at once too; and
:meth:`FlushPacer.wake` lets a session's own reply (an ack, a pong) end the
wait early. One ticker task does the waking: no timer or cancel scope per
connection.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import trio
from trio.lowlevel import Abort, RaiseCancelT, Task, current_task, reschedule, wait_task_rescheduled

#: Seconds over which the frames queued are counted to tell a busy worker:
#: long enough that one message to 1,000 connections, at 5 messages/s, does
#: not count as a rate of 10,000 frames/s; short enough to follow a burst.
PERIOD = 1.0
#: Seconds between two wakings of parked writers.
SLICE = 0.02


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
        #: Frames queued for this worker's connections in the current period
        #: (sessions add to it), and in the one before.
        self.queued = 0
        self._previous = 0
        self._period_start = 0.0
        #: Writers waiting for their turn, longest-waiting first.
        self._parked: OrderedDict[Task, None] = OrderedDict()
        #: Turns earned and not yet given (a slice may earn a fraction of one).
        self._credit = 0.0
        self._someone_parked = trio.Event()

    @contextmanager
    def pacing(self) -> Iterator[None]:
        """Count one connection's writer for as long as it runs."""
        self._connections += 1
        try:
            yield
        finally:
            self._connections -= 1

    def connections(self) -> int:
        """The chat's connections: this worker's and the other workers'."""
        return self._connections + self._elsewhere()

    def _share(self) -> float:
        """This worker's part of the budget: its share of the chat's connections."""
        return self._connections / max(1, self.connections())

    def window(self) -> float:
        """Seconds a busy connection waits between two frames: the chat's
        connections over the budget.

        Counting the other workers' connections too makes the budget the
        chat's, not each worker's: 1,000 receivers on two workers get the
        window they would get on one, and so the same frames per delivery.
        (A worker with a core of its own could afford its whole budget, but
        would spend twice the CPU per delivery for a shorter window.)"""
        return min(self.window_max, self.connections() / self.budget)

    def busy(self, now: float) -> bool:
        """Whether this worker queues more frames than its share of the
        budget: unpaced, it would send more frames than the budget allows.
        ``now`` is ``trio.current_time()`` (a parameter, for tests)."""
        elapsed = now - self._period_start
        if elapsed >= PERIOD:
            self._previous = self.queued if elapsed < 2 * PERIOD else 0
            self.queued = 0
            self._period_start = now
        allowance = self.budget * PERIOD * self._share()
        return self.queued > allowance or self._previous > allowance

    def turns_per_slice(self) -> float:
        """How many parked writers one slice wakes: the budget's share of a
        slice, or more when that would make the wait exceed ``window_max``."""
        by_budget = self.budget * self._share() * SLICE
        by_window = len(self._parked) * SLICE / self.window_max if self.window_max > 0 else 0.0
        return max(by_budget, by_window)

    async def wait_turn(self) -> None:
        """After a frame: park the calling writer until its turn (or its
        :meth:`wake`), if the worker is busy. When it is not, this returns
        at once, without a checkpoint: the writer's next step, taking from
        its outbox, always yields, so a second pass through the scheduler
        per frame would only cost (it did, once per frame sent)."""
        if self.window() <= 0 or not self.busy(trio.current_time()):
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
        """The ticker: every slice, wake the writers parked longest."""
        task_status.started()
        while True:
            if not self._parked:
                self._someone_parked = trio.Event()
                self._credit = 0.0  # turns are not saved up while nobody waits
                await self._someone_parked.wait()
            await trio.sleep(SLICE)
            self._credit += self.turns_per_slice()
            turns = min(len(self._parked), math.floor(self._credit))
            self._credit -= turns
            for _ in range(turns):
                task, _ = self._parked.popitem(last=False)
                reschedule(task)
