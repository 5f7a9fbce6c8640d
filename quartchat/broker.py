"""Fan-out of server events to every subscribed connection.

An :class:`Event` is encoded once, when published, and carries its audience;
each subscriber decides in O(1) whether it is for it. ``publish`` is
synchronous and never waits for a client: a subscriber's ``deliver`` must only
put the event on its own bounded queue (see :mod:`quartchat.session`). That is
what lets one slow client fall behind, and be cut, without slowing the rest,
and what lets cleanup code publish a ``leave`` from a ``finally`` block.

:class:`LocalBroker` fans out inside one process. A broker for many processes
(Redis) implements the same :class:`Broker` interface.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

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


Deliver = Callable[[Event], None]


class Subscription(Protocol):
    def close(self) -> None:
        """Stop delivering; safe to call twice and from ``finally``."""


class Broker(Protocol):
    def publish(self, event: Event) -> None:
        """Hand ``event`` to every subscriber without waiting for any of them."""

    def subscribe(self, deliver: Deliver) -> Subscription:
        """Call ``deliver`` for every event published from now on."""


class LocalBroker:
    """In-process fan-out: a dict of subscribers, called in publish order."""

    def __init__(self) -> None:
        self._subscribers: dict[int, Deliver] = {}
        self._ids = itertools.count()

    def publish(self, event: Event) -> None:
        # No copy of the subscribers per event: a ``deliver`` only queues (an
        # overflowing one cancels its session, which unsubscribes later, from
        # its own task), so nothing changes the dict while we walk it.
        for deliver in self._subscribers.values():
            deliver(event)

    def subscribe(self, deliver: Deliver) -> Subscription:
        key = next(self._ids)
        self._subscribers[key] = deliver
        return _LocalSubscription(self._subscribers, key)


class _LocalSubscription:
    __slots__ = ("_key", "_subscribers")

    def __init__(self, subscribers: dict[int, Deliver], key: int) -> None:
        self._subscribers = subscribers
        self._key = key

    def close(self) -> None:
        self._subscribers.pop(self._key, None)
