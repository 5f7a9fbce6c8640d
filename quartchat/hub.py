"""The hub owns the delivery rules: identity, presence, typing, posting.

Sessions (one per socket) call in; the hub decides who hears what. It reaches
the shared state only through the backend seams (:mod:`quartchat.backends`),
so the same rules hold for one process on SQLite and for many workers on
Redis:

- committed messages come from the log's tail, one task per worker, in id
  order, and go to this worker's local broker;
- presence, nick and typing frames go on the event bus, which reaches the
  connections of every worker;
- who is online, and which nicks they hold, is the presence board's; send
  allowances are the rate limits'.

Undoing a session (presence, typing) runs from the ``finally`` of a handler
that may be cancelled, so :meth:`Hub.close_session` is shielded and bounded.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import trio

from .announcer import Announcer, batch_window
from .backends import Backends
from .backends.base import Bucket, ConnId, PresenceBoard, RateLimited
from .backends.local_bus import LocalBus
from .broker import Deliver, Event, LocalBroker, Subscription
from .chat import Opening, Subscribe
from .committer import Committer
from .config import Settings
from .errors import POLICY_VIOLATION, UNKNOWN_TOKEN, CloseConnection, FrameError, StoreError
from .metrics import Metrics
from .models import Draft, Message, Posted, User
from .pacing import FlushPacer
from .protocol import (
    MAX_NICK,
    MAX_TEXT,
    Hello,
    History,
    HistoryPage,
    Limits,
    MessageFrame,
    PresenceNotice,
    Send,
    TypingNotice,
    Welcome,
    clean_nick,
    encode,
)
from .store import BUSY_TIMEOUT_MS, now_ms

log = logging.getLogger(__name__)

#: Typing relays per user and conversation are at most this often.
TYPING_RELAY_INTERVAL = 1.0
#: Seconds a closing session may spend telling the presence board; past it
#: the board finishes the job itself (an expired heartbeat, or a retry).
CLEANUP_TIMEOUT = 5.0
#: Seconds a nick change waits for the log's writer: three times SQLite's busy
#: timeout, so only a log that is stuck, not one that is busy, is given up on.
NICK_SAVE_TIMEOUT = 3 * BUSY_TIMEOUT_MS / 1000
#: Seconds between two prunings of silent users.
PRUNE_INTERVAL = 3600.0
#: Seconds a user's online record is used without asking the presence
#: board again: a bound on how long a nick change whose bus event was lost
#: (an outage of the bus) leaves this worker sending with the old nick.
RECORD_TTL = 10.0
#: Below this many known senders nothing is swept.
MIN_RECORD_SWEEP = 1024


@dataclass(slots=True)
class Identity:
    """Who a ``hello`` turned out to be, before they are counted online."""

    stored: User
    token: str
    wanted_nick: str | None
    errors: list[FrameError] = field(default_factory=list)


@dataclass(slots=True)
class _Typing:
    conn_id: ConnId
    user: User
    scope: trio.CancelScope
    relayed_at: float


class Hub:
    def __init__(self, settings: Settings, backends: Backends) -> None:
        self.settings = settings
        self.backends = backends
        self.log = backends.log
        self.identities = backends.identities
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
        self._online = _OnlineRecords(backends.presence, backends.broker)
        #: Presence notices, in batches on the embedded bus (see its module).
        self.announcer = Announcer(
            backends.bus,
            batch=isinstance(backends.bus, LocalBus),
            window=lambda: batch_window(self.pacer.connections(), settings.flush_budget),
        )
        #: Names this worker's connections, so ids never clash across workers.
        self.worker_id = secrets.token_hex(4)
        self._conn_ids = itertools.count(1)
        self._typing: dict[tuple[str, str | None], _Typing] = {}
        #: Users whose last connection here closed, waiting out the leave grace.
        self._graces: dict[str, trio.CancelScope] = {}
        #: The newest id the tail has handed to this worker's broker, and
        #: an event set each time it moves (then replaced).
        self._relayed = 0
        self._relay_moved = trio.Event()
        self._nursery: trio.Nursery | None = None
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
            await nursery.start(self._relay_tail)
            await nursery.start(self.pacer.run)
            await nursery.start(self.announcer.run)
            nursery.start_soon(self._announce_departures)
            nursery.start_soon(self._announce_returns)
            nursery.start_soon(self._prune_silent_users)
            self._nursery = nursery
            task_status.started()

    async def aclose(self) -> None:
        """Close the log (waiting for calls in flight) and release the backends."""
        try:
            await self.log.aclose()
        finally:
            self.backends.release()

    def new_conn_id(self) -> ConnId:
        return f"{self.worker_id}.{next(self._conn_ids)}"

    def subscribe(self, deliver: Deliver) -> Subscription:
        return self.broker.subscribe(deliver)

    def count_close(self, code: int) -> None:
        self.metrics.closes.labels(code).inc()

    def count_error(self, code: str) -> None:
        self.metrics.errors.labels(code).inc()

    async def _relay_tail(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Every committed message, from every worker, to this worker's
        connections, in id order (their cursors skip what they replayed)."""
        self._relayed = start = await self.log.last_id()
        task_status.started()
        async for batch in self.log.tail(start):
            for committed in batch:
                message = committed.message
                only = None
                if message.recipient is not None:
                    only = frozenset((message.sender.id, message.recipient.id))
                self.broker.publish(
                    Event.of(
                        MessageFrame(message),
                        message_id=message.id,
                        only_users=only,
                        skip_conn=committed.origin or None,
                    )
                )
            self._relayed = batch[-1].message.id
            self._relay_moved.set()
            self._relay_moved = trio.Event()

    async def _relayed_past(self, message_id: int) -> None:
        """Return once the tail has relayed ``message_id``: every message
        below it is then queued for this worker's connections, so an ack sent
        now reaches its connection after them. Clients move their cursor on
        acks (the page does); a lower message arriving after the ack would be
        skipped by a resume from that cursor."""
        while self._relayed < message_id:
            await self._relay_moved.wait()

    async def _announce_departures(self) -> None:
        """Leaves for users whose connections died with another worker."""
        async for users in self.backends.presence.departed():
            for user in users:
                self._publish_presence(PresenceNotice("leave", user), skip_user=user.id)

    async def _announce_returns(self) -> None:
        """Joins for users of this worker who were taken offline while it was
        taken for dead (late heartbeats), now that it is counted again."""
        async for users in self.backends.presence.returned():
            for user in users:
                self._publish_presence(PresenceNotice("join", user), skip_user=user.id)

    async def _prune_silent_users(self) -> None:
        """Delete identities that never said anything, at start and then every
        :data:`PRUNE_INTERVAL` (or ``silent_user_ttl`` if shorter): every
        ``hello`` without a token makes one, so they would pile up forever."""
        ttl = self.settings.silent_user_ttl
        while True:
            try:
                online = [user.id for user in await self.backends.presence.online()]
                pruned = await self.identities.prune_silent_users(
                    now_ms() - int(ttl * 1000), online
                )
            except StoreError:
                log.exception("could not prune silent users; trying again later")
            else:
                if pruned:
                    log.info("pruned %d users who never sent a message", pruned)
            await trio.sleep(min(ttl, PRUNE_INTERVAL))

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
        if hello.nick_exact and hello.nick is not None and hello.token is None:
            nick = clean_nick(hello.nick)
            if not await self.backends.presence.is_free(nick, None):
                raise _nick_taken(nick)
        identity = await self.identify(hello, address)
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
                await self._save_nick(user)
            messages, last_id, recovered = await self._replay(user.id, hello)
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
            user, identity.token, online, last_id, self.log.epoch, recovered, self._limits
        )
        # Only encoded lines outlive this call: the welcome's online list
        # alone is O(users), and it must not stay alive per connection. It
        # comes encoded (one fragment per user, kept by the board), so the
        # welcome costs a join of strings, not an encoding of everyone.
        lines = [encode(welcome)]
        lines += [encode(MessageFrame(m)) for m in messages]
        return Opening(user, subscription, lines, last_id, identity.errors)

    async def identify(self, hello: Hello, address: str | None) -> Identity:
        """Look up or create the user of a ``hello``; 4003 for an unknown token,
        1008 when ``address`` asked for too many new identities."""
        errors: list[FrameError] = []
        wanted: str | None = None
        if hello.nick is not None:
            try:
                wanted = clean_nick(hello.nick)
            except FrameError as exc:
                if hello.nick_exact:
                    raise
                errors.append(exc)
        if hello.token is not None:
            user = await self.identities.user_by_token(hello.token)
            if user is None:
                raise CloseConnection(UNKNOWN_TOKEN, "unknown token")
            return Identity(user, hello.token, wanted, errors)
        if address is not None and not await self.backends.limits.take(
            f"identity:{address}", self.settings.new_identity_rate, self.settings.new_identity_burst
        ):
            raise CloseConnection(POLICY_VIOLATION, "too many new identities; retry later")
        nick = wanted if wanted is not None else f"guest-{secrets.token_hex(2)}"
        user, token = await self.identities.create_user(nick)
        return Identity(user, token, wanted, errors)

    async def _attach(self, conn_id: ConnId, identity: Identity, *, exact: bool) -> User:
        """Count the connection online; return the user as online now. Their
        first connection is announced; a taken nick falls back to the stored
        one (or a ``nick-2`` variant) with a ``nick_taken`` error, unless
        ``exact``, where it is refused before anything is claimed."""
        presence = self.backends.presence
        stored, wanted = identity.stored, identity.wanted_nick
        if wanted is not None and not await presence.is_free(wanted, stored.id):
            if exact:
                raise _nick_taken(wanted)
            identity.errors.append(_nick_taken(wanted))
            wanted = None
        self._end_grace(stored.id)
        # Shielded: a client leaving now must not leave the board counting a
        # connection nobody will count out (its answer is bounded by the
        # backend's own timeout).
        with trio.CancelScope(shield=True):
            user, first = await presence.connect(conn_id, User(stored.id, wanted or stored.nick))
        self._local_users[user.id] = self._local_users.get(user.id, 0) + 1
        try:
            if first:
                self._publish_presence(PresenceNotice("join", user), skip_user=user.id)
            elif wanted is not None and wanted != user.nick:
                try:
                    user = await self._rename_online(user, wanted)
                except FrameError as exc:
                    identity.errors.append(exc)
        except BaseException:
            await self._count_out(conn_id, user)
            raise
        return user

    async def close_session(self, conn_id: ConnId, user: User, subscription: Subscription) -> None:
        """Undo :meth:`open_session`: stop delivery and clear typing at once;
        count the connection out, and if it was the user's last anywhere,
        announce the leave once the grace is over. Shielded and bounded, as it
        runs while the handler is being cancelled; never raises."""
        subscription.close()
        for key, entry in list(self._typing.items()):
            if key[0] == user.id and entry.conn_id == conn_id:
                self._stop_typing(key)
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
                    await self._start_grace(user.id)
            except StoreError as exc:  # the board finishes it once it can
                log.warning("could not count connection %s out: %s", conn_id, exc)

    # ----- leave grace ---------------------------------------------------------
    # A user whose last connection closes stays online (in the list, holding
    # their nick) for ``leave_grace`` seconds. Coming back within it, on any
    # worker, announces nothing; otherwise the leave is announced when it ends.

    async def _start_grace(self, user_id: str) -> None:
        scope = trio.CancelScope()
        if self.settings.leave_grace > 0 and self._nursery is not None:
            try:
                self._nursery.start_soon(self._depart_after_grace, user_id, scope)
            except RuntimeError:  # the hub's nursery is closed: the server is stopping
                pass
            else:
                self._end_grace(user_id)
                self._graces[user_id] = scope
                return
        await self._depart(user_id)

    async def _depart_after_grace(self, user_id: str, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(self.settings.leave_grace)
        if self._graces.get(user_id) is not scope:
            return  # back within the grace, or another grace took over
        del self._graces[user_id]
        try:
            await self._depart(user_id)
        except StoreError as exc:
            log.warning("could not take %s offline: %s", user_id, exc)

    async def _depart(self, user_id: str) -> None:
        gone = await self.backends.presence.depart_if_idle(user_id)
        if gone is not None:
            self._publish_presence(PresenceNotice("leave", gone), skip_user=user_id)

    def _end_grace(self, user_id: str) -> None:
        scope = self._graces.pop(user_id, None)
        if scope is not None:
            scope.cancel()

    async def _replay(self, user_id: str, hello: Hello) -> tuple[list[Message], int, bool]:
        """What a new connection is owed: newest backlog, or all after its cursor."""
        cursor = hello.last_id
        if hello.epoch is not None and hello.epoch != self.log.epoch:
            cursor = None
        if cursor is None:
            replay = await self.log.read_after(user_id, None, self.settings.backlog)
            return replay.messages, replay.last_id, False
        replay = await self.log.read_after(user_id, cursor, self.settings.replay_limit)
        return replay.messages, replay.last_id, replay.complete

    # ----- requests ----------------------------------------------------------

    async def post_many(
        self, conn_id: ConnId, user_id: str, sends: Sequence[Send]
    ) -> list[Posted | FrameError | StoreError]:
        """Store consecutive sends of one connection; return, in their order,
        what to ack or why not, once every stored one may be acked.

        They are queued together, so they share commits instead of waiting
        for one each. Each fails alone: a :class:`FrameError` (``rate_limited``,
        ``unknown_user``: nothing stored) or a
        :class:`~quartchat.errors.StoreError` (nothing acked: the client
        retries). The send limit is spent by the log in the same step as the
        append (one round trip on Redis), in the sends' order.
        """
        sender = await self._online.get(user_id)
        assert sender is not None, "a session posts only while attached"
        settings = self.settings
        bucket = Bucket(f"send:{user_id}", settings.send_rate, settings.send_burst)
        drafts: list[Draft | FrameError] = []
        for send in sends:
            try:
                drafts.append(await self._draft(conn_id, sender, send))
            except FrameError as exc:
                drafts.append(exc)
        queued = [(draft, bucket) for draft in drafts if isinstance(draft, Draft)]
        results = iter(await self.committer.post_many(queued))
        outcomes = [
            draft if isinstance(draft, FrameError) else _refused_if_limited(next(results), draft)
            for draft in drafts
        ]
        stored = [o.message.id for o in outcomes if isinstance(o, Posted)]
        if stored:
            await self._relayed_past(max(stored))
        return outcomes

    async def _draft(self, conn_id: ConnId, sender: User, send: Send) -> Draft:
        """What to store for ``send``; raises ``unknown_user`` for a private
        message to nobody."""
        recipient = None
        if send.to is not None:
            recipient = await self._online.get(send.to) or await self.identities.get_user(send.to)
            if recipient is None:
                raise FrameError("unknown_user", "no user with that id", send.client_offset)
        self._stop_typing((sender.id, send.to))
        self.announcer.before_frames_of(sender.id)  # their join before their message
        return Draft(sender, send.client_offset, send.text, recipient, origin=conn_id)

    async def rename(self, user_id: str, raw_nick: str) -> None:
        """Change an online user's nick, tell everyone, then persist it."""
        nick = clean_nick(raw_nick)
        current = await self.backends.presence.get(user_id)
        assert current is not None, "a session renames only while attached"
        user = await self._rename_online(current, nick)
        if user != current:
            await self._save_nick(user)

    async def _save_nick(self, user: User) -> None:
        """Store a nick that presence already announced.

        Shielded, so a client leaving meanwhile cannot leave the log behind
        what everyone was told; bounded, so a stuck log cannot hold the
        connection open without end (then the nick is in force until the
        user leaves, and the stored one comes back on their next visit)."""
        with trio.CancelScope(shield=True), trio.move_on_after(NICK_SAVE_TIMEOUT) as bound:
            await self.identities.set_nick(user.id, user.nick)
        if bound.cancelled_caught:
            log.warning("gave up storing the nick of %s after %s s", user.id, NICK_SAVE_TIMEOUT)

    async def _rename_online(self, current: User, nick: str) -> User:
        if nick == current.nick:
            return current
        old = await self.backends.presence.rename(current.id, nick)
        if old is None:
            raise _nick_taken(nick)
        user = User(current.id, nick)
        self._publish_presence(PresenceNotice("nick", user, old_nick=old.nick))
        return user

    def _publish_presence(self, notice: PresenceNotice, *, skip_user: str | None = None) -> None:
        self.announcer.announce(notice, skip_user=skip_user)

    async def history(self, user_id: str, request: History) -> HistoryPage:
        """A page of history, paid for first from the user's history budget.

        A page costs the messages it asks for (its ``limit``, already capped
        at ``history_max``), whatever it returns, and is charged before it is
        read: a refused request costs the store nothing, and an empty page
        past the start of the log is no cheaper to ask for than a full one.
        The budget is the user's, over all their sockets and workers (the
        rate limits' bucket ``history:<user id>``). Raises ``rate_limited``
        with ``retry_after`` when the budget cannot pay for the page yet."""
        settings = self.settings
        cost = max(1, min(request.limit, settings.history_burst))
        wait = await self.backends.limits.spend(
            f"history:{user_id}", settings.history_rate, settings.history_burst, cost
        )
        if wait > 0:
            retry_after = math.ceil(wait * 100) / 100  # never early
            raise FrameError(
                "rate_limited",
                f"reading history too fast; retry in {retry_after:.2f} s",
                retry_after=retry_after,
            )
        messages, has_more = await self.log.history(
            user_id, request.before_id, request.limit, request.with_user
        )
        return HistoryPage(messages, has_more, request.before_id, request.with_user)

    # ----- typing ------------------------------------------------------------

    async def typing(self, conn_id: ConnId, user_id: str, active: bool, to: str | None) -> None:
        """Relay a typing state; the server clears it after ``typing_timeout``."""
        key = (user_id, to)
        if not active:
            self._stop_typing(key)
            return
        if to is not None and await self._online.get(to) is None:
            return  # nobody online to tell; nothing leaks about who exists
        user = await self._online.get(user_id)
        if user is None:
            return
        now = trio.current_time()
        entry = self._typing.get(key)
        if entry is None:
            assert self._nursery is not None, "Hub.run must be started first"
            scope = trio.CancelScope(deadline=now + self.settings.typing_timeout)
            entry = self._typing[key] = _Typing(conn_id, user, scope, relayed_at=now)
            self._nursery.start_soon(self._expire_typing, key, entry)
        else:
            entry.scope.deadline = now + self.settings.typing_timeout
            entry.conn_id, entry.user = conn_id, user
            if now - entry.relayed_at < TYPING_RELAY_INTERVAL:
                return
            entry.relayed_at = now
        self._publish_typing(user, to, active=True)

    async def _expire_typing(self, key: tuple[str, str | None], entry: _Typing) -> None:
        with entry.scope:
            await trio.sleep_forever()
        if self._typing.get(key) is entry:
            self._stop_typing(key)

    def _stop_typing(self, key: tuple[str, str | None]) -> None:
        entry = self._typing.pop(key, None)
        if entry is None:
            return
        entry.scope.cancel()
        self._publish_typing(entry.user, key[1], active=False)

    def _publish_typing(self, user: User, to: str | None, *, active: bool) -> None:
        only = None if to is None else frozenset((to,))
        notice = TypingNotice(user, active, to)
        self.announcer.before_frames_of(user.id)  # their join before their typing
        self.backends.bus.publish(Event.of(notice, only_users=only, skip_user=user.id))


class _OnlineRecords:
    """The online records of the users this worker's connections send as and
    send to, so a send or a typing frame does not ask the presence board (a
    Redis round trip) each time.

    A record is dropped as soon as a presence frame about its user (join,
    leave, nick: from this worker or, through the event bus, any other)
    reaches this worker's broker, so the next send reads the new nick; as a
    user sees their own rename only through that frame, a message they send
    after seeing it carries the new nick on every worker. Records also expire
    after :data:`RECORD_TTL`, in case the bus lost the frame.
    """

    def __init__(self, presence: PresenceBoard, broker: LocalBroker) -> None:
        self._presence = presence
        self._known: dict[str, tuple[User, float]] = {}
        #: Counts the records dropped: a read that overlapped a drop is not kept.
        self._drops = 0
        self._sweep_at = MIN_RECORD_SWEEP
        broker.subscribe(self._watch)

    async def get(self, user_id: str) -> User | None:
        now = trio.current_time()
        known = self._known.get(user_id)
        if known is not None and now < known[1]:
            return known[0]
        drops = self._drops
        user = await self._presence.get(user_id)
        if user is not None and drops == self._drops:
            self._sweep(now)
            self._known[user_id] = (user, now + RECORD_TTL)
        return user

    def _watch(self, event: Event) -> None:
        for user_id in event.about:
            self._drops += 1
            self._known.pop(user_id, None)

    def _sweep(self, now: float) -> None:
        if len(self._known) < self._sweep_at:
            return
        for user_id, (_, expires) in list(self._known.items()):
            if expires <= now:
                del self._known[user_id]
        self._sweep_at = max(MIN_RECORD_SWEEP, 2 * len(self._known))


def _nick_taken(nick: str) -> FrameError:
    return FrameError("nick_taken", f"the nickname {nick!r} is in use")


def _refused_if_limited(
    result: Posted | RateLimited | StoreError, draft: Draft
) -> Posted | FrameError | StoreError:
    """The answer to a stored draft's send: a spent send limit is the client's ``rate_limited``."""
    if isinstance(result, RateLimited):
        return FrameError("rate_limited", "sending too fast; retry shortly", draft.client_offset)
    return result
