"""The hub owns the delivery rules: identity, presence, typing, posting.

Sessions (one per socket) call in; the hub decides who hears what and hands
it to the broker. Everything a cancelled handler must undo (presence, typing)
is a plain synchronous method here, so ``finally`` blocks can call it without
awaiting.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import trio

from .backends.local_limits import LocalLimits
from .broker import Broker, Deliver, Event, Subscription
from .committer import Committer
from .config import Settings
from .errors import POLICY_VIOLATION, UNKNOWN_TOKEN, CloseConnection, FrameError, StoreError
from .limits import TokenBucket
from .metrics import Metrics
from .models import Draft, Message, Posted, User
from .presence import Presence
from .protocol import MAX_NICK, MAX_TEXT, Hello, History, Send, clean_nick
from .store import BUSY_TIMEOUT_MS, AsyncStore, now_ms

log = logging.getLogger(__name__)

#: Seconds a nick change waits for the store's writer: three times its busy
#: timeout, so only a store that is stuck, not one that is busy, is given up on.
NICK_SAVE_TIMEOUT = 3 * BUSY_TIMEOUT_MS / 1000
#: Seconds between two prunings of silent users.
PRUNE_INTERVAL = 3600.0
#: Typing relays per user and conversation are at most this often.
TYPING_RELAY_INTERVAL = 1.0


@dataclass(slots=True)
class Identity:
    """Who a ``hello`` turned out to be, before they are counted online."""

    stored: User
    token: str
    wanted_nick: str | None
    errors: list[FrameError] = field(default_factory=list)


@dataclass(slots=True)
class _Lingering:
    """A user's last connection, closed but still counted during the leave grace."""

    conn_id: int
    scope: trio.CancelScope


@dataclass(slots=True)
class _Typing:
    conn_id: int
    scope: trio.CancelScope
    relayed_at: float


