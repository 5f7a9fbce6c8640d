"""What a session does with the client's frames, apart from the connection's
lifecycle (hello, the two tasks, cut and close) in :mod:`quartchat.session`.

:class:`FramePolicy` holds the rules every client frame passes: text only,
the size limit, the frame rate, and strikes for the client's own mistakes.
:class:`Inbound` is the reader task's work after the hello: sends posted in
runs that share commits, and one answer per other frame type (a reply, or
an error frame that names what went wrong).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

import trio

from .backends.base import ConnId
from .chat import Chat
from .config import Settings
from .errors import (
    MESSAGE_TOO_BIG,
    POLICY_VIOLATION,
    UNSUPPORTED_DATA,
    CloseConnection,
    FrameError,
    StoreError,
    Unavailable,
)
from .limits import TokenBucket
from .log_limits import limit
from .models import Posted
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
    parse_frame,
)
from .protocol_moderation import MODERATION_FRAMES
from .protocol_rooms import ROOM_FRAMES

#: The frames whose refusals echo their ``ref`` (protocol 1.1's own).
FRAMES_WITH_REF = ROOM_FRAMES + MODERATION_FRAMES

log = logging.getLogger(__name__)
# A store that is away fails every frame of every socket: one line per kind a second.
limit(log)

#: Most sends of one connection posted together: those that were already
#: waiting when the reader took the first. They share commits (one fsync, one
#: Redis round trip) instead of each waiting for its own; the bound is how
#: many acks one commit can hold back for one connection. A run's acks are
#: queued at once, so a run also takes at most half the connection's queue
#: (``Settings.queue_size``): its own answers never get a client cut.
SEND_RUN_MAX = 64
#: One strike comes back this often, so an occasional mistake never adds up.
STRIKE_REFILL_PER_S = 0.5


class Receiving(Protocol):
    """The reading half of a session's :class:`~quartchat.session.Transport`."""

    async def receive(self) -> str | bytes:
        """The next client frame; raises :class:`PeerGone` once the client left."""

    def receive_nowait(self) -> str | bytes | None:
        """The next client frame if one has already arrived, else None
        (never waits; a departed peer is for :meth:`receive` to report)."""


def error_frame(chat: Chat, exc: FrameError) -> ErrorFrame:
    """The error frame for ``exc``, counted by its code."""
    chat.count_error(exc.code)
    return ErrorFrame.of(exc)


