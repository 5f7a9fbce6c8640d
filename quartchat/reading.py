"""Reading the log for a user: the replay a new connection is owed, history
pages (paid for from the user's history budget, of rooms the user is in),
and a room's backlog for a member who just joined."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

from .backends.base import GENERAL_ONLY, Identities, MessageLog, RateLimits
from .config import Settings
from .errors import FrameError
from .models import Membership, Message
from .protocol import Hello, History, HistoryPage
from .protocol_rooms import DirectStanding, RoomStanding


class Reading:
    def __init__(
        self, settings: Settings, log: MessageLog, limits: RateLimits, identities: Identities
    ) -> None:
        self._settings = settings
        self._log = log
        self._limits = limits
        self._identities = identities

    async def standings(
        self, user_id: str, memberships: Sequence[Membership], direct_reads: Mapping[str, int]
    ) -> tuple[list[RoomStanding], list[DirectStanding]]:
        """What ``welcome`` tells of the user's rooms (each with the unread
        messages from others after their read marker, and the mentions of
        them among those) and of their private conversations with unread
        messages (``direct_reads``: the markers, by the other's id)."""
        markers = {m.room.id: m.read_id for m in memberships}
        unread = await self._log.unread(user_id, markers, direct_reads)
        rooms = [
            RoomStanding(m, unread.rooms[m.room.id].unread, unread.rooms[m.room.id].mentions)
            if m.room.id in unread.rooms
            else RoomStanding(m, 0, 0)
            for m in memberships
        ]
        direct: list[DirectStanding] = []
        for other, count in unread.direct.items():
            if count and (user := await self._identities.get_user(other)) is not None:
                direct.append(DirectStanding(user, direct_reads[other], count))
        return rooms, direct

    async def replay(
        self, user_id: str, hello: Hello, rooms: Collection[str] = GENERAL_ONLY
    ) -> tuple[list[Message], int, bool]:
        """What a new connection is owed: newest backlog, or all after its
        cursor, of the ``rooms`` the user is in and their private messages."""
        cursor = hello.last_id
        if hello.epoch is not None and hello.epoch != self._log.epoch:
            cursor = None
        if cursor is None:
            replay = await self._log.read_after(user_id, None, self._settings.backlog, rooms)
            return replay.messages, replay.last_id, False
        replay = await self._log.read_after(user_id, cursor, self._settings.replay_limit, rooms)
        return replay.messages, replay.last_id, replay.complete

    async def backlog(self, user_id: str, room: str, up_to: int) -> HistoryPage:
        """The newest messages of ``room`` up to ``up_to`` (a join's place in
        the log: later ones come live), for a user who joined it. Not paid
        for: the server sends it, once per join."""
        before = up_to + 1
        messages, has_more = await self._log.history(
            user_id, before, self._settings.backlog, None, room
        )
        return HistoryPage(messages, has_more, None, None, room=room, name_general=True)

    async def history(self, user_id: str, request: History) -> HistoryPage:
        """A page of history, paid for first from the user's history budget.

        A page costs the messages it asks for (its ``limit``, already capped
        at ``history_max``), whatever it returns, and is charged before it is
        read: a refused request costs the store nothing, and an empty page
        past the start of the log is no cheaper to ask for than a full one.
        The budget is the user's, over all their sockets and workers (the
        rate limits' bucket ``history:<user id>``). Raises ``rate_limited``
        with ``retry_after`` when the budget cannot pay for the page yet."""
        settings = self._settings
        cost = max(1, min(request.limit, settings.history_burst))
        wait = await self._limits.spend(
            f"history:{user_id}", settings.history_rate, settings.history_burst, cost
        )
        if wait > 0:
            retry_after = math.ceil(wait * 100) / 100  # never early
            raise FrameError(
                "rate_limited",
                f"reading history too fast; retry in {retry_after:.2f} s",
                retry_after=retry_after,
            )
        messages, has_more = await self._log.history(
            user_id, request.before_id, request.limit, request.with_user, request.room
        )
        return HistoryPage(
            messages,
            has_more,
            request.before_id,
            request.with_user,
            room=request.room,
            name_general=True,
        )