class Hub:
    def __init__(self, settings: Settings, store: AsyncStore, broker: Broker) -> None:
        self.settings = settings
        self.store = store
        self.broker = broker
        self.presence = Presence()
        self.metrics = Metrics(users_online=lambda: len(self.presence))
        self.committer = Committer(store, self._publish_committed, self.metrics)
        self._conn_ids = itertools.count(1)
        self._send_buckets: dict[str, TokenBucket] = {}
        #: New identities per client address.
        self._new_identities = LocalLimits()
        self._typing: dict[tuple[str, str | None], _Typing] = {}
        self._lingering: dict[str, _Lingering] = {}
        self._nursery: trio.Nursery | None = None
        #: What ``welcome`` tells clients, so pages need not copy the limits.
        self._limits = {
            "text": MAX_TEXT,
            "nick": MAX_NICK,
            "send_rate": settings.send_rate,
            "send_burst": settings.send_burst,
            "frame_rate": settings.frame_rate,
            "frame_burst": settings.frame_burst,
            "frame_bytes": settings.max_frame_bytes,
            "history": settings.history_max,
        }

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The hub's own tasks (the committer, typing timers, pruning); runs until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.committer.run)
            nursery.start_soon(self._prune_silent_users)
            task_status.started()

    async def _prune_silent_users(self) -> None:
        """Delete identities that never said anything, at start and then every
        :data:`PRUNE_INTERVAL` (or ``silent_user_ttl`` if shorter): every
        ``hello`` without a token makes one, so they would pile up forever."""
        ttl = self.settings.silent_user_ttl
        while True:
            online = [user.id for user in self.presence.online()]
            try:
                pruned = await self.store.prune_silent_users(now_ms() - int(ttl * 1000), online)
            except StoreError:
                log.exception("could not prune silent users; trying again later")
            else:
                if pruned:
                    log.info("pruned %d users who never sent a message", pruned)
            await trio.sleep(min(ttl, PRUNE_INTERVAL))

    def new_conn_id(self) -> int:
        return next(self._conn_ids)

    # ----- session start ---------------------------------------------------

    async def identify(self, hello: Hello, address: str | None = None) -> Identity:
        """Look up or create the user of a ``hello``; 4003 for an unknown token,
        1008 when ``address`` (the client's) asked for too many new identities."""
        errors: list[FrameError] = []
        wanted: str | None = None
        if hello.nick is not None:
            try:
                wanted = clean_nick(hello.nick)
            except FrameError as exc:
                errors.append(exc)
        if hello.token is not None:
            user = await self.store.user_by_token(hello.token)
            if user is None:
                raise CloseConnection(UNKNOWN_TOKEN, "unknown token")
            return Identity(user, hello.token, wanted, errors)
        if address is not None and not await self._new_identities.take(
            address, self.settings.new_identity_rate, self.settings.new_identity_burst
        ):
            raise CloseConnection(POLICY_VIOLATION, "too many new identities; retry later")
        nick = wanted if wanted is not None else f"guest-{secrets.token_hex(2)}"
        user, token = await self.store.create_user(self.presence.free_variant(nick, None))
        return Identity(user, token, wanted, errors)

    def check_nick_exact(self, hello: Hello) -> None:
        """For a ``hello`` with ``nick_exact``: raise ``bad_nick``, or
        ``nick_taken`` when a new identity asks for a nick someone online
        holds, before any user is created. :meth:`attach` checks again as it
        claims the nick."""
        if not hello.nick_exact or hello.nick is None:
            return
        nick = clean_nick(hello.nick)
        if hello.token is None and not self.presence.is_free(nick, None):
            raise _nick_taken(nick)

    def attach(
        self, conn_id: int, identity: Identity, deliver: Deliver, *, exact: bool = False
    ) -> tuple[User, Subscription]:
        """Subscribe a connection and count it online; synchronous, so nothing
        can slip between the nick check and the claim. Returns the user as
        they are now online (their nick may differ from the stored one),
        unless ``exact`` and the wanted nick is taken: then ``nick_taken`` is
        raised before anything is claimed or announced."""
        stored, wanted = identity.stored, identity.wanted_nick
        if exact and wanted is not None and not self.presence.is_free(wanted, stored.id):
            raise _nick_taken(wanted)
        subscription = self.broker.subscribe(deliver)
        online = self.presence.get(stored.id)
        if online is None:
            nick = stored.nick
            if wanted is not None:
                if self.presence.is_free(wanted, stored.id):
                    nick = wanted
                else:
                    identity.errors.append(_nick_taken(wanted))
            user = User(stored.id, self.presence.free_variant(nick, stored.id))
            self.presence.add(conn_id, user)
            self._publish_presence("join", user, skip_user=user.id)
            if user.id not in self._send_buckets:
                self._send_buckets[user.id] = TokenBucket(
                    self.settings.send_rate, self.settings.send_burst, trio.current_time()
                )
            return user, subscription
        self.presence.add(conn_id, online)
        self._end_grace(stored.id)
        if wanted is not None and wanted != online.nick:
            try:
                return self._rename_online(stored.id, wanted), subscription
            except FrameError as exc:
                identity.errors.append(exc)
        return online, subscription

    def detach(self, conn_id: int, user_id: str, subscription: Subscription) -> None:
        """Undo :meth:`attach`: stop delivery and clear typing at once; count
        the connection out now, or, if it was the user's last, after the leave
        grace. Synchronous, never raises."""
        subscription.close()
        for key, entry in list(self._typing.items()):
            if key[0] == user_id and entry.conn_id == conn_id:
                self._stop_typing(key)
        if not (self.presence.is_last(conn_id, user_id) and self._start_grace(conn_id, user_id)):
            self._count_out(conn_id, user_id)

    def _count_out(self, conn_id: int, user_id: str) -> None:
        """Forget a connection; publish the leave if it was the user's last."""
        gone = self.presence.remove(conn_id, user_id)
        if gone is not None:
            self._forget_idle_buckets()
            self._publish_presence("leave", gone, skip_user=user_id)

    # ----- leave grace ---------------------------------------------------------
    # A user whose last connection closes stays online (in the list, holding
    # their nick) for ``leave_grace`` seconds, kept by that closed connection.
    # Coming back within it swaps in the new connection silently; otherwise
    # the leave is announced when the grace ends. Typing is cleared at once.

    def _start_grace(self, conn_id: int, user_id: str) -> bool:
        """Keep ``conn_id`` counted for the grace; False when there is no grace
        (disabled, or the hub is stopping) and the leave is due now."""
        grace = self.settings.leave_grace
        if grace <= 0 or self._nursery is None:
            return False
        lingering = _Lingering(conn_id, trio.CancelScope())
        try:
            self._nursery.start_soon(self._leave_after_grace, user_id, lingering, grace)
        except RuntimeError:  # the hub's nursery is closed: the server is stopping
            return False
        self._lingering[user_id] = lingering
        return True

    async def _leave_after_grace(self, user_id: str, lingering: _Lingering, grace: float) -> None:
        with lingering.scope:
            await trio.sleep(grace)
        if self._lingering.get(user_id) is lingering:
            del self._lingering[user_id]
            self._count_out(lingering.conn_id, user_id)

    def _end_grace(self, user_id: str) -> None:
        """The user is back within the grace: drop the closed connection that
        kept them online, announcing nothing (their new one is counted)."""
        lingering = self._lingering.pop(user_id, None)
        if lingering is not None:
            lingering.scope.cancel()
            self.presence.remove(lingering.conn_id, user_id)

    def _forget_idle_buckets(self) -> None:
        """Drop the send buckets of offline users that have refilled: a user who
        reconnects to reset their allowance finds their old, spent bucket.

        Runs only when buckets outnumber online users by half again, so a wave
        of leaves costs linear time, not quadratic."""
        if len(self._send_buckets) <= 1.5 * len(self.presence) + 16:
            return
        now = trio.current_time()
        for user_id, bucket in list(self._send_buckets.items()):
            if self.presence.get(user_id) is None and bucket.is_full(now):
                del self._send_buckets[user_id]

    def welcome(self, user: User, token: str, last_id: int, recovered: bool) -> dict[str, Any]:
        return {
            "type": "welcome",
            "user": user.ref(),
            "token": token,
            "online": [u.ref() for u in self.presence.online()],
            "last_id": last_id,
            "epoch": self.store.epoch,
            "recovered": recovered,
            "limits": self._limits,
        }

    async def replay(self, user_id: str, hello: Hello) -> tuple[list[Message], int, bool]:
        """What a new connection is owed: newest backlog, or all after its cursor."""
        cursor = hello.last_id
        if hello.epoch is not None and hello.epoch != self.store.epoch:
            cursor = None
        if cursor is None:
            messages, last, _ = await self.store.replay(user_id, None, self.settings.backlog)
            return messages, last, False
        return await self.store.replay(user_id, cursor, self.settings.replay_limit)

    # ----- requests ----------------------------------------------------------

    async def post(self, conn_id: int, user_id: str, send: Send) -> Posted:
        """Store and publish a message; return what to ack.

        Raises ``rate_limited`` or ``unknown_user`` (nothing stored), or
        :class:`~quartchat.errors.StoreError` (nothing acked: the client retries).
        """
        # Every online user has a bucket (made in attach, kept while online).
        if not self._send_buckets[user_id].take(trio.current_time()):
            raise FrameError("rate_limited", "sending too fast; retry shortly", send.client_offset)
        sender = self.presence.get(user_id)
        assert sender is not None, "a session posts only while attached"
        recipient = None
        if send.to is not None:
            recipient = self.presence.get(send.to) or await self.store.get_user(send.to)
            if recipient is None:
                raise FrameError("unknown_user", "no user with that id", send.client_offset)
        self._stop_typing((user_id, send.to))
        draft = Draft(sender, send.client_offset, send.text, recipient, origin=str(conn_id))
        return await self.committer.post(draft)

    def _publish_committed(self, committed: list[tuple[Draft, Posted]]) -> None:
        self.metrics.messages_committed.inc(sum(not posted.duplicate for _, posted in committed))
        for draft, posted in committed:
            if posted.duplicate:
                continue
            message = posted.message
            only = None
            if message.recipient is not None:
                only = frozenset((message.sender.id, message.recipient.id))
            self.broker.publish(
                Event.of(
                    message.frame(),
                    message_id=message.id,
                    only_users=only,
                    skip_conn=int(draft.origin),
                )
            )

    async def rename(self, user_id: str, raw_nick: str) -> None:
        """Change an online user's nick, tell everyone, then persist it."""
        before = self.presence.get(user_id)
        user = self._rename_online(user_id, clean_nick(raw_nick))
        if user != before:
            await self.save_nick(user)

    async def save_nick(self, user: User) -> None:
        """Store a nick that presence already announced.

        Shielded, so a client leaving meanwhile cannot leave the store behind
        what everyone was told; bounded, so a stuck store cannot hold the
        connection open without end (then the nick is in force until the
        user leaves, and the stored one comes back on their next visit)."""
        with trio.CancelScope(shield=True), trio.move_on_after(NICK_SAVE_TIMEOUT) as bound:
            await self.store.set_nick(user.id, user.nick)
        if bound.cancelled_caught:
            log.warning("gave up storing the nick of %s after %s s", user.id, NICK_SAVE_TIMEOUT)

    def _rename_online(self, user_id: str, nick: str) -> User:
        current = self.presence.get(user_id)
        assert current is not None
        if nick == current.nick:
            return current
        if not self.presence.is_free(nick, user_id):
            raise _nick_taken(nick)
        old = self.presence.rename(user_id, nick)
        user = User(user_id, nick)
        self._publish_presence("nick", user, old_nick=old.nick)
        return user

    def _publish_presence(
        self, event: str, user: User, *, skip_user: str | None = None, **extra: str
    ) -> None:
        frame = {"type": "presence", "event": event, "user": user.ref(), **extra}
        self.broker.publish(Event.of(frame, skip_user=skip_user))

    async def history(self, user_id: str, request: History) -> dict[str, Any]:
        messages, has_more = await self.store.history(
            user_id, request.before_id, request.limit, request.with_user
        )
        return {
            "type": "history",
            "messages": [m.body() for m in messages],
            "has_more": has_more,
            "before_id": request.before_id,
            "with": request.with_user,
        }

    # ----- typing ------------------------------------------------------------

    def typing(self, conn_id: int, user_id: str, active: bool, to: str | None) -> None:
        """Relay a typing state; the server clears it after ``typing_timeout``."""
        key = (user_id, to)
        if not active:
            self._stop_typing(key)
            return
        if to is not None and self.presence.get(to) is None:
            return  # nobody online to tell; nothing leaks about who exists
        now = trio.current_time()
        entry = self._typing.get(key)
        if entry is None:
            assert self._nursery is not None, "Hub.run must be started first"
            scope = trio.CancelScope(deadline=now + self.settings.typing_timeout)
            entry = self._typing[key] = _Typing(conn_id, scope, relayed_at=now)
            self._nursery.start_soon(self._expire_typing, key, entry)
        else:
            entry.scope.deadline = now + self.settings.typing_timeout
            entry.conn_id = conn_id
            if now - entry.relayed_at < TYPING_RELAY_INTERVAL:
                return
            entry.relayed_at = now
        self._publish_typing(user_id, to, active=True)

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
        self._publish_typing(key[0], key[1], active=False)

    def _publish_typing(self, user_id: str, to: str | None, *, active: bool) -> None:
        user = self.presence.get(user_id)
        if user is None:
            return
        frame = {"type": "typing", "user": user.ref(), "active": active, "to": to}
        only = None if to is None else frozenset((to,))
        self.broker.publish(Event.of(frame, only_users=only, skip_user=user_id))


def _nick_taken(nick: str) -> FrameError:
    return FrameError("nick_taken", f"the nickname {nick!r} is in use")
