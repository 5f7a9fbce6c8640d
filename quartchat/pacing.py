"""How often one connection may be sent a frame: the worker's flush windows.

Sending a frame costs about the same CPU whatever it holds (Quart, hypercorn,
wsproto and a system call), so a busy worker spends its time on sends, not on
messages. The pacer spreads a budget of frames per second over the worker's
connections: after each frame, a connection waits one *window*
(``connections / budget`` seconds, at most ``window_max``) before its next,
and everything queued for it meanwhile goes out in that one frame. With 1,000
connections and the default budget of 10,000 frames/s the window is 0.1 s,
whatever the message rate; with 100 it is 0.01 s.

A connection that has been quiet for a window sends at once, so pacing adds
no delay to a chat that is not busy; a session's own replies (acks, pongs,
errors) end its wait early.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class FlushPacer:
    """The flush window shared by one worker's connections."""

    def __init__(self, budget: float, window_max: float) -> None:
        #: Frames per second for all connections together.
        self.budget = budget
        #: The longest window, in seconds.
        self.window_max = window_max
        self._connections = 0

    @contextmanager
    def pacing(self) -> Iterator[None]:
        """Count one connection's writer for as long as it runs."""
        self._connections += 1
        try:
            yield
        finally:
            self._connections -= 1

    def window(self) -> float:
        """Seconds a connection waits after a frame before its next one."""
        return min(self.window_max, self._connections / self.budget)
