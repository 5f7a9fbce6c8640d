"""The rooms' own frames: who may do what, and the change that follows.

Each frame is checked against the room directory (the state in force), then
the directory records the change, then the change is noted in the log, where
every worker's tail relay applies it to its connections in order with the
messages (:mod:`quartchat.tail_relay`). The answer to a change is the
``member`` notice the relay hands the asking connection (with its ``ref``);
a request that changes nothing (a join of a room one is already in) is
answered here, to that connection alone.

A private room one is not in answers as a room that does not exist
(``unknown_room``), so its id tells a stranger nothing.
"""

from __future__ import annotations

import logging
import math

from .backends.base import (
    EventBus,
    Identities,
    MemberChange,
    MemberEventKind,
    MessageLog,
    PresenceBoard,
    RateLimits,
    RoomDirectory,
)
from .broker import Event
from .config import Settings
from .errors import FORBIDDEN, NOT_MEMBER, UNKNOWN_ROOM, FrameError, RoomRefused
from .mention_lookup import member_users
from .models import GENERAL, Role, Room, RoomKind, User
from .protocol import ServerFrame
from .protocol_rooms import (
    MarkRead,
    MemberNotice,
    MembersAnswer,
    MembersRequest,
    ReadNotice,
    RoomCreate,
    RoomFrame,
    RoomInvite,
    RoomJoin,
    RoomLeave,
    RoomMemberEntry,
    RoomsAnswer,
    RoomsRequest,
)

log = logging.getLogger(__name__)

#: Who may invite into a private room.
INVITERS = frozenset({Role.OWNER, Role.MODERATOR})


