"""What a session may ask of the chat: the narrow interface it is given.

A :class:`~quartchat.session.Session` sees only :class:`Chat`, never the hub's
parts (identities, typing, leave grace, posting, the log's tail): every
operation a socket needs is one call here, so the parts behind it can change
without the session knowing. :class:`~quartchat.hub.Hub` is the one
implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .backends.base import ConnId
from .broker import Deliver, RoomSubscription
from .config import Settings
from .errors import FrameError, StoreError
from .models import Posted, User
from .pacing import FlushPacer
from .protocol import Hello, History, HistoryPage, Send, ServerFrame, Typing
from .protocol_moderation import ModerationFrame
from .protocol_rooms import RoomFrame

#: Subscribes the session once the hub knows whose it is (so its filter
#: knows which user's own presence and typing frames to skip).
Subscribe = Callable[[str], RoomSubscription]
#: Stores consecutive sends of one connection (in the rooms it is in); in
#: their order, what to ack or why not.
PostMany = Callable[
    [ConnId, str, Sequence[Send], Collection[str]],
    Coroutine[Any, Any, list[Posted | FrameError | StoreError]],
]


@dataclass(slots=True)
class Opening:
    """A started session: its user as online now, what to send before any
    live frame, and the replay's snapshot id that live messages are checked
    against (nothing at or below it is sent twice)."""

    user: User
    #: Its place in the broker; ``rooms`` are those it gets the events of.
    subscription: RoomSubscription
    #: The welcome and the replay, encoded.
    lines: list[str]
    cursor: int
    #: What the ``hello`` asked for that could not be had (a taken nick).
    errors: list[FrameError]


class Chat(Protocol):
    """Every operation a session performs on the chat, and nothing else."""

    @property
    def settings(self) -> Settings:
        """The server's settings (queue size, limits, timeouts)."""

    @property
    def pacer(self) -> FlushPacer:
        """The flush windows this worker's writers share (:mod:`quartchat.pacing`)."""

    def new_conn_id(self) -> ConnId:
        """An id for a new connection, unique across every worker."""

    def subscribe(self, deliver: Deliver, user_id: str) -> RoomSubscription:
        """Have this worker's live events for ``user_id`` handed to ``deliver``."""

    async def open_session(
        self, conn_id: ConnId, hello: Hello, subscribe: Subscribe, address: str | None = None
    ) -> Opening:
        """Identify the ``hello``, subscribe, count it online, read its replay."""

    async def close_session(
        self, conn_id: ConnId, user: User, subscription: RoomSubscription
    ) -> None:
        """Undo :meth:`open_session`; shielded and bounded, never raises."""

    async def post_many(
        self, conn_id: ConnId, user_id: str, sends: Sequence[Send], rooms: Collection[str]
    ) -> list[Posted | FrameError | StoreError]:
        """Store consecutive sends; in their order, what to ack or why not.
        ``rooms``: those the connection is in (a send elsewhere is checked)."""

    async def rename(self, user_id: str, raw_nick: str) -> None:
        """Change an online user's nick."""

    async def history(self, user_id: str, request: History) -> HistoryPage:
        """A page of history, paid for from the user's history budget."""

    async def backlog(self, user_id: str, room: str, up_to: int) -> HistoryPage:
        """The newest messages of ``room`` up to ``up_to``, for a member who just joined it."""

    async def rooms_frame(
        self, conn_id: ConnId, user_id: str, frame: RoomFrame
    ) -> ServerFrame | None:
        """Serve a rooms frame: the answer, or None when the log's tail brings it."""

    async def moderation_frame(
        self, conn_id: ConnId, user_id: str, frame: ModerationFrame
    ) -> ServerFrame | None:
        """Serve a delete, role, kick, mute or ban: the answer, or None when
        the log's tail brings it."""

    async def typing(
        self, conn_id: ConnId, user_id: str, request: Typing, rooms: Collection[str]
    ) -> None:
        """Relay a typing state (in a room the connection is in)."""

    def count_close(self, code: int) -> None:
        """Count a connection closed with ``code``."""

    def count_error(self, code: str) -> None:
        """Count an error frame sent with ``code``."""

    def frame_sent(self, objects: int, messages: int) -> None:
        """Count a frame written, joining ``objects`` lines, ``messages`` of them messages."""
