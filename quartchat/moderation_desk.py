"""Moderation's frames: who may do what, the change, its notice, its audit.

The contract's table (docs/protocol.md, Moderation): in a room an ``owner``,
a ``moderator`` or a ``member``; chat-wide, an ``admin``, who may do what an
owner may in every room. Every rule is checked here, on the worker that got
the frame, against the state shared by every worker (the room directory's
roles, the moderation board's sanctions and admins); no page's word is taken
for anything. Each action is recorded in the audit before it is answered.

Where the change reaches others: a delete is an entry of the log (every
worker's tail hands it out); a kick is a membership change noted in the log;
a role or a mute is a notice on the event bus; a ban closes the user's
connections on every worker (:mod:`quartchat.sanctions`).
"""

from __future__ import annotations

import json

from .backends.base import EventBus, Identities, MemberChange, MessageLog, RoomDirectory
from .backends.moderation import AuditAction, AuditEntry, ModerationBoard, Sanction
from .broker import Event
from .errors import FORBIDDEN, NOT_MEMBER, UNKNOWN_ROOM, FrameError, RoomRefused
from .models import GENERAL, Message, Role, Room, User
from .protocol import ServerFrame
from .protocol_moderation import (
    Ban,
    BanNotice,
    Delete,
    Kick,
    ModerationFrame,
    Mute,
    MuteNotice,
    RoleNotice,
    SetRole,
)
from .room_desk import RoomDesk
from .sanctions import SanctionsView, now_ms

#: Who moderates a room besides the chat's admins.
MODERATORS = frozenset({Role.OWNER, Role.MODERATOR})
#: Whom each role may kick or mute in its room (an admin: anyone but an owner).
OUTRANKS = {
    Role.OWNER: frozenset({Role.MODERATOR, Role.MEMBER}),
    Role.MODERATOR: frozenset({Role.MEMBER}),
    Role.MEMBER: frozenset[Role](),
}