class RoomDesk:
    def __init__(
        self,
        directory: RoomDirectory,
        log: MessageLog,
        identities: Identities,
        presence: PresenceBoard,
        bus: EventBus,
        limits: RateLimits,
        settings: Settings,
    ) -> None:
        self._directory = self.directory = directory
        self._log = log
        self._identities = identities
        self._presence = presence
        self._bus = bus
        self._limits = limits
        self._settings = settings

    async def handle(self, conn_id: str, user: User, frame: RoomFrame) -> ServerFrame | None:
        """Serve ``frame`` of ``user``'s connection ``conn_id``: the answer to
        send that connection now, or None when the log's tail brings it.
        Refusals are :class:`FrameError` (the connection's reader names the
        frame's ``ref`` on them, as on every refusal of a 1.1 frame)."""
        match frame:
            case RoomCreate():
                await self._spend(user.id)
                room = await self._directory.create(user.id, frame.name, frame.kind, frame.topic)
                await self._note("join", room, user, user, conn_id, frame.ref)
                return None
            case RoomJoin():
                room, role = await self.visible(frame.room, user.id)
                if room.kind is not RoomKind.PUBLIC and role is None:
                    raise RoomRefused(UNKNOWN_ROOM, "no such room")
                if role is not None or not await self._directory.add_member(room.id, user.id):
                    return MemberNotice("join", room, user, user, frame.ref)
                await self._note("join", room, user, user, conn_id, frame.ref)
                return None
            case RoomLeave():
                room, role = await self.visible(frame.room, user.id)
                if room.id == GENERAL:
                    raise RoomRefused(FORBIDDEN, "nobody leaves general")
                if role is None or not await self._directory.remove_member(room.id, user.id):
                    raise RoomRefused(NOT_MEMBER, "you are not in that room")
                await self._note("leave", room, user, user, conn_id, frame.ref)
                return None
            case RoomInvite():
                return await self._invite(conn_id, user, frame)
            case RoomsRequest():
                return RoomsAnswer(await self._directory.listing(user.id), frame.ref)
            case MembersRequest():
                return await self._members(user, frame)
            case MarkRead():
                return await self._mark_read(conn_id, user, frame)
        raise FrameError("bad_request", "not a rooms frame")

    async def visible(self, room_id: str, user_id: str) -> tuple[Room, Role | None]:
        """The room and the user's role there (None: not a member); a room
        that does not exist, or a private one they are not in, is ``unknown_room``."""
        room = await self._directory.get(room_id)
        role = None if room is None else await self._directory.role_of(room_id, user_id)
        if room is None or (role is None and room.kind is RoomKind.PRIVATE):
            raise RoomRefused(UNKNOWN_ROOM, "no such room")
        return room, role

    async def member_of(self, room_id: str, user_id: str) -> Room:
        """The room, if the user is in it: else ``not_member`` (a public
        room) or ``unknown_room``."""
        room, role = await self.visible(room_id, user_id)
        if role is None:
            raise RoomRefused(NOT_MEMBER, "you are not in that room")
        return room

    async def _invite(self, conn_id: str, user: User, frame: RoomInvite) -> ServerFrame | None:
        room, role = await self.visible(frame.room, user.id)
        if role is None:
            raise RoomRefused(NOT_MEMBER, "you are not in that room")
        if room.kind is RoomKind.PRIVATE and role not in INVITERS:
            raise RoomRefused(FORBIDDEN, "only the owner and moderators invite into a private room")
        await self._spend(user.id)
        guest = await self._identities.get_user(frame.user)
        if guest is None:
            raise FrameError("unknown_user", "no user with that id")
        guest = await self._presence.get(guest.id) or guest
        if room.id == GENERAL or not await self._directory.add_member(room.id, guest.id):
            return MemberNotice("invite", room, guest, user, frame.ref)
        await self._note("invite", room, guest, user, conn_id, frame.ref)
        return None

    async def _members(self, user: User, frame: MembersRequest) -> ServerFrame:
        room = await self.member_of(frame.room, user.id)
        online = {u.id: u for u in await self._presence.online()}
        listed = await member_users(self._directory, self._identities, room.id, online)
        entries = [RoomMemberEntry(u, m.role, u.id in online) for u, m in listed]
        seen = {u.id for u, _ in listed}
        if room.id == GENERAL:  # everyone is in it: those online are listed
            entries += [
                RoomMemberEntry(u, Role.MEMBER, True) for u in online.values() if u.id not in seen
            ]
        return MembersAnswer(room.id, entries, frame.ref)

    async def _mark_read(self, conn_id: str, user: User, frame: MarkRead) -> ServerFrame:
        wanted = min(frame.id, await self._log.last_id())
        if frame.room is not None:
            if frame.room != GENERAL:
                await self.member_of(frame.room, user.id)
            marker = await self._directory.mark_read(user.id, frame.room, wanted)
        else:
            assert frame.with_user is not None
            marker = await self._directory.mark_direct_read(user.id, frame.with_user, wanted)
        notice = ReadNotice(marker, frame.room, frame.with_user)
        # The user's other connections, on every worker, move their badges too.
        self._bus.publish(Event.of(notice, only_users=frozenset((user.id,)), skip_conn=conn_id))
        return ReadNotice(marker, frame.room, frame.with_user, frame.ref)

    async def _spend(self, user_id: str) -> None:
        """Pay for a room made or an invitation sent (each stores a row for
        good) from the user's budget; ``rate_limited`` when it is spent."""
        settings = self._settings
        wait = await self._limits.spend(
            f"rooms:{user_id}", settings.room_rate, settings.room_burst, 1
        )
        if wait > 0:
            retry_after = math.ceil(wait * 100) / 100
            raise FrameError(
                "rate_limited",
                f"making rooms and invitations too fast; retry in {retry_after:.0f} s",
                retry_after=retry_after,
            )

    async def _note(
        self,
        event: MemberEventKind,
        room: Room,
        user: User,
        by: User,
        conn_id: str,
        ref: str | None,
    ) -> None:
        """Note a change the directory now holds. If the log cannot take it
        (its store away), the request fails with that error and the open
        connections learn the change when they next start: the directory is
        what a new connection reads."""
        await self._log.note_change(MemberChange(event, room, user, by, origin=conn_id, ref=ref))
