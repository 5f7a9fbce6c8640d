"""A frame over hypercorn's size limit ends its connection, and reading stops there.

hypercorn 0.18.0 gathers a WebSocket message in ``WSStream.buffer`` and
checks its size only after appending what arrived. Past
``websocket_max_message_size`` it sends a close frame with 1009 and stops
handling that read, but the buffer keeps what it held and the socket stays
open: every later read appends to the same buffer again (wsproto yields a
frame's payload as it arrives, so a frame announced as 2^62 bytes never
ends) and only then finds it too large. One socket sending such a frame
grew the server by 1.5 GB in 20 s, and the memory stayed after it left
(issue 19).

:func:`install` wraps ``WSStream._handle_events``: once hypercorn has found
the message too large (and sent its 1009), the buffer is emptied and the
stream is closed the way a peer's close would be, which closes the TCP
connection at once. Nothing is read from that socket again, so what a
connection can make the server hold is the limit plus one read (64 KiB).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from hypercorn.protocol.events import StreamClosed
from hypercorn.protocol.ws_stream import WSStream

from ..log_limits import limit

log = logging.getLogger(__name__)

HandleEvents = Callable[[WSStream], Coroutine[Any, Any, None]]


def over_the_limit(stream: WSStream) -> bool:
    """True once ``stream``'s message buffer holds more than the limit."""
    return stream.buffer.length > stream.buffer.max_length


def _closing_past_the_limit(handle_events: HandleEvents) -> HandleEvents:
    @functools.wraps(handle_events)
    async def handle_events_within_the_limit(stream: WSStream) -> None:
        await handle_events(stream)  # sends the 1009 close when over the limit
        if over_the_limit(stream) and not stream.closed:
            stream.buffer.clear()
            log.info("closed a connection at a message over %d bytes", stream.buffer.max_length)
            # As for a close from the peer: the app hears of the disconnect,
            # then hypercorn closes the socket and its read loop ends.
            await stream.send(StreamClosed(stream_id=stream.stream_id))

    return handle_events_within_the_limit


def install() -> None:
    """Wrap ``WSStream._handle_events`` (for the versions ``patches.VERIFIED`` lists)."""
    limit(log)  # one line per second however many clients try
    WSStream._handle_events = _closing_past_the_limit(  # type: ignore[method-assign, assignment]
        WSStream._handle_events
    )
