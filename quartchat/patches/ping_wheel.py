"""One timer pings every WebSocket of a worker, instead of a task per socket.

hypercorn pings each WebSocket every ``websocket_ping_interval`` seconds
from a task of that connection's own, started as the socket is accepted:
a ping at once, then a sleep, for as long as the connection lives. That
task and its timer are about 3.4 KB of every idle connection (49.4 KiB
against 46.0 KiB without pings, ``scripts/idle_floor.py``), and the ping it
sends at once is work in the middle of every handshake: 5,000 tabs took
25.3 s to welcome with it and 19.4 s without (docs/performance.md).

:func:`install` replaces that task with a registration in a
:class:`PingWheel`, one per interval and trio run, that a single system
task turns: every ``tick`` seconds it pings the connections of one slot, so
each connection is pinged once per interval, the first time about one
interval after it was accepted. A ping then costs a short task of the
connection's own, which writes the two bytes straight to the socket when
it may (:class:`~quartchat.patches.direct_send.DirectSend`), else sends hypercorn's
``Ping`` the way hypercorn did. Peers that stop answering are still dropped
by hypercorn's ``read_timeout``: nothing about what a client sees changes.

The wheel holds its connections weakly: a closed one is gone from it once
freed, and at the latest when its slot comes round. What it holds is one
weak reference per open WebSocket.
"""

from __future__ import annotations

import contextvars
import math
import weakref

import trio
from hypercorn.protocol.ws_stream import WSStream
from wsproto.events import Ping

from .direct_send import DirectSend

#: An unmasked, final ping frame with no payload (RFC 6455, 5.5.2).
PING_FRAME = b"\x89\x00"
#: Seconds between two turns of the wheel at most: a slot is pinged per turn.
MAX_TICK = 1.0

_WHEELS: trio.lowlevel.RunVar[dict[float, PingWheel]] = trio.lowlevel.RunVar("ping_wheels")


class PingWheel:
    """The connections to ping every ``interval`` seconds, in slots of one tick."""

    def __init__(self, interval: float) -> None:
        count = max(1, math.ceil(interval / MAX_TICK))
        self.tick = interval / count
        self._slots: list[weakref.WeakSet[WSStream]] = [weakref.WeakSet() for _ in range(count)]
        self._turn = 0  # the slot pinged at the next tick

    def __len__(self) -> int:
        return sum(len(slot) for slot in self._slots)

    @classmethod
    def of_this_run(cls, interval: float) -> PingWheel:
        """The running trio's wheel for ``interval``, started on first use."""
        try:
            wheels = _WHEELS.get()
        except LookupError:
            wheels = {}
            _WHEELS.set(wheels)
        wheel = wheels.get(interval)
        if wheel is None:
            wheel = wheels[interval] = cls(interval)
            # A context of its own: not a copy of the connection that happened to start it.
            trio.lowlevel.spawn_system_task(
                wheel.run, name="quartchat ping wheel", context=contextvars.Context()
            )
        return wheel

    def add(self, stream: WSStream) -> None:
        """Ping ``stream`` from about one interval from now on."""
        self._slots[self._turn - 1].add(stream)  # the slot that comes round last

    async def run(self) -> None:
        """Turn for the rest of the run. Never raises (a system task must not)."""
        deadline = trio.current_time()
        while True:
            deadline += self.tick
            await trio.sleep_until(deadline)
            slot = self._slots[self._turn]
            self._turn = (self._turn + 1) % len(self._slots)
            for stream in list(slot):
                if stream.closed or not _spawn_ping(stream):
                    slot.discard(stream)


def _spawn_ping(stream: WSStream) -> bool:
    """Start one ping in ``stream``'s connection; False if that connection is over."""
    try:
        stream.task_group.spawn(ping, stream)
    except (RuntimeError, AttributeError):
        # Its task group's nursery is closed (RuntimeError) or already
        # dropped by hypercorn (its attribute is None: AttributeError).
        return False
    return True


async def ping(stream: WSStream) -> None:
    """Ping once: straight to the socket when it may, else hypercorn's way."""
    direct = DirectSend.of_stream(stream)
    if direct is None or not await direct.write(PING_FRAME):
        await stream._send_wsproto_event(Ping())


async def _join_the_wheel(stream: WSStream) -> None:
    """Replaces ``WSStream._send_pings``: registers and ends at once."""
    interval = stream.config.websocket_ping_interval
    if interval is not None:  # hypercorn starts no pings otherwise
        PingWheel.of_this_run(interval).add(stream)


def install() -> None:
    """Have every WebSocket hypercorn accepts from now on pinged by its
    run's wheel (for the versions ``patches.VERIFIED`` lists)."""
    WSStream._send_pings = _join_the_wheel  # type: ignore[method-assign, assignment]
