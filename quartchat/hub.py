"""The hub owns the delivery rules: it composes the parts that keep them and
gives sessions the one narrow interface they use (:class:`~quartchat.chat.Chat`).

Sessions (one per socket) call in; the hub decides who hears what. It reaches
the shared state only through the backend seams (:mod:`quartchat.backends`),
so the same rules hold for one process on SQLite and for many workers on
Redis:

- committed messages come from the log's tail, one task per worker, in id
  order, and go to this worker's local broker (:mod:`quartchat.tail_relay`);
- presence, nick and typing frames go on the event bus, which reaches the
  connections of every worker (:mod:`quartchat.announcer`,
  :mod:`quartchat.typing_relay`);
- who is online, and which nicks they hold, is the presence board's; send
  allowances are the rate limits'.

Its parts, one job each: :mod:`quartchat.identities` (who a ``hello`` is,
nicks), :mod:`quartchat.typing_relay`, :mod:`quartchat.leave_grace`,
:mod:`quartchat.tail_relay`, :mod:`quartchat.online_records`,
:mod:`quartchat.posting`, :mod:`quartchat.reading` (replays, history) and
:mod:`quartchat.session_door` (a session's start and end). What stays here is
composing them and the thin calls of :class:`~quartchat.chat.Chat`.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Collection

import trio

from .announcer import Announcer, batch_window
from .backends import Backends
from .backends.base import ConnId
from .backends.local_bus import LocalBus
from .broker import Deliver, RoomSubscription
from .chat import Opening, PostMany, Subscribe
from .committer import Committer
from .config import Settings
from .errors import FORBIDDEN, FrameError, StoreError
from .identities import Identity, IdentityDesk
from .leave_grace import LeaveGrace
from .mention_lookup import MentionLookup
from .metrics import Metrics
from .models import GENERAL, Posted, User
from .moderation_desk import ModerationDesk
from .online_records import OnlineRecords
from .pacing import FlushPacer
from .posting import Posting
from .protocol import Hello, History, HistoryPage, Send, ServerFrame, Typing
from .protocol_moderation import ModerationFrame
from .protocol_rooms import RoomFrame
from .reading import Reading
from .room_desk import RoomDesk
from .sanctions import SanctionsView
from .session_door import SessionDoor
from .tail_relay import TailRelay
from .typing_relay import TypingRelay


class Hub:
    def __init__(self, settings: Settings, backends: Backends) -> None:
        self.settings = settings
        self.backends = backends
        self.log = backends.log
        self.broker = backends.broker
        self.metrics = Metrics(users_online=lambda: self.session_door.users_here())
        #: Counts a frame written (the metrics' own method: no call between).
        self.frame_sent: Callable[[int, int], None] = self.metrics.frame_sent
        self.committer = Committer(backends.log, self.metrics)
        #: How often each connection of this worker may be sent a frame.
        self.pacer = FlushPacer(
            settings.flush_budget,
            settings.flush_window_max,
            backends.presence.connections_elsewhere,
        )
        self.online = online = OnlineRecords(backends.presence, backends.broker)
        #: Presence notices, in batches on the embedded bus (see its module).
        self.announcer = Announcer(
            backends.bus,
            batch=isinstance(backends.bus, LocalBus),
            window=lambda: batch_window(self.pacer.connections(), settings.flush_budget),
        )
        self.identity_desk = IdentityDesk(
            settings, backends.identities, backends.presence, backends.limits, self.announcer
        )
        self.typing_relay = TypingRelay(
            settings.typing_timeout, online, self.announcer, backends.bus
        )
        self.leave_grace = LeaveGrace(settings.leave_grace, backends.presence, self.announcer)
        self.mention_lookup = MentionLookup(backends.rooms, backends.identities, backends.presence)
        self.tail_relay = TailRelay(backends.log, backends.broker, self.mention_lookup.forget)
        self.reading = Reading(settings, backends.log, backends.limits, backends.identities)
        self.room_desk = RoomDesk(
            backends.rooms,
            backends.log,
            backends.identities,
            backends.presence,
            backends.bus,
            backends.limits,
            settings,
        )
        #: The mutes, bans and admins in force, as this worker knows them.
        self.sanctions = SanctionsView(backends.moderation, backends.broker, backends.bus)
        self.moderation_desk = ModerationDesk(
            self.room_desk,
            backends.rooms,
            backends.log,
            backends.identities,
            backends.moderation,
            self.sanctions,
            backends.bus,
        )
        self.posting = Posting(
            settings,
            self.committer,
            online,
            backends.identities,
            self.typing_relay,
            self.announcer,
            self.tail_relay,
            self.room_desk,
            self.mention_lookup,
            backends.log,
            self.sanctions,
        )
        #: Posts a run of sends (:meth:`Posting.post_many` itself: a send's
        #: path gets no extra call and await through the hub).
        self.post_many: PostMany = self.posting.post_many
        #: Names this worker's connections, so ids never clash across workers.
        self.worker_id = secrets.token_hex(4)
        self._conn_ids = itertools.count(1)
        self.session_door = SessionDoor(
            settings,
            backends.log,
            backends.presence,
            backends.rooms,
            self.metrics,
            self.announcer,
            self.identity_desk,
            self.leave_grace,
            self.typing_relay,
            self.reading,
            self.sanctions,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The backends, the committer, the tail relay and the timers; until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.backends.run)
            await nursery.start(self.sanctions.run)
            await nursery.start(self.committer.run)
            await nursery.start(self.tail_relay.run)
            await nursery.start(self.pacer.run)
            await nursery.start(self.announcer.run)
            await nursery.start(self.typing_relay.run)
            await nursery.start(self.leave_grace.run)
            admins = self.backends.moderation.admins  # never pruned as silent
            nursery.start_soon(self.identity_desk.prune_silent_users, admins)
            task_status.started()

    async def aclose(self) -> None:
        """Close the log (waiting for calls in flight) and release the backends."""
        try:
            await self.log.aclose()
        finally:
            self.backends.release()

    # ----- what a session asks (quartchat.chat.Chat) -------------------------

    def new_conn_id(self) -> ConnId:
        return f"{self.worker_id}.{next(self._conn_ids)}"

    def subscribe(self, deliver: Deliver, user_id: str) -> RoomSubscription:
        return self.broker.subscribe_user(deliver, user_id)

    def count_close(self, code: int) -> None:
        self.metrics.closes.labels(code).inc()

    def count_error(self, code: str) -> None:
        self.metrics.errors.labels(code).inc()

    async def rename(self, user_id: str, raw_nick: str) -> None:
        """Change an online user's nick, tell everyone, then persist it."""
        await self.identity_desk.rename(user_id, raw_nick)

    async def typing(
        self, conn_id: ConnId, user_id: str, request: Typing, rooms: Collection[str]
    ) -> None:
        """Relay a typing state, in a room the connection is in (``rooms``,
        or the directory says so), unless the user is muted there; the
        server clears it after ``typing_timeout``."""
        room = request.room
        if room is not None and room != GENERAL and room not in rooms:
            await self.room_desk.member_of(room, user_id)
        if request.active and self.sanctions.muted(user_id, room) is not None:
            return  # nothing they type there would be sent
        await self.typing_relay.typing(conn_id, user_id, request.active, request.to, room)

    async def history(self, user_id: str, request: History) -> HistoryPage:
        """A page of a room the user is in (or of version 1's view, or of a
        private conversation); see :meth:`quartchat.reading.Reading.history`."""
        if request.room is not None and request.room != GENERAL:
            await self.room_desk.member_of(request.room, user_id)
        return await self.reading.history(user_id, request)

    async def backlog(self, user_id: str, room: str, up_to: int) -> HistoryPage:
        """See :meth:`quartchat.reading.Reading.backlog`."""
        return await self.reading.backlog(user_id, room, up_to)

    async def rooms_frame(
        self, conn_id: ConnId, user_id: str, frame: RoomFrame
    ) -> ServerFrame | None:
        """See :meth:`quartchat.room_desk.RoomDesk.handle`."""
        user = await self.online.get(user_id) or User(user_id, "")
        return await self.room_desk.handle(conn_id, user, frame)

    async def moderation_frame(
        self, conn_id: ConnId, user_id: str, frame: ModerationFrame
    ) -> ServerFrame | None:
        """See :meth:`quartchat.moderation_desk.ModerationDesk.handle`."""
        user = await self.online.get(user_id) or User(user_id, "")
        return await self.moderation_desk.handle(conn_id, user, frame)

    async def post_api(
        self, subject: str, nick: str, send: Send
    ) -> Posted | FrameError | StoreError:
        """A send of the server API (:mod:`quartchat.api`) as the user of the
        deployment's account ``subject`` (a JWT's ``sub``), made with ``nick``
        the first time; see :meth:`quartchat.posting.Posting.post_as`."""
        user = await self.backends.identities.user_for_subject(subject, nick)
        if self.sanctions.banned(user.id) is not None:
            return FrameError(FORBIDDEN, "that user is banned", send.client_offset)
        return await self.posting.post_as(user, send)

    async def identify(self, hello: Hello, address: str | None) -> Identity:
        """See :meth:`quartchat.identities.IdentityDesk.identify`."""
        return await self.identity_desk.identify(hello, address)

    async def open_session(
        self, conn_id: ConnId, hello: Hello, subscribe: Subscribe, address: str | None = None
    ) -> Opening:
        """See :meth:`quartchat.session_door.SessionDoor.open`."""
        return await self.session_door.open(conn_id, hello, subscribe, address)

    async def close_session(
        self, conn_id: ConnId, user: User, subscription: RoomSubscription
    ) -> None:
        """See :meth:`quartchat.session_door.SessionDoor.close`."""
        await self.session_door.close(conn_id, user, subscription)
