"""Presence of the embedded default: :class:`quartchat.presence.Presence` in
this process, behind the :class:`~quartchat.backends.base.PresenceBoard` seam."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from ..models import User
from ..presence import Presence
from ..protocol import EncodedUsers
from .base import ConnId

#: Stands in for the connections of a user whose last one has gone but who
#: has not departed yet (the hub's grace period): they stay online and keep
#: their nick. Real connection ids have a dot (``"<worker>.<n>"``), so this
#: one never collides with them.
AWAITING_DEPARTURE = "awaiting-departure"


class LocalPresence:
    """One process's presence board: every connection is here, so nothing
    can expire behind its back."""

    def __init__(self) -> None:
        self._presence = Presence()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    async def connect(self, conn: ConnId, user: User) -> tuple[User, bool]:
        online = self._presence.get(user.id)
        if online is None:
            online = User(user.id, self._presence.free_variant(user.nick, user.id))
        first = self._presence.add(conn, online)
        self._presence.remove(AWAITING_DEPARTURE, user.id)
        return online, first

    async def disconnect(self, conn: ConnId, user_id: str) -> bool:
        last = self._presence.remove(conn, user_id)
        if last is None:
            return False
        self._presence.add(AWAITING_DEPARTURE, last)
        return True

    async def depart_if_idle(self, user_id: str) -> User | None:
        return self._presence.remove(AWAITING_DEPARTURE, user_id)

    async def rename(self, user_id: str, nick: str) -> User | None:
        if not self._presence.is_free(nick, user_id):
            return None
        return self._presence.rename(user_id, nick)

    async def get(self, user_id: str) -> User | None:
        return self._presence.get(user_id)

    async def online(self) -> list[User]:
        return self._presence.online()

    async def listed(self) -> EncodedUsers:
        return self._presence.listed()

    async def is_free(self, nick: str, user_id: str | None) -> bool:
        return self._presence.is_free(nick, user_id)

    def connections_elsewhere(self) -> int:
        """None: this process is the only worker."""
        return 0

    async def returned(self) -> AsyncIterator[list[User]]:
        """Never yields: one process is never taken for dead by another."""
        await trio.sleep_forever()
        yield []

    async def departed(self) -> AsyncIterator[list[User]]:
        """Never yields: in one process no worker dies but this one."""
        await trio.sleep_forever()
        yield []
