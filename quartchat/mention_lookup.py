"""Who a message's ``@nick`` names, resolved when it is committed.

:mod:`quartchat.mentions` holds the rules (pure); this finds the members to
apply them to. A room's members come from the room directory, their nicks
from the presence board (as shown now) or the identities; ``general``'s
members are everyone, so there the candidates are the users online. Member
lists are cached for :data:`MEMBERS_TTL` per room (at most
:data:`ROOMS_CACHED` rooms), and dropped when the log's tail relays a change
of that room, so a text without ``@`` costs nothing and a busy room's
mentions cost no store call each.
"""

from __future__ import annotations

from collections.abc import Mapping

import trio

from .backends.base import Identities, PresenceBoard, RoomDirectory
from .mentions import MentionIndex
from .models import GENERAL, RoomMember, User

#: Seconds a room's member list is kept for resolving mentions.
MEMBERS_TTL = 5.0
#: Rooms whose member lists are kept at once.
ROOMS_CACHED = 256


class MentionLookup:
    def __init__(
        self, directory: RoomDirectory, identities: Identities, presence: PresenceBoard
    ) -> None:
        self._directory = directory
        self._identities = identities
        self._presence = presence
        self._cache: dict[str, tuple[float, MentionIndex]] = {}

    async def find(self, room: str | None, text: str) -> tuple[str, ...]:
        """Ids of the members of ``room`` that ``text`` mentions (none for a
        private message, whose ``room`` is None)."""
        if room is None or "@" not in text:
            return ()
        return (await self._index(room)).find(text)

    def forget(self, room: str) -> None:
        """The room's members changed: read them again next time."""
        self._cache.pop(room, None)

    async def _index(self, room: str) -> MentionIndex:
        now = trio.current_time()
        cached = self._cache.get(room)
        if cached is not None and cached[0] > now:
            return cached[1]
        index = MentionIndex(await self._members(room))
        if len(self._cache) >= ROOMS_CACHED:
            self._cache.pop(next(iter(self._cache)))
        self._cache[room] = (now + MEMBERS_TTL, index)
        return index

    async def _members(self, room: str) -> list[User]:
        online = {user.id: user for user in await self._presence.online()}
        if room == GENERAL:
            return list(online.values())
        listed = await member_users(self._directory, self._identities, room, online)
        return [user for user, _ in listed]


async def member_users(
    directory: RoomDirectory, identities: Identities, room: str, online: Mapping[str, User]
) -> list[tuple[User, RoomMember]]:
    """The room's members as users, in the directory's order: as online now
    (``online``, by id) or as stored; members whose identity is gone are left out."""
    found: list[tuple[User, RoomMember]] = []
    for member in await directory.members(room):
        user = online.get(member.user_id) or await identities.get_user(member.user_id)
        if user is not None:
            found.append((user, member))
    return found
