"""Fan-out of server events to this worker's subscribed connections.

An :class:`Event` is encoded once, when published, and carries its audience;
each subscriber decides in O(1) whether it is for it. ``publish`` is
synchronous and never waits for a client: a subscriber's ``deliver`` must only
put the event on its own bounded queue (see :mod:`quartchat.session`). That is
what lets one slow client fall behind, and be cut, without slowing the rest,
and what lets cleanup code publish a ``leave`` from a ``finally`` block.

Rooms: an event of a room other than ``general`` goes only to the
subscriptions in that room, found through an index by room, so a room's
message costs its members' connections, not every connection of the worker.
Which rooms a subscription is in is the broker's record, kept in the log's
order by :mod:`quartchat.tail_relay` (:meth:`LocalBroker.enter` and
:meth:`LocalBroker.exit`): membership is checked here, where frames are
delivered. A subscription's rooms are unknown until :meth:`RoomSubscription.adopt`
gives them (read from the room directory after subscribing); changes relayed
meanwhile are kept and applied on top, so none is lost between the two.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from .models import GENERAL
from .protocol import ServerFrame, encode


@dataclass(frozen=True, slots=True)
class Event:
    """One server frame for many connections, with who may receive it."""

    #: The frame, already encoded as one JSON line.
    line: str
    #: For ``message`` frames: the id, so each connection keeps a cursor.
    message_id: int | None = None
    #: Only connections of these users (``None``: everyone).
    only_users: frozenset[str] | None = None
    #: Never connections of this user (presence and typing of oneself).
    skip_user: str | None = None
    #: Never this one connection (a message's own sender: no echo).
    skip_conn: str | None = None
    #: Users whose online record this event changes (a presence notice's),
    #: so a worker keeping such records knows which to drop without
    #: decoding the line.
    about: tuple[str, ...] = ()
    #: Only connections in this room (None, or ``general``: everyone's).
    room: str | None = None
    #: A sanction imposed or lifted (as JSON), for every worker's view of
    #: them (:mod:`quartchat.sanctions`, a watcher); sent with an empty
    #: ``only_users``, so no connection gets it.
    sanction: str | None = None

    @classmethod
    def of(cls, frame: ServerFrame, **audience: Any) -> Event:
        return cls(line=encode(frame), **audience)

    def is_for(self, conn_id: str, user_id: str) -> bool:
        if self.only_users is not None and user_id not in self.only_users:
            return False
        return user_id != self.skip_user and conn_id != self.skip_conn

    def part_for(self, conn_id: str) -> str | None:
        """For a connection this event is not for: lines it still gets, if any."""
        return None


@dataclass(frozen=True, slots=True)
class MemberEvent(Event):
    """A ``member`` notice for a room: the connection that asked for the
    change (``skip_conn``) gets ``answer`` in its place, the notice with the
    request's ``ref``; after a join or an invite, ``backlog`` names the user
    whose connections then get the room's newest messages, up to the
    change's place: ``(user id, room id, up to message id)``."""

    answer: str = ""
    backlog: tuple[str, str, int] | None = None

    def part_for(self, conn_id: str) -> str | None:
        return self.answer if conn_id == self.skip_conn else None


@dataclass(frozen=True, slots=True)
class CloseOrder(Event):
    """Not a frame: every connection of ``only_users`` on this worker ends
    with close code ``code`` (a ban's 4009). ``line`` is unused ("")."""

    code: int = 0
    reason: str = ""


Deliver = Callable[[Event], None]


class Subscription(Protocol):
    def close(self) -> None:
        """Stop delivering; safe to call twice and from ``finally``."""


class Broker(Protocol):
    def publish(self, event: Event) -> None:
        """Hand ``event`` to every subscriber it may reach, without waiting for any."""

    def subscribe(self, deliver: Deliver) -> Subscription:
        """Call ``deliver`` for every event published from now on (a watcher:
        every room's events)."""


def is_shared(room: str | None) -> bool:
    """Whether an event of ``room`` is for every connection (no room, or ``general``)."""
    return room is None or room == GENERAL


