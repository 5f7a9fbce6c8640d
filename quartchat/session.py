"""One WebSocket connection, from ``hello`` to close, as a cursor on the log.

A session runs two tasks in one nursery: the reader handles client frames,
the writer is the only task that writes to the socket. Everything for the
client goes through one bounded queue (``Settings.queue_size`` frames): the
broker drops live events in without waiting, the reader drops in replies.
When the queue is full the client is not keeping up, and the session ends
with 4008; the client resumes from its cursor when it reconnects. On a
busy worker the writer sends at most one frame per flush window, holding
everything queued meanwhile (:mod:`quartchat.pacing`).

Ordering: the hub subscribes the session *before* it reads what it missed
from the log, so nothing committed meanwhile falls between the two; the
writer then sends the replay and skips queued messages at or below the
replay's snapshot.

The session speaks to the socket only through :class:`Transport`, so tests
can drive it with a fake and :mod:`quartchat.app` adapts Quart's websocket.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Protocol

import trio

from .broker import Event, Subscription
from .chat import Chat, Opening
from .errors import (
    GOING_AWAY,
    INTERNAL_ERROR,
    MESSAGE_TOO_BIG,
    NO_HELLO,
    POLICY_VIOLATION,
    TOO_SLOW,
    UNSUPPORTED_DATA,
    CloseConnection,
    FrameError,
    PeerGone,
    StoreError,
    Unavailable,
)
from .limits import TokenBucket
from .log_limits import limit
from .models import Posted
from .outbox import Outbox
from .protocol import (
    CLIENT_FAULTS,
    Ack,
    ErrorFrame,
    Hello,
    History,
    Nick,
    Ping,
    Pong,
    Send,
    ServerFrame,
    Typing,
    encode,
    parse_frame,
)

log = logging.getLogger(__name__)
# A store that is away fails every frame of every socket: one line per kind a second.
limit(log)

#: Largest server frame the writer builds by joining objects, in UTF-8 bytes:
#: the 64 KiB a client may send, so a client that caps incoming frames as the
#: server caps its own never closes for size (a replay of 2000-character
#: messages included). One object larger than this (a welcome listing
#: thousands of users) is sent alone, in a frame of its own.
MAX_FRAME_BYTES = 64 * 1024
#: Most sends of one connection posted together: those that were already
#: waiting when the reader took the first. They share commits (one fsync, one
#: Redis round trip) instead of each waiting for its own; the bound is how
#: many acks one commit can hold back for one connection. A run's acks are
#: queued at once, so a run also takes at most half the connection's queue
#: (``Settings.queue_size``): its own answers never get a client cut.
SEND_RUN_MAX = 64
#: Seconds a socket gets to take our close frame before we give up on it.
CLOSE_TIMEOUT = 2.0
#: One strike comes back this often, so an occasional mistake never adds up.
STRIKE_REFILL_PER_S = 0.5


class Transport(Protocol):
    async def receive(self) -> str | bytes:
        """The next client frame; raises :class:`PeerGone` once the client left."""

    def receive_nowait(self) -> str | bytes | None:
        """The next client frame if one has already arrived, else None
        (never waits; a departed peer is for :meth:`receive` to report)."""

    async def send(self, data: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class Session:
    __slots__ = (
        "_close",
        "_frames",
        "_outbox",
        "_scope",
        "_strikes",
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
        self._outbox = Outbox[str | Event](self.settings.queue_size)
        self._scope = trio.CancelScope()
        self._close: CloseConnection | None = None
        #: The writer's task, woken early from its flush window by a reply.
        self._writer: trio.lowlevel.Task | None = None
        now = trio.current_time()
        self._frames = TokenBucket(self.settings.frame_rate, self.settings.frame_burst, now)
        self._strikes = TokenBucket(STRIKE_REFILL_PER_S, self.settings.strikes, now)

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
            lines += [encode(self._error(e)) for e in opening.errors]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._guarded, self._write, lines, opening.cursor)
                await self._guarded(self._read)
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
                if not self._frames.take(trio.current_time()):
                    raise CloseConnection(POLICY_VIOLATION, "too many hellos") from None
                await self.transport.send(encode(self._error(exc)))

    async def _receive_hello(self) -> Hello:
        with trio.move_on_after(self.settings.hello_timeout):
            raw = self._checked_text(await self.transport.receive())
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

    def _subscribe(self, user_id: str) -> Subscription:
        """Called by the hub once it knows whose session this is."""
        self.user_id = user_id
        return self.chat.subscribe(self._deliver)

    def _deliver(self, event: Event) -> None:
        """Broker callback: queue ``event`` if it is for us; never blocks."""
        if event.is_for(self.conn_id, self.user_id):
            self._queue(event)
        elif (part := event.part_for(self.conn_id)) is not None:
            self._queue(part)

    def _queue(self, item: str | Event) -> None:
        self.chat.pacer.queued += 1  # how the pacer tells a busy worker
        if not self._outbox.put(item):
            self._cut(CloseConnection(TOO_SLOW, "too slow: outbound queue overflowed"))

    def _reply(self, frame: ServerFrame) -> None:
        """Queue an answer to the client's own frame; it goes out at once,
        not at the end of the flush window (an ack is what a sender waits for)."""
        self._queue(encode(frame))
        if self._writer is not None:
            self.chat.pacer.wake(self._writer)

    def _error(self, exc: FrameError) -> ErrorFrame:
        """The error frame for ``exc``, counted by its code."""
        self.chat.count_error(exc.code)
        return ErrorFrame.of(exc)

    def shut_down(self) -> None:
        """End the connection now with 1001: the server is stopping. Safe at
        any point of the session's life, before ``serve`` included."""
        self._cut(CloseConnection(GOING_AWAY, "server shutting down"))

    def _cut(self, close: CloseConnection) -> None:
        if self._close is None:
            self._close = close
        self._scope.cancel()

    async def _write(self, opening: list[str], cursor: int) -> None:
        """The only writer: welcome and replay first, then what is queued,
        one frame per flush window (:mod:`quartchat.pacing`) at most."""
        await self._send_lines(opening, 0)
        opening.clear()  # sent: free it for the life of the connection
        pacer = self.chat.pacer
        self._writer = trio.lowlevel.current_task()
        with pacer.pacing():
            while True:
                lines = []
                messages = 0
                for item in await self._outbox.take_all():
                    if isinstance(item, str):
                        lines.append(item)
                        continue
                    if item.message_id is not None:
                        if item.message_id <= cursor:
                            continue  # already sent in the replay
                        cursor = item.message_id
                        messages += 1
                    lines.append(item.line)
                await self._send_lines(lines, messages)
                await pacer.wait_turn()

    async def _send_lines(self, lines: list[str], messages: int) -> None:
        """Send ``lines`` (``messages`` of them chat messages) in as few frames
        as :data:`MAX_FRAME_BYTES` allows."""
        for frame in coalesce(lines):
            await self.transport.send("\n".join(frame))
            self.chat.frame_sent(len(frame), messages)
            messages = 0  # counted with the first frame: the totals are what matter

    # ----- inbound -------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            frame = self._take(await self.transport.receive())
            if isinstance(frame, Send):
                frame = await self._post_run(frame)
            if frame is not None:
                await self._answer(frame)

    def _take(self, raw: str | bytes) -> object:
        """One client frame, parsed: a frame record, or the :class:`FrameError`
        to answer it with (a strike counted where it is the client's fault)."""
        text = self._checked_text(raw)
        if not self._frames.take(trio.current_time()):
            self._strike()
            # A refused send names its client_offset, as every answer to a
            # send does: the client knows which one to send again.
            return FrameError("rate_limited", "too many frames; slow down", _offset_of(text))
        try:
            return parse_frame(text, history_max=self.settings.history_max)
        except FrameError as exc:
            if exc.code in CLIENT_FAULTS:
                self._strike()
            return exc

    async def _post_run(self, first: Send) -> object | None:
        """Post ``first`` with the sends already waiting behind it (at most
        :data:`SEND_RUN_MAX` in all, and half the queue), so that they share
        commits; then ack or refuse each, in order. Returns the frame that
        ended the run, to be answered after it (or None)."""
        run = [first]
        after: object | None = None
        most = min(SEND_RUN_MAX, max(1, self.settings.queue_size // 2))
        while len(run) < most and (raw := self.transport.receive_nowait()) is not None:
            try:
                frame = self._take(raw)
            except CloseConnection as close:  # the sends before it still count
                frame = close
            if not isinstance(frame, Send):
                after = frame
                break
            run.append(frame)
        outcomes: Sequence[Posted | FrameError | StoreError]
        try:
            outcomes = await self.chat.post_many(self.conn_id, self.user_id, run)
        except StoreError as exc:  # before anything was queued: the whole run failed
            outcomes = [exc] * len(run)
        for send, outcome in zip(run, outcomes, strict=True):
            if isinstance(outcome, Posted):
                self._reply(Ack(send.client_offset, outcome.message.id, outcome.message.ts))
            else:
                self._refuse(send, outcome)
        return after

    async def _answer(self, frame: object) -> None:
        """Handle a frame other than a send (or answer one that failed to parse)."""
        if isinstance(frame, CloseConnection):
            raise frame
        if isinstance(frame, FrameError):
            self._reply(self._error(frame))
            return
        try:
            await self._dispatch(frame)
        except (FrameError, StoreError) as exc:
            self._refuse(frame, exc)

    def _refuse(self, frame: object, exc: FrameError | StoreError) -> None:
        """Answer ``frame``, which failed with ``exc``, with an error frame."""
        offset = frame.client_offset if isinstance(frame, Send) else None
        if isinstance(exc, FrameError):
            if exc.code in CLIENT_FAULTS:
                self._strike()
            error = exc
        elif isinstance(exc, Unavailable):
            # Redis is away: nothing was stored or acked; the client retries.
            log.warning("a %s frame found the store away: %s", type(frame).__name__, exc)
            error = FrameError("unavailable", "the store is unreachable; retry", offset)
        else:
            # The server's fault, not the client's: the socket stays open and
            # the client retries (a send with the same client_offset).
            # The store logs its failures, once per kind at a time: a full disk
            # fails every send, and a line (or a traceback) each fills the log.
            log.debug("store failed on a %s frame: %s", type(frame).__name__, exc)
            error = FrameError("internal", "the server could not reach its store; retry", offset)
        self._reply(self._error(error))

    def _checked_text(self, raw: str | bytes) -> str:
        """The frame's text; a binary frame closes with 1003, one over the size limit with 1009."""
        if isinstance(raw, bytes):
            raise CloseConnection(UNSUPPORTED_DATA, "binary frames are not part of the protocol")
        limit = self.settings.max_frame_bytes
        # A code point takes at most 4 UTF-8 bytes: only a text frame near the
        # limit is encoded to be measured, not every frame on the hot path.
        if len(raw) > limit or 4 * len(raw) <= limit:
            size = len(raw)
        else:
            size = len(raw.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise CloseConnection(MESSAGE_TOO_BIG, "frame over the size limit")
        return raw

    def _strike(self) -> None:
        if not self._strikes.take(trio.current_time()):
            raise CloseConnection(POLICY_VIOLATION, "too many bad frames")

    async def _dispatch(self, frame: object) -> None:
        match frame:
            case Typing():
                await self.chat.typing(self.conn_id, self.user_id, frame.active, frame.to)
            case Nick():
                await self.chat.rename(self.user_id, frame.nick)
            case History():
                self._reply(await self.chat.history(self.user_id, frame))
            case Ping():
                self._reply(Pong())
            case Hello():
                raise FrameError("bad_request", "hello was already received")


def _offset_of(raw: str) -> str | None:
    """The ``client_offset`` of ``raw`` if it is a valid ``send`` frame."""
    try:
        frame = parse_frame(raw)
    except FrameError:
        return None
    return frame.client_offset if isinstance(frame, Send) else None


def coalesce(lines: list[str], limit: int = MAX_FRAME_BYTES) -> Iterator[list[str]]:
    """Consecutive groups of ``lines`` whose join with newlines is at most
    ``limit`` UTF-8 bytes (a line longer than that makes a group alone).
    An ASCII line's length is its size; only others are encoded to measure."""
    group: list[str] = []
    size = -1  # the first line has no newline before it
    for line in lines:
        length = 1 + (len(line) if line.isascii() else len(line.encode()))
        if group and size + length > limit:
            yield group
            group, size = [], -1
        group.append(line)
        size += length
    if group:
        yield group
