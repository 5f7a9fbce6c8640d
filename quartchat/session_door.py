"""Where a session comes in and goes out: its start and its end.

Starting a session takes an order that loses nothing (identify, subscribe,
count online, then read the replay and build the welcome); ending it undoes
each step, even while the handler is being cancelled (so it is shielded and
bounded). A part of its own, so the hub only composes parts and passes on
the rest of :class:`~quartchat.chat.Chat`.
"""

from __future__ import annotations

import logging

import trio

from .announcer import Announcer
from .backends.base import ConnId, MessageLog, PresenceBoard, RoomDirectory
from .broker import RoomSubscription
from .chat import Opening, Subscribe
from .config import Settings
from .errors import FrameError, StoreError
from .identities import Identity, IdentityDesk, nick_taken
from .leave_grace import LeaveGrace
from .metrics import Metrics
from .models import GENERAL, User
from .protocol import (
    MAX_NICK,
    MAX_TEXT,
    Hello,
    Limits,
    MessageFrame,
    PresenceNotice,
    Welcome,
    encode,
)
from .reading import Reading
from .sanctions import SanctionsView
from .typing_relay import TypingRelay

log = logging.getLogger(__name__)

#: Seconds a closing session may spend telling the presence board; past it
#: the board finishes the job itself (an expired heartbeat, or a retry).
CLEANUP_TIMEOUT = 5.0


class SessionDoor:
    """Opens and closes sessions; counts this worker's users online."""

    def __init__(
        self,
        settings: Settings,
        log: MessageLog,
        presence: PresenceBoard,
        rooms: RoomDirectory,
        metrics: Metrics,
        announcer: Announcer,
        identity_desk: IdentityDesk,
        leave_grace: LeaveGrace,
        typing_relay: TypingRelay,
        reading: Reading,
        sanctions: SanctionsView,
    ) -> None:
        self._log = log
        self._sanctions = sanctions
        self._presence = presence
        self._rooms = rooms
        self._metrics = metrics
        self._announcer = announcer
        self._identity_desk = identity_desk
        self._leave_grace = leave_grace
        self._typing_relay = typing_relay
        self._reading = reading
        #: Connections per user on this worker (what the metrics count as
        #: online here; the presence board knows the whole chat).
        self._local_users: dict[str, int] = {}
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

    def users_here(self) -> int:
        """How many users have a connection on this worker."""
        return len(self._local_users)

    async def open(
        self, conn_id: ConnId, hello: Hello, subscribe: Subscribe, address: str | None
    ) -> Opening:
        """Start a session in the order that loses nothing: identify, subscribe
        to live traffic, count the connection online, then read the replay,
        whose snapshot id the live frames are checked against.

        A ``nick_exact`` hello whose nick is taken raises ``nick_taken``
        before anything is stored, claimed or announced. ``address`` (the
        client's) asking for too many new identities is closed with 1008.
        """
        await self._identity_desk.check_exact_nick(hello)
        identity = await self._identity_desk.identify(hello, address)
        subscription = subscribe(identity.stored.id)
        self._announcer.opening(conn_id)
        try:
            # After subscribing: a ban read after this check closes the
            # subscription's connection, so none slips between the two.
            stored = identity.stored
            admin = await self._sanctions.admit(conn_id, stored.id, identity.admin)
            user = await self._attach(conn_id, identity, exact=hello.nick_exact)
        except BaseException:
            self._sanctions.closed(conn_id)
            self._announcer.abandon(conn_id)
            subscription.close()
            raise
        try:
            if user.nick != identity.stored.nick:
                await self._identity_desk.save_nick(user)
            # After subscribing: changes relayed meanwhile apply on top.
            memberships = await self._rooms.rooms_of(user.id)
            rooms = subscription.adopt([m.room.id for m in memberships]) | {GENERAL}
            memberships = [m for m in memberships if m.room.id in rooms]
            messages, last_id, recovered = await self._reading.replay(user.id, hello, rooms)
            direct_reads = await self._rooms.direct_reads(user.id)
            standings, direct = await self._reading.standings(user.id, memberships, direct_reads)
            self._metrics.replay_messages.observe(len(messages))
            # The batch gathering now (perhaps with our own join) gives us
            # only what it announces after this read of the list.
            self._announcer.listing(conn_id)
            online = await self._presence.listed()
        except BaseException:
            self._announcer.abandon(conn_id)
            await self.close(conn_id, user, subscription)
            raise
        welcome = Welcome(
            user,
            identity.token,
            online,
            last_id,
            self._log.epoch,
            recovered,
            self._limits,
            standings,
            direct,
            admin=admin,
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
        presence = self._presence
        stored, wanted = identity.stored, identity.wanted_nick
        if wanted is not None and not await presence.is_free(wanted, stored.id):
            if exact:
                raise nick_taken(wanted)
            identity.errors.append(nick_taken(wanted))
            wanted = None
        self._leave_grace.end(stored.id)
        # Shielded: a client leaving now must not leave the board counting a
        # connection nobody will count out (its answer is bounded by the
        # backend's own timeout).
        with trio.CancelScope(shield=True):
            user, first = await presence.connect(conn_id, User(stored.id, wanted or stored.nick))
        self._local_users[user.id] = self._local_users.get(user.id, 0) + 1
        try:
            if first:
                self._announcer.announce(PresenceNotice("join", user), skip_user=user.id)
            elif wanted is not None and wanted != user.nick:
                try:
                    user = await self._identity_desk.rename_online(user, wanted)
                except FrameError as exc:
                    identity.errors.append(exc)
        except BaseException:
            await self._count_out(conn_id, user)
            raise
        return user

    async def close(self, conn_id: ConnId, user: User, subscription: RoomSubscription) -> None:
        """Undo :meth:`open`: stop delivery and clear typing at once; count
        the connection out, and if it was the user's last anywhere, announce
        the leave once the grace is over. Shielded and bounded, as it runs
        while the handler is being cancelled; never raises."""
        subscription.close()
        self._sanctions.closed(conn_id)
        self._typing_relay.stop_connection(conn_id, user.id)
        await self._count_out(conn_id, user)

    async def _count_out(self, conn_id: ConnId, user: User) -> None:
        """Forget a counted connection; after the user's last one anywhere, the
        leave follows the grace. Shielded and bounded; never raises."""
        left = self._local_users.pop(user.id, 1) - 1
        if left:
            self._local_users[user.id] = left
        with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT):
            try:
                if await self._presence.disconnect(conn_id, user.id):
                    await self._leave_grace.start(user.id)
            except StoreError as exc:  # the board finishes it once it can
                log.warning("could not count connection %s out: %s", conn_id, exc)
