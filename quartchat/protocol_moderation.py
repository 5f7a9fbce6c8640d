"""Moderation (protocol 1.1) without I/O: the moderation frames a client
sends, as frozen records parsed and checked, and the notices that answer them.

docs/protocol.md, section "Moderation and identity", says what each does and
who may; deciding who may is the server's (the records only say what was
asked). An ``edit`` is no frame of its own here: it is a ``send`` with a
``target`` (:class:`quartchat.protocol.Send`), acked and refused as a send
is. The ``edited`` and ``deleted`` frames are entries of the log, encoded
with every other message by :class:`quartchat.protocol.MessageFrame`.
:func:`~quartchat.protocol.parse_frame` is the one entry point, and
:func:`~quartchat.protocol.encode` makes each record here one line.

Every client frame here may carry ``ref`` (as the rooms' frames do), which
the answer or the error sent to that connection echoes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import MUTED, FrameError
from .frame_fields import Fields, user_wire
from .models import Role, User

#: The longest mute, in seconds: a year (of 365 days).
MAX_MUTE_SECONDS = 365 * 24 * 3600
#: The longest ban with an end, in seconds: ten such years (null bans for good).
MAX_BAN_SECONDS = 10 * MAX_MUTE_SECONDS
#: The roles a ``role`` frame may give. Ownership is not handed over by a
#: frame: a room has the owner who made it.
GRANTABLE_ROLES = frozenset({Role.MODERATOR, Role.MEMBER})


# ----- client frames ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete message ``target`` (its text is wiped from the store)."""

    target: int
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class SetRole:
    """``role``: make a member of ``room`` a moderator, or a member again."""

    room: str
    user: str
    #: :data:`GRANTABLE_ROLES` only.
    role: Role
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Kick:
    """Put ``user`` out of ``room`` (a ``member`` ``kick`` event)."""

    room: str
    user: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Mute:
    """Refuse ``user``'s sends and edits in ``room`` (None: in every room and
    private conversation) for ``seconds``; 0 lifts the mute."""

    room: str | None
    user: str
    seconds: int
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Ban:
    """Close every connection of ``user`` and refuse their ``hello`` for
    ``seconds`` (None: for good); 0 lifts the ban."""

    user: str
    seconds: int | None
    ref: str | None = None


ModerationFrame = Delete | SetRole | Kick | Mute | Ban
#: The records of :data:`ModerationFrame`, for ``isinstance``.
MODERATION_FRAMES = (Delete, SetRole, Kick, Mute, Ban)


def _delete(fields: Fields, ref: str | None) -> Delete:
    return Delete(fields.required_int("target", 1), ref)


def _role(fields: Fields, ref: str | None) -> SetRole:
    room, user = fields.required_id("room"), fields.required_id("user")
    role = fields.obj.get("role")
    # (A list or an object is unhashable: ask about strings alone.)
    if not isinstance(role, str) or role not in GRANTABLE_ROLES:
        raise FrameError("bad_request", "field 'role' must be 'moderator' or 'member'")
    return SetRole(room, user, Role(role), ref)


def _kick(fields: Fields, ref: str | None) -> Kick:
    return Kick(fields.required_id("room"), fields.required_id("user"), ref)


def _mute(fields: Fields, ref: str | None) -> Mute:
    # No default: a mute meant for one room must not come out chat-wide.
    fields.require("room")
    room = fields.optional_id("room")
    user = fields.required_id("user")
    return Mute(room, user, fields.required_int("seconds", 0, MAX_MUTE_SECONDS), ref)


def _ban(fields: Fields, ref: str | None) -> Ban:
    user = fields.required_id("user")
    # Required, though it may be null: a ban for good is never a field forgotten.
    return Ban(user, fields.nullable_int("seconds", 0, MAX_BAN_SECONDS), ref)


#: Each moderation frame type and its parser, as
#: :data:`~quartchat.protocol_rooms.CLIENT_FRAMES_OF_ROOMS` has the rooms'.
CLIENT_FRAMES_OF_MODERATION: dict[str, Callable[[Fields, str | None], ModerationFrame]] = {
    "delete": _delete,
    "role": _role,
    "kick": _kick,
    "mute": _mute,
    "ban": _ban,
}


#: The latest time a ``muted`` message can show, in ms (the end of year 9999).
_LATEST_MS = 253_402_300_799_000


def muted_error(room: str | None, until: int | None, client_offset: str | None) -> FrameError:
    """The ``muted`` error for a send or an edit refused by a mute in
    ``room`` (None: a chat-wide one) ending at ``until`` (ms; None: for
    good), with the refused frame's ``client_offset``."""
    where = "in this room" if room is not None else "everywhere"
    if until is None:
        when = "for good"
    else:
        ends = datetime.fromtimestamp(min(until, _LATEST_MS) / 1000, UTC)
        when = f"until {ends.strftime('%Y-%m-%d %H:%M:%S')} UTC"
    return FrameError(MUTED, f"muted {where} {when}", client_offset, until=until)


# ----- server frames ---------------------------------------------------------
# Each record's ``wire`` gives its JSON object, keys in the contract's order;
# ``ref`` comes last, and only when set (the requester's copy).


def _with_ref(wire: dict[str, Any], ref: str | None) -> dict[str, Any]:
    if ref is not None:
        wire["ref"] = ref
    return wire


@dataclass(frozen=True, slots=True)
class RoleNotice:
    """A member's role changed, to the room's members; with ``ref``, the
    answer to the ``role`` that changed it."""

    room: str
    user: User
    role: Role
    by: User
    ref: str | None = None

    def wire(self) -> dict[str, Any]:
        wire = {
            "type": "role",
            "room": self.room,
            "user": user_wire(self.user),
            "role": self.role.value,
            "by": user_wire(self.by),
        }
        return _with_ref(wire, self.ref)


@dataclass(frozen=True, slots=True)
class MuteNotice:
    """A mute imposed or lifted, to the muted user's connections and (with
    ``ref``) the requester's. ``until``: when it ends (ms); 0 when lifted;
    None for good."""

    room: str | None
    user: User
    until: int | None
    by: User
    ref: str | None = None

    def wire(self) -> dict[str, Any]:
        wire = {
            "type": "mute",
            "room": self.room,
            "user": user_wire(self.user),
            "until": self.until,
            "by": user_wire(self.by),
        }
        return _with_ref(wire, self.ref)


@dataclass(frozen=True, slots=True)
class BanNotice:
    """The answer to a ``ban``: ``until`` as :attr:`MuteNotice.until`."""

    user: User
    until: int | None
    by: User
    ref: str | None = None

    def wire(self) -> dict[str, Any]:
        wire = {
            "type": "ban",
            "user": user_wire(self.user),
            "until": self.until,
            "by": user_wire(self.by),
        }
        return _with_ref(wire, self.ref)
