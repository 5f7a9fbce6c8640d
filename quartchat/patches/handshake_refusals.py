"""A WebSocket handshake hypercorn refuses ends at once, and quietly.

1. **Bytes behind an upgrade, before the 101** (the first packet of
   pgjones/hypercorn#225) make hypercorn answer 400 (``WSStream.handle``),
   but it marks the stream closed only once that answer is written. While
   it is being written, the app's accept slips in, writes a 101 on top, and
   h11 raises: a 3.5 KB traceback at ERROR from Quart for each 159-byte
   packet, which anyone could send to fill the log (:mod:`.hypercorn_faults`
   keeps the server up; this keeps it quiet). Here the stream is marked
   closed *before* the 400 goes out; an accept that comes after raises
   :class:`HandshakeEnded`, which the app's handler catches. The client's
   fault is one INFO line, at most one a second.
2. **A refused handshake holds its connection.** After those 400s, and
   after the 400 for a handshake missing its key or version and the 404 for
   a host it does not serve, hypercorn left the connection open until its
   read timeout (60 s) though its answer says ``Connection: close``. Here the
   connection is closed as soon as the answer is written.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import h11
from hypercorn.protocol.events import Body, Data, Request, StreamClosed
from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream

from ..log_limits import limit

log = logging.getLogger(__name__)


class HandshakeEnded(Exception):
    """The WebSocket handshake was over (refused, or its client gone) before
    the app accepted it: there is no socket to serve."""


def install() -> None:
    """Wrap ``WSStream.handle`` and ``WSStream.app_send`` (hypercorn 0.18.0)."""
    WSStream.handle = _closing_refusals(WSStream.handle)  # type: ignore[method-assign, assignment]
    WSStream.app_send = _accept_raises_when_ended(WSStream.app_send)  # type: ignore[method-assign, assignment]
    limit(log)


def _closing_refusals(
    handle: Callable[[WSStream, Any], Coroutine[Any, Any, None]],
) -> Callable[[WSStream, Any], Coroutine[Any, Any, None]]:
    @functools.wraps(handle)
    async def handle_event(stream: WSStream, event: Any) -> None:
        if isinstance(event, Request):
            await handle(stream, event)
            if stream.closed:  # refused (404, 400) before the app saw it
                await stream.send(StreamClosed(stream_id=stream.stream_id))
            return
        if stream.closed or not isinstance(event, Body | Data) or stream.handshake.accepted:
            await handle(stream, event)
            return
        # Bytes before the 101. Closed first: no accept can write meanwhile.
        stream.closed = True
        log.info("answered 400 to a WebSocket upgrade that sent bytes before its 101")
        if stream.state is ASGIWebsocketState.HANDSHAKE:
            # A refusal the app started writing a moment ago stands instead.
            with contextlib.suppress(h11.LocalProtocolError):
                await stream._send_error_response(400)
        await stream.send(StreamClosed(stream_id=stream.stream_id))  # closes the connection

    return handle_event


def _accept_raises_when_ended(
    app_send: Callable[[WSStream, Any], Coroutine[Any, Any, None]],
) -> Callable[[WSStream, Any], Coroutine[Any, Any, None]]:
    @functools.wraps(app_send)
    async def send_from_app(stream: WSStream, message: Any) -> None:
        if (
            stream.closed
            and message is not None
            and message["type"] == "websocket.accept"
            and stream.state is ASGIWebsocketState.HANDSHAKE
        ):
            raise HandshakeEnded("the handshake ended before the app accepted it")
        await app_send(stream, message)

    return send_from_app
