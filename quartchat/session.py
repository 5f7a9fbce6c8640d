"""One WebSocket connection, from ``hello`` to close, as a cursor on the log.

A session runs two tasks in one nursery: the reader handles client frames
(:class:`~quartchat.inbound.Inbound`, under the connection's
:class:`~quartchat.inbound.FramePolicy`), the writer
(:class:`~quartchat.writer.Writer`) is the only task that writes to the
socket. Everything for the client goes through one bounded queue
(``Settings.queue_size`` frames): the broker drops live events in without
waiting, the reader drops in replies. When the queue is full the client is
not keeping up, and the session ends with 4008; the client resumes from its
cursor when it reconnects.

Ordering: the hub subscribes the session *before* it reads what it missed
from the log, so nothing committed meanwhile falls between the two; the
writer sends the replay first and skips queued messages the replay held.
After a ``member`` notice that the user joined (or was invited into) a room,
the session queues a :class:`~quartchat.writer.Backlog` in its place, which
the writer reads and sends there.

The session speaks to the socket only through :class:`Transport`, so tests
can drive it with a fake and :mod:`quartchat.app` adapts Quart's websocket.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

from .broker import CloseOrder, Event, MemberEvent, RoomSubscription
from .chat import Chat, Opening
from .errors import (
    GOING_AWAY,
    INTERNAL_ERROR,
    NO_HELLO,
    POLICY_VIOLATION,
    TOO_SLOW,
    CloseConnection,
    FrameError,
    PeerGone,
    StoreError,
    Unavailable,
)
from .inbound import FramePolicy, Inbound, Receiving, error_frame
from .log_limits import limit
from .outbox import Outbox
from .protocol import Hello, ServerFrame, encode, parse_frame
from .writer import Backlog, Sending, Writer

log = logging.getLogger(__name__)
# A store that is away fails every frame of every socket: one line per kind a second.
limit(log)

#: Seconds a socket gets to take our close frame before we give up on it.
CLOSE_TIMEOUT = 2.0


class Transport(Receiving, Sending, Protocol):
    async def close(self, code: int, reason: str) -> None: ...


class Session:
    __slots__ = (
        "_close",
        "_outbox",
        "_policy",
        "_scope",
        "_writer",
        "address",
        "chat",
        "conn_id",
        "settings",
        "transport",
        "user_id",
    )

    def __init__(self, chat: Chat, transport: Transport, address: str | None = None) -> None:
        #: All the session asks of the chat: the narrow interface, not the hub.
        self.chat = chat
        #: The client's network address, which new identities are counted by.
        self.address = address
        self.settings = chat.settings
        self.transport = transport
        self.conn_id = chat.new_conn_id()
        self.user_id = ""
        self._outbox = Outbox[str | Event | Backlog](self.settings.queue_size)
        self._scope = trio.CancelScope()
        self._close: CloseConnection | None = None
        #: The only task that writes to the socket, taking from ``_outbox``.
        self._writer = Writer(chat, transport, self._outbox)
        #: The frame-size check, the frame limit and strikes, hello included.
        self._policy = FramePolicy(self.settings)

    async def serve(self) -> None:
        """Run the connection to its end and close the socket with the right code."""
        try:
            with self._scope:
                await self._run()
        except CloseConnection as exc:
            self._close = exc
        except PeerGone:
            return
        except Unavailable as exc:
            log.warning("could not start a session: %s", exc)
            self._close = CloseConnection(INTERNAL_ERROR, "store unavailable")
        except StoreError as exc:  # the store logs its failures, once per kind at a time
            log.debug("store failed during session start: %s", exc)
            self._close = CloseConnection(INTERNAL_ERROR, "store unavailable")
        finally:
            # Reached on every path, cancellation by a departed client included;
            # the socket may be gone, so the close is shielded and bounded.
            close = self._close or CloseConnection(GOING_AWAY, "server shutting down")
            self.chat.count_close(close.code)
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
                try:
                    await self.transport.close(close.code, close.reason)
                except Exception:  # the peer is already gone: nothing to tell it
                    log.debug("close of connection %s failed", self.conn_id, exc_info=True)
            await self._drain_until_closed()

    async def _drain_until_closed(self) -> None:
        """Read and drop what the peer still sends until it answers our close.

        Closing a TCP socket with unread input makes the kernel send a reset,
        and the peer would then see 1006 instead of our close code."""
        with trio.move_on_after(CLOSE_TIMEOUT):
            try:
                while True:
                    await self.transport.receive()
            except Exception:  # closed, reset or gone: all mean "done"
                return

    async def _run(self) -> None:
        opening = await self._start()
        try:
            # Taken out of ``opening``, which lives as long as the connection:
            # the writer frees the welcome and the replay once they are sent.
            lines, opening.lines = opening.lines, []
            lines += [encode(error_frame(self.chat, e)) for e in opening.errors]
            inbound = Inbound(
                self.chat,
                self.transport,
                self.conn_id,
                self.user_id,
                self._policy,
                self._reply,
                opening.subscription.rooms,
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    self._guarded, self._writer.run, lines, opening.cursor, self.user_id
                )
                await self._guarded(inbound.read)
                nursery.cancel_scope.cancel()
        finally:
            await self.chat.close_session(self.conn_id, opening.user, opening.subscription)

    async def _guarded(self, task: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run one of the two tasks; whatever ends it ends the whole session
        with the right close code instead of escaping as an exception group."""
        try:
            await task(*args)
        except CloseConnection as exc:
            self._cut(exc)
        except PeerGone:
            self._cut(CloseConnection(GOING_AWAY, "peer gone"))
        except Exception:
            log.exception("connection %s failed", self.conn_id)
            self._cut(CloseConnection(INTERNAL_ERROR, "internal error"))
        else:
            self._cut(CloseConnection(GOING_AWAY, "done"))

    async def _start(self) -> Opening:
        """Read hellos until one starts the session. A ``nick_exact`` hello
        whose nick is bad or taken gets that error, and the client may send
        another hello: nobody has been told about this connection yet."""
        while True:
            hello = await self._receive_hello()
            try:
                return await self.chat.open_session(
                    self.conn_id, hello, self._subscribe, self.address
                )
            except FrameError as exc:
                if not self._policy.admit():
                    raise CloseConnection(POLICY_VIOLATION, "too many hellos") from None
                await self.transport.send(encode(error_frame(self.chat, exc)))

    async def _receive_hello(self) -> Hello:
        with trio.move_on_after(self.settings.hello_timeout):
            raw = self._policy.checked_text(await self.transport.receive())
            try:
                frame = parse_frame(raw)
            except FrameError as exc:
                raise CloseConnection(
                    NO_HELLO, f"first frame must be hello ({exc.message})"
                ) from None
            if not isinstance(frame, Hello):
                raise CloseConnection(NO_HELLO, "first frame must be hello")
            return frame
        raise CloseConnection(NO_HELLO, "no hello in time")

    # ----- outbound ------------------------------------------------------------

    def _subscribe(self, user_id: str) -> RoomSubscription:
        """Called by the hub once it knows whose session this is."""
        self.user_id = user_id
        return self.chat.subscribe(self._deliver, user_id)

    def _deliver(self, event: Event) -> None:
        """Broker callback: queue ``event`` if it is for us; never blocks."""
        if event.is_for(self.conn_id, self.user_id):
            if type(event) is CloseOrder:
                self._cut(CloseConnection(event.code, event.reason))
                return
            self._queue(event)
        elif (part := event.part_for(self.conn_id)) is not None:
            self._queue(part)
        else:
            return
        if isinstance(event, MemberEvent) and event.backlog is not None:
            user_id, room, up_to = event.backlog
            if user_id == self.user_id:
                self._queue(Backlog(room, up_to))

    def _queue(self, item: str | Event | Backlog) -> None:
        self.chat.pacer.queued += 1  # how the pacer tells a busy worker
        if not self._outbox.put(item):
            self._cut(CloseConnection(TOO_SLOW, "too slow: outbound queue overflowed"))

    def _reply(self, frame: ServerFrame) -> None:
        """Queue an answer to the client's own frame; it goes out at once,
        not at the end of the flush window (an ack is what a sender waits for)."""
        self._queue(encode(frame))
        task = self._writer.task
        if task is not None:
            self.chat.pacer.wake(task)

    def shut_down(self) -> None:
        """End the connection now with 1001: the server is stopping. Safe at
        any point of the session's life, before ``serve`` included."""
        self._cut(CloseConnection(GOING_AWAY, "server shutting down"))

    def _cut(self, close: CloseConnection) -> None:
        if self._close is None:
            self._close = close
        self._scope.cancel()
