"""Typing notices: relayed at most once a second per user and conversation,
and cleared by the server when the typist goes quiet, sends or leaves."""

from __future__ import annotations

from dataclasses import dataclass

import trio

from .announcer import Announcer
from .backends.base import ConnId, EventBus
from .broker import Event
from .models import GENERAL, User
from .online_records import OnlineRecords
from .protocol import TypingNotice

#: Typing relays per user and conversation are at most this often.
TYPING_RELAY_INTERVAL = 1.0

#: A typing state: the typist, and the private conversation's other user
#: or (None there) the room typed in.
TypingKey = tuple[str, str | None, str | None]


@dataclass(slots=True)
class _Typing:
    conn_id: ConnId
    user: User
    scope: trio.CancelScope
    relayed_at: float


class TypingRelay:
    def __init__(
        self, timeout: float, online: OnlineRecords, announcer: Announcer, bus: EventBus
    ) -> None:
        #: Seconds a typing state lasts without being refreshed.
        self._timeout = timeout
        self._online = online
        self._announcer = announcer
        self._bus = bus
        self._typing: dict[TypingKey, _Typing] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hold the nursery the expiry timers run in, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def typing(
        self, conn_id: ConnId, user_id: str, active: bool, to: str | None, room: str | None = None
    ) -> None:
        """Relay a typing state (in ``room``, or to ``to``); the server
        clears it after the timeout."""
        key = (user_id, to, None if to is not None else room or GENERAL)
        if not active:
            self.stop(key)
            return
        if to is not None and await self._online.get(to) is None:
            return  # nobody online to tell; nothing leaks about who exists
        user = await self._online.get(user_id)
        if user is None:
            return
        now = trio.current_time()
        entry = self._typing.get(key)
        if entry is None:
            assert self._nursery is not None, "TypingRelay.run must be started first"
            scope = trio.CancelScope(deadline=now + self._timeout)
            entry = self._typing[key] = _Typing(conn_id, user, scope, relayed_at=now)
            self._nursery.start_soon(self._expire, key, entry)
        else:
            entry.scope.deadline = now + self._timeout
            entry.conn_id, entry.user = conn_id, user
            if now - entry.relayed_at < TYPING_RELAY_INTERVAL:
                return
            entry.relayed_at = now
        self._publish(user, key, active=True)

    def stop(self, key: TypingKey) -> None:
        """Clear a typing state, telling its audience, if there is one."""
        entry = self._typing.pop(key, None)
        if entry is None:
            return
        entry.scope.cancel()
        self._publish(entry.user, key, active=False)

    def stop_connection(self, conn_id: ConnId, user_id: str) -> None:
        """Clear the typing states a closing connection set."""
        for key, entry in list(self._typing.items()):
            if key[0] == user_id and entry.conn_id == conn_id:
                self.stop(key)

    async def _expire(self, key: TypingKey, entry: _Typing) -> None:
        with entry.scope:
            await trio.sleep_forever()
        if self._typing.get(key) is entry:
            self.stop(key)

    def _publish(self, user: User, key: TypingKey, *, active: bool) -> None:
        """Tell the notice's audience: ``to`` alone, or the room's members
        (the broker delivers a room's events to its members only)."""
        _, to, room = key
        only = None if to is None else frozenset((to,))
        # General's notices stay version 1's, with no room named.
        notice = TypingNotice(user, active, to, None if room == GENERAL else room)
        self._announcer.before_frames_of(user.id)  # their join before their typing
        self._bus.publish(Event.of(notice, only_users=only, skip_user=user.id, room=room))
