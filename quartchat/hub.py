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
:mod:`quartchat.posting` and :mod:`quartchat.reading` (replays, history).
What stays here is a session's start and end.

Undoing a session (presence, typing) runs from the ``finally`` of a handler
that may be cancelled, so :meth:`Hub.close_session` is shielded and bounded.
"""

from __future__ import annotations

import itertools
import logging
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
from .errors import FrameError, StoreError
from .identities import Identity, IdentityDesk, nick_taken
from .leave_grace import LeaveGrace
from .mention_lookup import MentionLookup
from .metrics import Metrics
from .models import GENERAL, User
from .online_records import OnlineRecords
from .pacing import FlushPacer
from .posting import Posting
from .protocol import (
    MAX_NICK,
    MAX_TEXT,
    Hello,
    History,
    HistoryPage,
    Limits,
    MessageFrame,
    PresenceNotice,
    ServerFrame,
    Typing,
    Welcome,
    encode,
)
from .protocol_rooms import RoomFrame
from .reading import Reading
from .room_desk import RoomDesk
from .tail_relay import TailRelay
from .typing_relay import TypingRelay

log = logging.getLogger(__name__)

#: Seconds a closing session may spend telling the presence board; past it
#: the board finishes the job itself (an expired heartbeat, or a retry).
CLEANUP_TIMEOUT = 5.0


class Hub:
    def __init__(self, settings: Settings, backends: Backends) -> None:
        self.settings = settings
        self.backends = backends
        self.log = backends.log
        self.broker = backends.broker
        #: Connections per user on this worker (what the metrics count as
        #: online here; the presence board knows the whole chat).
        self._local_users: dict[str, int] = {}
        self.metrics = Metrics(users_online=lambda: len(self._local_users))
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
            backends.rooms, backends.log, backends.identities, backends.presence, backends.bus
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
        )
        #: Posts a run of sends (:meth:`Posting.post_many` itself: a send's
        #: path gets no extra call and await through the hub).
        self.post_many: PostMany = self.posting.post_many
        #: Names this worker's connections, so ids never clash across workers.
        self.worker_id = secrets.token_hex(4)
        self._conn_ids = itertools.count(1)
        #: What ``welcome`` tells clients, so pages need not copy the limits.
        self._limits = Limits(
            text=MAX_TEXT,
            nick=MAX_NICK,
            send_rate=settings.send_rate,
            send_burst=settings.send_burst,
            frame_rate=settings.frame_rate,
            frame_burst=settings.frame_burst,
            frame_bytes=settings.max_frame_bytes,
            history=settings.history_max,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The backends, the committer, the tail relay and the timers; until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.backends.run)
            await nursery.start(self.committer.run)
            await nursery.start(self.tail_relay.run)
            await nursery.start(self.pacer.run)
            await nursery.start(self.announcer.run)
            await nursery.start(self.typing_relay.run)
            await nursery.start(self.leave_grace.run)
            nursery.start_soon(self.identity_desk.prune_silent_users)
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
        or the directory says so); the server clears it after ``typing_timeout``."""
        room = request.room
        if room is not None and room != GENERAL and room not in rooms:
            await self.room_desk.member_of(room, user_id)
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

    async def identify(self, hello: Hello, address: str | None) -> Identity:
        """See :meth:`quartchat.identities.IdentityDesk.identify`."""
        return await self.identity_desk.identify(hello, address)

    # ----- session start and end -------------------------------------------

    async def open_session(
        self, conn_id: ConnId, hello: Hello, subscribe: Subscribe, address: str | None = None
    ) -> Opening:
        """Start a session in the order that loses nothing: identify, subscribe
        to live traffic, count the connection online, then read the replay,
        whose snapshot id the live frames are checked against.

        A ``nick_exact`` hello whose nick is taken raises ``nick_taken``
        before anything is stored, claimed or announced. ``address`` (the
        client's) asking for too many new identities is closed with 1008.
        """
        await self.identity_desk.check_exact_nick(hello)
        identity = await self.identity_desk.identify(hello, address)
        subscription = subscribe(identity.stored.id)
        self.announcer.opening(conn_id)
        try:
            user = await self._attach(conn_id, identity, exact=hello.nick_exact)
        except BaseException:
            self.announcer.abandon(conn_id)
            subscription.close()
            raise
        try:
            if user.nick != identity.stored.nick:
                await self.identity_desk.save_nick(user)
            # After subscribing: changes relayed meanwhile apply on top.
            memberships = await self.backends.rooms.rooms_of(user.id)
            rooms = subscription.adopt([m.room.id for m in memberships]) | {GENERAL}
            memberships = [m for m in memberships if m.room.id in rooms]
            messages, last_id, recovered = await self.reading.replay(user.id, hello, rooms)
            direct_reads = await self.backends.rooms.direct_reads(user.id)
            standings, direct = await self.reading.standings(user.id, memberships, direct_reads)
            self.metrics.replay_messages.observe(len(messages))
            # The batch gathering now (perhaps with our own join) gives us
            # only what it announces after this read of the list.
            self.announcer.listing(conn_id)
            online = await self.backends.presence.listed()
        except BaseException:
            self.announcer.abandon(conn_id)
            await self.close_session(conn_id, user, subscription)
            raise
        welcome = Welcome(
            user,
            identity.token,
            online,
            last_id,
            self.log.epoch,
            recovered,
            self._limits,
            standings,
            direct,
        )
        # Only encoded lines outlive this call: the welcome's online list
        # alone is O(users), and it must not stay alive per connection. It
        # comes encoded (one fragment per user, kept by the board), so the
        # welcome costs a join of strings, not an encoding of everyone.
        lines = [encode(welcome)]
        lines += [encode(MessageFrame(m, name_general=True)) for m in messages]
        return Opening(user, subscription, lines, last_id, identity.errors)

    async def _attach(self, conn_id: ConnId, identity: Identity, *, exact: bool) -> User:
        """Count the connection online; return the user as online now. Their
        first connection is announced; a taken nick falls back to the stored
        one (or a ``nick-2`` variant) with a ``nick_taken`` error, unless
        ``exact``, where it is refused before anything is claimed."""
        presence = self.backends.presence
        stored, wanted = identity.stored, identity.wanted_nick
        if wanted is not None and not await presence.is_free(wanted, stored.id):
            if exact:
                raise nick_taken(wanted)
            identity.errors.append(nick_taken(wanted))
            wanted = None
        self.leave_grace.end(stored.id)
        # Shielded: a client leaving now must not leave the board counting a
        # connection nobody will count out (its answer is bounded by the
        # backend's own timeout).
        with trio.CancelScope(shield=True):
            user, first = await presence.connect(conn_id, User(stored.id, wanted or stored.nick))
        self._local_users[user.id] = self._local_users.get(user.id, 0) + 1
        try:
            if first:
                self.announcer.announce(PresenceNotice("join", user), skip_user=user.id)
            elif wanted is not None and wanted != user.nick:
                try:
                    user = await self.identity_desk.rename_online(user, wanted)
                except FrameError as exc:
                    identity.errors.append(exc)
        except BaseException:
            await self._count_out(conn_id, user)
            raise
        return user

    async def close_session(
        self, conn_id: ConnId, user: User, subscription: RoomSubscription
    ) -> None:
        """Undo :meth:`open_session`: stop delivery and clear typing at once;
        count the connection out, and if it was the user's last anywhere,
        announce the leave once the grace is over. Shielded and bounded, as it
        runs while the handler is being cancelled; never raises."""
        subscription.close()
        self.typing_relay.stop_connection(conn_id, user.id)
        await self._count_out(conn_id, user)

    async def _count_out(self, conn_id: ConnId, user: User) -> None:
        """Forget a counted connection; after the user's last one anywhere, the
        leave follows the grace. Shielded and bounded; never raises."""
        left = self._local_users.pop(user.id, 1) - 1
        if left:
            self._local_users[user.id] = left
        with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT):
            try:
                if await self.backends.presence.disconnect(conn_id, user.id):
                    await self.leave_grace.start(user.id)
            except StoreError as exc:  # the board finishes it once it can
                log.warning("could not count connection %s out: %s", conn_id, exc)