class LocalBroker:
    """In-process fan-out: subscribers called in publish order; those of a
    user, with the rooms they are in (:meth:`subscribe_user`), indexed by
    room and by user."""

    def __init__(self) -> None:
        #: Every subscriber: events of no room (or general) go to all of them.
        self._everyone: dict[int, Deliver] = {}
        #: Watchers (no user): they also see every room's events.
        self._watchers: dict[int, Deliver] = {}
        #: Room id to the subscribers in it (never ``general``).
        self._rooms: dict[str, dict[int, Deliver]] = {}
        #: User id to their subscriptions on this worker.
        self._users: dict[str, set[RoomSubscription]] = {}
        self._ids = itertools.count()

    def publish(self, event: Event) -> None:
        # No copy of the subscribers per event: a ``deliver`` only queues (an
        # overflowing one cancels its session, which unsubscribes later, from
        # its own task), so nothing changes the dicts while we walk them.
        if is_shared(event.room):
            if event.only_users is None:
                for deliver in self._everyone.values():
                    deliver(event)
                return
            # A private message or notice: only its users' connections.
            for user_id in event.only_users:
                for subscription in self._users.get(user_id, ()):
                    subscription.deliver(event)
            for deliver in self._watchers.values():
                deliver(event)
            return
        assert event.room is not None
        for deliver in self._rooms.get(event.room, {}).values():
            deliver(event)
        for deliver in self._watchers.values():
            deliver(event)

    def subscribe(self, deliver: Deliver) -> Subscription:
        """A watcher: every event, of every room (a worker's own records)."""
        key = next(self._ids)
        self._everyone[key] = deliver
        self._watchers[key] = deliver
        return _Watcher(self, key)

    def subscribe_user(self, deliver: Deliver, user_id: str) -> RoomSubscription:
        """A connection of ``user_id``: events of no room, of ``general``,
        and of the rooms it is in once :meth:`RoomSubscription.adopt` says which."""
        key = next(self._ids)
        self._everyone[key] = deliver
        subscription = RoomSubscription(self, key, deliver, user_id)
        self._users.setdefault(user_id, set()).add(subscription)
        return subscription

    def enter(self, user_id: str, room: str) -> None:
        """The user is in ``room`` from now on (their connections here get its events)."""
        for subscription in self._users.get(user_id, ()):
            subscription.change(room, joined=True)

    def exit(self, user_id: str, room: str) -> None:
        """The user is no longer in ``room``: their connections here stop getting its events."""
        for subscription in self._users.get(user_id, ()):
            subscription.change(room, joined=False)

    def subscribers_in(self, room: str) -> int:
        """How many of this worker's subscriptions are in ``room`` (for tests and metrics)."""
        return len(self._rooms.get(room, {}))

    # ----- for the subscriptions -----------------------------------------

    def _place(self, key: int, deliver: Deliver, room: str, joined: bool) -> None:
        if is_shared(room):
            return
        if joined:
            self._rooms.setdefault(room, {})[key] = deliver
            return
        members = self._rooms.get(room)
        if members is not None:
            members.pop(key, None)
            if not members:
                del self._rooms[room]

    def _drop(self, subscription: RoomSubscription) -> None:
        self._everyone.pop(subscription.key, None)
        for room in subscription.rooms:
            self._place(subscription.key, subscription.deliver, room, joined=False)
        subscriptions = self._users.get(subscription.user_id)
        if subscriptions is not None:
            subscriptions.discard(subscription)
            if not subscriptions:
                del self._users[subscription.user_id]


class RoomSubscription:
    """One connection's place in the broker: its user and the rooms it gets
    events of. Until :meth:`adopt`, changes are kept, not applied."""

    __slots__ = ("_broker", "_closed", "_pending", "deliver", "key", "rooms", "user_id")

    def __init__(self, broker: LocalBroker, key: int, deliver: Deliver, user_id: str) -> None:
        self._broker = broker
        self.key = key
        self.deliver = deliver
        self.user_id = user_id
        #: The rooms (other than general) whose events it gets.
        self.rooms: set[str] = set()
        #: Changes relayed before the rooms were known, in order (None once adopted).
        self._pending: list[tuple[str, bool]] | None = []
        self._closed = False

    def adopt(self, rooms: Collection[str]) -> set[str]:
        """Start getting the events of ``rooms`` (as the directory said after
        this subscription began), with every change relayed since applied
        in order on top; returns the rooms it is in now (general included
        when given)."""
        pending, self._pending = self._pending or [], None
        current = set(rooms)
        for room, joined in pending:
            if joined:
                current.add(room)
            else:
                current.discard(room)
        if not self._closed:
            for room in current:
                self.change(room, joined=True)
        return current

    def change(self, room: str, *, joined: bool) -> None:
        """Enter or leave ``room`` (kept for later before :meth:`adopt`)."""
        if self._closed:
            return
        if self._pending is not None:
            self._pending.append((room, joined))
            return
        if joined == (room in self.rooms):
            return
        if is_shared(room):
            return
        if joined:
            self.rooms.add(room)
        else:
            self.rooms.discard(room)
        self._broker._place(self.key, self.deliver, room, joined)

    def close(self) -> None:
        if self._closed:
            return
        self._broker._drop(self)
        self._closed = True
        self.rooms.clear()


class _Watcher:
    __slots__ = ("_broker", "_key")

    def __init__(self, broker: LocalBroker, key: int) -> None:
        self._broker = broker
        self._key = key

    def close(self) -> None:
        self._broker._everyone.pop(self._key, None)
        self._broker._watchers.pop(self._key, None)
