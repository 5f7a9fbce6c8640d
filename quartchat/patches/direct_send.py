"""Text frames written straight to the socket hypercorn serves a WebSocket on.

A frame sent through ASGI goes through hypercorn's WebSocket stream, wsproto,
hypercorn's HTTP/1.1 protocol and its connection's send lock, shielded cancel
scope and trio stream: about eight awaits and two trips through trio's
scheduler per frame, the largest part of a busy worker's time (README,
"Performance"). On a plain-TCP connection that negotiated no extension, all
that yields for a server's text frame is a header of 2 to 10 bytes and the
UTF-8 text (RFC 6455, 5.2: unmasked, final).

So while the connection is open and nothing else is writing to it (its send
lock is free), :class:`DirectSend` writes the frame with one non-blocking
system call, in the same step as the check, so no other writer can come in
between. What the socket does not take at once goes on through hypercorn's
own send, which takes the free lock before anything else runs, so the frame
still reaches the wire whole and before any other. Anything else (closing,
lock held, a socket error, TLS) takes the ASGI path as before, and hypercorn
sees and handles every failure itself.

This reaches into hypercorn's objects, so it is only used once
:func:`quartchat.patches.apply` found the versions it was verified on, and
``tests/test_direct_send.py`` fails if an upgrade breaks the path to them.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Awaitable, Callable
from typing import Any, cast

import trio
from hypercorn.events import RawData
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
from hypercorn.trio.tcp_server import TCPServer
from wsproto.connection import ConnectionState

from . import applied

#: An ASGI ``send`` callable.
ASGISend = Callable[[dict[str, Any]], Awaitable[None]]

_FIN_TEXT = 0x81  # FIN bit and opcode 1 (text)


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final text frame carrying ``payload`` (UTF-8)."""
    size = len(payload)
    if size < 126:
        header = bytes((_FIN_TEXT, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, size)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, size)
    return header + payload


class DirectSend:
    """Sends one connection's text frames (and the ping wheel's pings,
    :mod:`quartchat.ping_wheel`), straight to its socket when it may."""

    __slots__ = ("_asgi_send", "_lock", "_server", "_socket", "_stream")

    def __init__(self, asgi_send: ASGISend, stream: WSStream, server: TCPServer) -> None:
        self._asgi_send = asgi_send
        self._stream = stream
        self._server = server
        self._lock: trio.Lock = server.send_lock
        self._socket = server.stream.socket

    @classmethod
    def attach(cls, asgi_send: ASGISend) -> DirectSend | None:
        """A direct sender for the socket behind hypercorn's ``asgi_send``, or
        None when it is not one this module knows how to write to."""
        stream = getattr(asgi_send, "__self__", None)
        return cls.of_stream(stream) if isinstance(stream, WSStream) else None

    @classmethod
    def of_stream(cls, stream: WSStream) -> DirectSend | None:
        """A direct sender for hypercorn's WebSocket ``stream``, or None."""
        if not applied():
            return None
        protocol = getattr(stream.send, "__self__", None)
        server = getattr(getattr(protocol, "send", None), "__self__", None)
        if not isinstance(protocol, H11Protocol) or not isinstance(server, TCPServer):
            return None
        if not isinstance(getattr(server, "stream", None), trio.SocketStream):
            return None  # TLS: the bytes go through the TLS stream
        if stream.connection._proto.extensions:
            return None  # never with quartchat's guard, which declines them
        return cls(cast(ASGISend, stream.app_send), stream, server)

    def _may_write(self) -> bool:
        stream = self._stream
        return (
            not self._lock.locked()
            and not stream.closed
            and stream.state is ASGIWebsocketState.CONNECTED
            and stream.connection.state is ConnectionState.OPEN
        )

    async def send(self, text: str) -> None:
        """Send ``text`` as one frame, as ``websocket.send`` would."""
        if not await self.write(text_frame(text.encode())):
            await self._asgi_send({"type": "websocket.send", "bytes": None, "text": text})

    async def write(self, frame: bytes) -> bool:
        """Write one whole ``frame`` straight to the socket if the connection
        is open and nothing else is writing to it. False if nothing was
        written, so the frame must go hypercorn's way (which also finds and
        handles any fault of the socket)."""
        if not self._may_write():
            return False
        fileno = self._socket.fileno()  # -1 once closed: never another's socket
        try:
            written = os.write(fileno, frame) if fileno >= 0 else -1
        except BlockingIOError:
            written = 0
        except OSError:
            written = -1  # nothing went out
        if written < 0:
            return False
        if written < len(frame):
            # Nothing has run since the check, so the lock is still free
            # and the rest goes before any other frame, even if cancelled.
            # It is bounded all the same: a peer that takes none of it for
            # QUARTCHAT_WRITE_STALL seconds is dropped (:mod:`.stalled_writer`).
            with trio.CancelScope(shield=True):
                await self._server.protocol_send(RawData(data=frame[written:]))
        return True
