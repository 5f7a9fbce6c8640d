"""A connection whose socket takes nothing for a while is dropped.

hypercorn 0.18.0 writes every byte of a connection in
``TCPServer.protocol_send``, under the connection's send lock and inside a
shielded cancel scope, with no deadline: a whole frame reaches the wire or
nothing does. A client that stops reading fills its receive window, the
server's socket buffer fills behind it, and that write waits for as long as
the client likes. Nothing can end it: not the session's cut (4008 for a
full queue, :mod:`quartchat.session`), which cancels a task the shield
protects; not the read timeout, which ends the read loop but then waits for
the connection's tasks, the stuck writer among them. So the socket stayed
open and its user online: 200 such clients were all still held 220 s later
(issue 19). The direct path (:mod:`.direct_send`) sends the rest of a frame
through the same call, so it waited the same way.

:func:`install` replaces the raw-bytes branch of ``protocol_send``: still
under the send lock and shielded, but when the socket is full and its peer
acknowledges *no byte* for :func:`write_stall` seconds
(``QUARTCHAT_WRITE_STALL``, 10 by default) the connection ends. The socket
is reset (``SO_LINGER`` 0, then closed: a FIN would queue behind the data
the client never took, and a window that stays shut never lets it through),
which frees the kernel's buffers at once; the connection then closes as
hypercorn closes a broken one, so the app hears of the disconnect and the
user leaves. A client that reads, however slowly, is not cut: each wait
that saw the peer acknowledge bytes (``SIOCOUTQ``, Linux) is followed by
another. Where that cannot be asked, a socket that stays full for the bound
counts as stalled; over TLS, whose bytes are not seen from here, the whole
write must finish within the bound.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import socket
import struct
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import trio
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio.tcp_server import TCPServer

from ..log_limits import limit

log = logging.getLogger(__name__)

#: Seconds a socket may take nothing of what waits to be written before its
#: connection is dropped, unless :func:`set_write_stall` says otherwise
#: (``QUARTCHAT_WRITE_STALL``).
DEFAULT_WRITE_STALL = 10.0
#: ``SO_LINGER`` on, for 0 s: ``close`` resets the connection and drops what it held.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)

#: The ``ioctl`` that tells a TCP socket's unacknowledged bytes: Linux only.
_OUTQ: int | None = 0x5411 if sys.platform == "linux" else None  # SIOCOUTQ

_write_stall = DEFAULT_WRITE_STALL

ProtocolSend = Callable[[TCPServer, Event], Coroutine[Any, Any, None]]


def set_write_stall(seconds: float) -> None:
    """Drop a connection whose socket takes nothing for ``seconds``."""
    global _write_stall
    _write_stall = seconds


def write_stall() -> float:
    """The bound :func:`set_write_stall` set, in seconds."""
    return _write_stall


def unacknowledged(sock: trio.socket.SocketType) -> int | None:
    """Bytes written to ``sock`` that its peer has not acknowledged yet
    (Linux's ``SIOCOUTQ``), or None where that cannot be asked."""
    if _OUTQ is None:
        return None
    try:
        answer = fcntl.ioctl(sock.fileno(), _OUTQ, bytes(4))
    except OSError:
        return None
    count: int = struct.unpack("i", answer)[0]
    return count


async def send_all_in_time(stream: trio.abc.Stream, data: bytes, stall: float) -> bool:
    """Write all of ``data`` to ``stream``; False once its peer took nothing
    for ``stall`` seconds while data waited (what was written stays written).
    A broken or closed stream raises as ``send_all`` would."""
    if not isinstance(stream, trio.SocketStream):
        with trio.move_on_after(stall):
            await stream.send_all(data)
            return True
        return False
    sock = stream.socket
    with memoryview(data) as view:
        sent = 0
        while sent < len(view):
            try:
                sent += os.write(sock.fileno(), view[sent:])
                continue
            except BlockingIOError:
                pass
            except OSError as exc:  # reset, or closed (its fileno is then -1)
                raise trio.BrokenResourceError(str(exc)) from exc
            # Full. The socket turns writable only once a good part of its
            # buffer is free, so what tells a slow reader from a stalled one
            # is whether the peer acknowledged anything while we waited.
            waiting = unacknowledged(sock)
            with trio.move_on_after(stall) as wait:
                await trio.lowlevel.wait_writable(sock)
            if wait.cancelled_caught:
                now = unacknowledged(sock)
                if waiting is None or now is None or now >= waiting:
                    return False
    await trio.lowlevel.checkpoint()
    return True


async def reset(stream: trio.abc.Stream) -> None:
    """Close ``stream``'s TCP connection with a reset."""
    transport = getattr(stream, "transport_stream", stream)  # under TLS, the TCP stream
    if isinstance(transport, trio.SocketStream):
        with contextlib.suppress(OSError):  # already closed: nothing to reset
            transport.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
    await transport.aclose()


def _dropping_stalled_writes(protocol_send: ProtocolSend) -> ProtocolSend:
    @functools.wraps(protocol_send)
    async def protocol_send_in_time(server: TCPServer, event: Event) -> None:
        if not isinstance(event, RawData):
            await protocol_send(server, event)
            return
        stall = _write_stall
        async with server.send_lock:
            try:
                # Shielded as hypercorn's own: a frame goes out whole or the
                # connection ends. The bound lives inside the shield.
                with trio.CancelScope(shield=True):
                    if await send_all_in_time(server.stream, event.data, stall):
                        return
                    await reset(server.stream)
                log.info("dropped a connection whose socket took nothing for %g s", stall)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the peer is gone: hypercorn's own case
            await server.protocol.handle(Closed())

    return protocol_send_in_time


def install() -> None:
    """Bound every write of hypercorn's connections (for the versions
    ``patches.VERIFIED`` lists)."""
    limit(log)  # one line per second however many clients stall
    TCPServer.protocol_send = _dropping_stalled_writes(  # type: ignore[method-assign, assignment]
        TCPServer.protocol_send
    )