class ModerationDesk:
    def __init__(
        self,
        desk: RoomDesk,
        directory: RoomDirectory,
        log: MessageLog,
        identities: Identities,
        board: ModerationBoard,
        view: SanctionsView,
        bus: EventBus,
    ) -> None:
        self._desk = desk
        self._directory = directory
        self._log = log
        self._identities = identities
        self._board = board
        self._view = view
        self._bus = bus

    # ----- frames --------------------------------------------------------------

    async def handle(self, conn_id: str, user: User, frame: ModerationFrame) -> ServerFrame | None:
        """Serve ``frame`` of ``user``'s connection ``conn_id``: the answer to
        send that connection now, or None when the log's tail brings it.
        Refusals are :class:`FrameError` (the connection's reader names the
        frame's ``ref`` on them, as on every refusal of a 1.1 frame)."""
        admin = self._view.is_admin(conn_id, user.id)
        match frame:
            case Delete():
                await self._delete(conn_id, user, admin, frame.target)
                return None
            case SetRole():
                return await self._set_role(conn_id, user, admin, frame)
            case Kick():
                await self._kick(conn_id, user, admin, frame)
                return None
            case Mute():
                return await self._mute(user, admin, frame)
            case Ban():
                return await self._ban(user, admin, frame)
        raise FrameError("bad_request", "not a moderation frame")

    async def _delete(self, conn_id: str, user: User, admin: bool, target: int) -> None:
        message = await self._log.get(target)
        if message is None or message.deleted or not await self._may_see(user.id, message):
            raise FrameError("unknown_message", "no such message")
        if message.sender.id != user.id:
            if message.room is None:
                raise RoomRefused(FORBIDDEN, "only its author deletes a private message")
            if not admin and await self._role(message.room, user.id) not in MODERATORS:
                raise RoomRefused(FORBIDDEN, "only its author or a moderator deletes a message")
        if message.sender.id != user.id:  # recorded before the tail brings the answer
            await self._audit(user, "delete", message.sender.id, message.room, message=target)
        if await self._log.delete(target, user) is None:  # another delete came first
            raise FrameError("unknown_message", "no such message")

    async def _may_see(self, user_id: str, message: Message) -> bool:
        if message.room is None:
            assert message.recipient is not None
            return user_id in (message.sender.id, message.recipient.id)
        return await self._role(message.room, user_id) is not None

    async def _set_role(self, conn_id: str, user: User, admin: bool, frame: SetRole) -> ServerFrame:
        room, role = await self._room(frame.room, user.id, admin)
        if not admin and role is not Role.OWNER:
            raise RoomRefused(FORBIDDEN, "only the room's owner or an admin sets roles")
        target = await self._member(room, frame.user)
        if await self._directory.role_of(room.id, target.id) is Role.OWNER:
            raise RoomRefused(FORBIDDEN, "the owner's role is not changed")
        await self._directory.set_role(room.id, target.id, frame.role)
        notice = RoleNotice(room.id, target, frame.role, user)
        await self._audit(user, "role", target.id, room.id, role=frame.role.value)
        self._bus.publish(Event.of(notice, room=room.id, skip_conn=conn_id))
        return RoleNotice(room.id, target, frame.role, user, frame.ref)

    async def _kick(self, conn_id: str, user: User, admin: bool, frame: Kick) -> None:
        room, role = await self._room(frame.room, user.id, admin)
        if room.id == GENERAL:
            raise RoomRefused(FORBIDDEN, "nobody is kicked from general; a ban keeps one out")
        target = await self._member(room, frame.user)
        await self._outranks(room, user, admin, role, target)
        if not await self._directory.remove_member(room.id, target.id):
            raise RoomRefused(NOT_MEMBER, "they are not in that room")
        await self._audit(user, "kick", target.id, room.id)
        change = MemberChange("kick", room, target, user, origin=conn_id, ref=frame.ref)
        await self._log.note_change(change)

    async def _mute(self, user: User, admin: bool, frame: Mute) -> ServerFrame:
        if frame.room is None:
            if not admin:
                raise RoomRefused(FORBIDDEN, "only an admin mutes across the chat")
            target = await self._user(frame.user)
        else:  # the room first: a private one a stranger names is unknown_room
            room, role = await self._room(frame.room, user.id, admin)
            target = await self._user(frame.user)
            target_role = await self._directory.role_of(room.id, target.id)
            if target_role is not None:
                await self._outranks(room, user, admin, role, target, target_role)
            elif not admin and role not in MODERATORS:
                raise RoomRefused(FORBIDDEN, "only the room's moderators mute there")
        if target.id == user.id:
            raise RoomRefused(FORBIDDEN, "not on yourself")
        until = now_ms() + frame.seconds * 1000
        sanction = Sanction("mute", target.id, frame.room, until, user.id)
        await self._board.impose(sanction)
        self._view.announce(sanction)
        action: AuditAction = "mute" if frame.seconds else "unmute"
        await self._audit(user, action, target.id, frame.room, seconds=frame.seconds)
        shown = until if frame.seconds else 0
        notice = MuteNotice(frame.room, target, shown, user)
        self._bus.publish(Event.of(notice, only_users=frozenset((target.id,))))
        return MuteNotice(frame.room, target, shown, user, frame.ref)

    async def _ban(self, user: User, admin: bool, frame: Ban) -> ServerFrame:
        if not admin:
            raise RoomRefused(FORBIDDEN, "only an admin bans")
        target = await self._user(frame.user)
        if target.id == user.id:
            raise RoomRefused(FORBIDDEN, "an admin does not ban themselves")
        now = now_ms()
        until = None if frame.seconds is None else now + frame.seconds * 1000
        sanction = Sanction("ban", target.id, None, until, user.id)
        await self._board.impose(sanction)
        self._view.announce(sanction)
        action: AuditAction = "unban" if frame.seconds == 0 else "ban"
        await self._audit(user, action, target.id, None, seconds=frame.seconds)
        shown = 0 if frame.seconds == 0 else until
        return BanNotice(target, shown, user, frame.ref)

    # ----- rules ---------------------------------------------------------------

    async def _outranks(
        self,
        room: Room,
        user: User,
        admin: bool,
        role: Role | None,
        target: User,
        target_role: Role | None = None,
    ) -> None:
        """Refuse unless ``user`` stands above ``target`` in ``room`` (an
        admin stands above all but the owner); nobody acts on themselves."""
        if target_role is None:
            target_role = await self._directory.role_of(room.id, target.id)
        if target.id == user.id:
            raise RoomRefused(FORBIDDEN, "not on yourself")
        if target_role is Role.OWNER:
            raise RoomRefused(FORBIDDEN, "not on the room's owner")
        if admin or (role is not None and target_role in OUTRANKS[role]):
            return
        raise RoomRefused(FORBIDDEN, "only someone above them in the room may")

    async def _room(self, room_id: str, user_id: str, admin: bool) -> tuple[Room, Role | None]:
        """The room and the user's role there; an admin sees every room, and
        anyone else a private room they are not in answers ``unknown_room``."""
        if not admin:
            return await self._desk.visible(room_id, user_id)
        room = await self._directory.get(room_id)
        if room is None:
            raise RoomRefused(UNKNOWN_ROOM, "no such room")
        return room, await self._directory.role_of(room_id, user_id)

    async def _role(self, room_id: str, user_id: str) -> Role | None:
        return await self._directory.role_of(room_id, user_id)

    async def _user(self, user_id: str) -> User:
        found = await self._identities.get_user(user_id)
        if found is None:
            raise FrameError("unknown_user", "no user with that id")
        return found

    async def _member(self, room: Room, user_id: str) -> User:
        target = await self._user(user_id)
        if room.id != GENERAL and await self._directory.role_of(room.id, target.id) is None:
            raise RoomRefused(NOT_MEMBER, "they are not in that room")
        return target

    async def _audit(
        self,
        actor: User,
        action: AuditAction,
        user: str | None,
        room: str | None,
        **detail: object,
    ) -> None:
        text = json.dumps(detail, separators=(",", ":")) if detail else ""
        await self._board.record(AuditEntry(actor.id, action, user, room, text, now_ms()))