class FramePolicy:
    """The rules for one connection's client frames: text only, at most
    ``Settings.max_frame_bytes``, within the frame limit, and at most
    ``Settings.strikes`` mistakes of the client's own (one forgiven every
    2 s). A frame that breaks them closes the connection."""

    __slots__ = ("_frames", "_max_bytes", "_strikes")

    def __init__(self, settings: Settings) -> None:
        now = trio.current_time()
        self._max_bytes = settings.max_frame_bytes
        self._frames = TokenBucket(settings.frame_rate, settings.frame_burst, now)
        self._strikes = TokenBucket(STRIKE_REFILL_PER_S, settings.strikes, now)

    def admit(self) -> bool:
        """Whether one more frame is within the frame limit now (and spend it)."""
        return self._frames.take(trio.current_time())

    def strike(self) -> None:
        """Count one mistake of the client's; too many close with 1008."""
        if not self._strikes.take(trio.current_time()):
            raise CloseConnection(POLICY_VIOLATION, "too many bad frames")

    def checked_text(self, raw: str | bytes) -> str:
        """The frame's text; a binary frame closes with 1003, one over the size limit with 1009."""
        if isinstance(raw, bytes):
            raise CloseConnection(UNSUPPORTED_DATA, "binary frames are not part of the protocol")
        limit = self._max_bytes
        # A code point takes at most 4 UTF-8 bytes: only a text frame near the
        # limit is encoded to be measured, not every frame on the hot path.
        if len(raw) > limit or 4 * len(raw) <= limit:
            size = len(raw)
        else:
            size = len(raw.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise CloseConnection(MESSAGE_TOO_BIG, "frame over the size limit")
        return raw


class Inbound:
    """The reader's work once a session has started: every client frame
    read, checked by the :class:`FramePolicy`, and answered through
    ``reply`` (the session's queue, which wakes its writer at once)."""

    __slots__ = (
        "_chat",
        "_conn_id",
        "_history_max",
        "_policy",
        "_reply",
        "_rooms",
        "_run_most",
        "_transport",
        "_user_id",
    )

    def __init__(
        self,
        chat: Chat,
        transport: Receiving,
        conn_id: ConnId,
        user_id: str,
        policy: FramePolicy,
        reply: Callable[[ServerFrame], None],
        rooms: Collection[str] = (),
    ) -> None:
        self._chat = chat
        self._transport = transport
        self._conn_id = conn_id
        self._user_id = user_id
        self._policy = policy
        self._reply = reply
        #: The rooms the connection gets the events of (the broker keeps it current).
        self._rooms = rooms
        self._history_max = chat.settings.history_max
        self._run_most = min(SEND_RUN_MAX, max(1, chat.settings.queue_size // 2))

    async def read(self) -> None:
        """Read and answer client frames until the peer leaves or is cut."""
        while True:
            frame = self._take(await self._transport.receive())
            if isinstance(frame, Send):
                frame = await self._post_run(frame)
            if frame is not None:
                await self._answer(frame)

    def _take(self, raw: str | bytes) -> object:
        """One client frame, parsed: a frame record, or the :class:`FrameError`
        to answer it with (a strike counted where it is the client's fault)."""
        text = self._policy.checked_text(raw)
        if not self._policy.admit():
            self._policy.strike()
            # A refused send names its client_offset, as every answer to a
            # send does: the client knows which one to send again.
            return FrameError("rate_limited", "too many frames; slow down", _offset_of(text))
        try:
            return parse_frame(text, history_max=self._history_max, rooms=True)
        except FrameError as exc:
            if exc.code in CLIENT_FAULTS:
                self._policy.strike()
            return exc

    async def _post_run(self, first: Send) -> object | None:
        """Post ``first`` with the sends already waiting behind it (at most
        :data:`SEND_RUN_MAX` in all, and half the queue), so that they share
        commits; then ack or refuse each, in order. Returns the frame that
        ended the run, to be answered after it (or None)."""
        run = [first]
        after: object | None = None
        while len(run) < self._run_most and (raw := self._transport.receive_nowait()) is not None:
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
            outcomes = await self._chat.post_many(self._conn_id, self._user_id, run, self._rooms)
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
            self._reply(error_frame(self._chat, frame))
            return
        try:
            await self._dispatch(frame)
        except (FrameError, StoreError) as exc:
            self._refuse(frame, exc)

    def _refuse(self, frame: object, exc: FrameError | StoreError) -> None:
        """Answer ``frame``, which failed with ``exc``, with an error frame."""
        offset = frame.client_offset if isinstance(frame, Send) else None
        ref = frame.ref if isinstance(frame, FRAMES_WITH_REF) else None
        if isinstance(exc, FrameError):
            if exc.code in CLIENT_FAULTS:
                self._policy.strike()
            error = exc
        elif isinstance(exc, Unavailable):
            # Redis is away: nothing was stored or acked; the client retries.
            log.warning("a %s frame found the store away: %s", type(frame).__name__, exc)
            error = FrameError("unavailable", "the store is unreachable; retry", offset, ref=ref)
        else:
            # The server's fault, not the client's: the socket stays open and
            # the client retries (a send with the same client_offset).
            # The store logs its failures, once per kind at a time: a full disk
            # fails every send, and a line (or a traceback) each fills the log.
            log.debug("store failed on a %s frame: %s", type(frame).__name__, exc)
            error = FrameError(
                "internal", "the server could not reach its store; retry", offset, ref=ref
            )
        if error.ref is None:
            error.ref = ref
        self._reply(error_frame(self._chat, error))

    async def _dispatch(self, frame: object) -> None:
        match frame:
            case Typing():
                await self._chat.typing(self._conn_id, self._user_id, frame, self._rooms)
            case Nick():
                await self._chat.rename(self._user_id, frame.nick)
            case History():
                self._reply(await self._chat.history(self._user_id, frame))
            case Ping():
                self._reply(Pong())
            case Hello():
                raise FrameError("bad_request", "hello was already received")
            case _ if isinstance(frame, ROOM_FRAMES):
                answer = await self._chat.rooms_frame(self._conn_id, self._user_id, frame)
                if answer is not None:
                    self._reply(answer)
            case _ if isinstance(frame, MODERATION_FRAMES):
                answer = await self._chat.moderation_frame(self._conn_id, self._user_id, frame)
                if answer is not None:
                    self._reply(answer)


def _offset_of(raw: str) -> str | None:
    """The ``client_offset`` of ``raw`` if it is a valid ``send`` frame."""
    try:
        frame = parse_frame(raw, rooms=True)
    except FrameError:
        return None
    return frame.client_offset if isinstance(frame, Send) else None
