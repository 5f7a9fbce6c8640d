"""Guards around three hypercorn faults that any client can trigger, and
one way its connections outlive themselves.

Switched on by :func:`quartchat.patches.apply` at start, each as a wrapper
at the one spot where the fault starts (README, "Known dependency faults").

1. **One packet stops the server** (pgjones/hypercorn #225 and #203, open
   upstream). Bytes right behind a WebSocket upgrade request, before the
   101, make hypercorn answer 400 while the app is accepting: two writers on
   one h11 connection, and h11 raises ``LocalProtocolError``. Nothing in
   the connection's task group catches it, so it reaches the nursery every
   connection shares and the worker exits (then the hypercorn parent). The
   guard wraps ``TCPServer.run``, which builds and runs one connection's
   protocol: an error from it ends that connection only, and is logged in
   one INFO line, at most one a second (:mod:`.handshake_refusals` keeps #225's
   first packet from getting this far).
2. **A protocol failure closes with no close frame.** wsproto reports a bad
   frame (invalid UTF-8 in a text frame, an unmasked frame...) by yielding
   ``CloseConnection`` with the RFC 6455 code (1007, 1002) while the socket
   is still open; hypercorn only answers a close the peer started, so it
   dropped TCP and the client saw 1006. The guard has the connection take
   such a failure as a close to answer, so the client gets the code.
3. **permessage-deflate costs a compressor per connection** and one
   compression per receiver per broadcast (3.3x the RSS at 1000 receivers,
   issue 8). Like Socket.IO by default, the guard declines the extension:
   the 101 carries no ``Sec-WebSocket-Extensions`` and every client speaks
   plain frames.

And: **a closed connection is freed only by a full garbage collection.** A
``TCPServer`` holds its protocol, whose ``send`` is the server's own bound
method, so every connection is a reference cycle. A connection that lived
through a few collections is in the oldest generation by the time it
closes, so it stays in memory until a full collection, and a full
collection walks every live object: 2.6 s with 10,000 connections open, a
stall for all of them. The guard's wrapper around ``TCPServer.run`` clears
the server's attributes once its connection is over, which breaks the
cycle: reference counting frees the connection at once, and no full
collection is needed (``tests/test_connection_memory.py``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from hypercorn.protocol import ws_stream
from hypercorn.trio.tcp_server import TCPServer
from wsproto.connection import Connection, ConnectionState
from wsproto.events import CloseConnection, Event

from ..log_limits import limit

log = logging.getLogger(__name__)


def install() -> None:
    """Wrap the three spots above (for the versions ``patches.VERIFIED`` lists)."""
    # Patching is the point here: mypy's objections to it are silenced.
    TCPServer.run = _contained(TCPServer.run)  # type: ignore[method-assign, assignment]
    limit(log)  # its lines are a client's doing: one a second per kind
    ws_stream.Connection = ClosingConnection  # type: ignore[attr-defined]
    ws_stream.Handshake.accept = _declining_extensions(  # type: ignore[method-assign]
        ws_stream.Handshake.accept
    )


def _contained(
    run: Callable[[TCPServer], Coroutine[Any, Any, None]],
) -> Callable[[TCPServer], Coroutine[Any, Any, None]]:
    @functools.wraps(run)
    async def run_one_connection(server: TCPServer) -> None:
        try:
            await run(server)  # closes its socket on every way out
        except* Exception as group:
            # A client can cause these at will: one line, at most one a second.
            log.info("closed a connection hypercorn failed on: %r", group.exceptions)
            log.debug("the connection's failure", exc_info=group)
        finally:
            # Over: nothing uses the server again. Its protocol's ``send`` is
            # its own bound method; dropping its attributes ends that cycle.
            vars(server).clear()

    return run_one_connection


class ClosingConnection(Connection):
    """wsproto's connection, taking a frame it rejects as a close to answer."""

    def events(self) -> Generator[Event, None, None]:
        for event in super().events():
            if isinstance(event, CloseConnection) and self.state is ConnectionState.OPEN:
                # A failure found here, not a close from the peer (that one
                # leaves REMOTE_CLOSING): hypercorn now replies with its code.
                self._state = ConnectionState.REMOTE_CLOSING
            yield event


def _declining_extensions(accept: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(accept)
    def accept_without_extensions(handshake: Any, *args: Any, **kwargs: Any) -> Any:
        handshake.extensions = None  # as if the client had offered none
        return accept(handshake, *args, **kwargs)

    return accept_without_extensions
