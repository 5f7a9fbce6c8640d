"""Rooms (protocol 1.1) without I/O: the rooms' own client frames as frozen
records, parsed and checked, and the server frames that answer them.

docs/protocol.md's source, ../shared/protocol.md, part "Additions: rooms,
moderation, identity", section Rooms, is the contract. The additions to
version 1's frames (a ``room`` on ``send``, ``typing``, ``history`` and
``message``, ``rooms`` and ``direct`` in ``welcome``, ``ref`` on ``error``)
live with those frames in :mod:`quartchat.protocol`, whose
:func:`~quartchat.protocol.parse_frame` is the one entry point and whose
:func:`~quartchat.protocol.encode` makes every record here one line.

Every client frame here may carry ``ref``, up to :data:`MAX_REF` characters,
which the answer (or the error) sent to that connection echoes.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .errors import FrameError
from .frame_fields import Fields, clean_name, is_scalar_text, user_wire
from .models import ListedRoom, Membership, Role, Room, RoomKind, User

#: Room names: 1-64 code points after NFKC and trimming, as nicks are.
MAX_ROOM_NAME = 64
#: A topic, in code points: every ``rooms`` answer carries each room's.
MAX_TOPIC = 256
#: A ``ref``, in code points: a client's own label for a request.
MAX_REF = 64
#: What a topic is read up to before it is cleaned (NFC may shorten it).
_MAX_WANTED_TOPIC = 4 * MAX_TOPIC


# ----- client frames ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoomCreate:
    """Create a room; the creator becomes its owner and first member."""

    #: Cleaned as nicks are (:func:`clean_room_name`).
    name: str
    kind: RoomKind
    #: One line, NFC, trimmed; "" when absent.
    topic: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class RoomJoin:
    room: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class RoomLeave:
    room: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class RoomInvite:
    room: str
    user: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class RoomsRequest:
    """``{"type": "rooms"}``: the public rooms and the user's own."""

    ref: str | None = None


@dataclass(frozen=True, slots=True)
class MembersRequest:
    room: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class MarkRead:
    """``read``: move the user's marker in one room, or in the private
    conversation with one user, up to ``id``. Exactly one of ``room`` and
    ``with_user`` is set."""

    id: int
    room: str | None
    with_user: str | None
    ref: str | None = None


RoomFrame = (
    RoomCreate | RoomJoin | RoomLeave | RoomInvite | RoomsRequest | MembersRequest | MarkRead
)
#: The records of :data:`RoomFrame`, for ``isinstance``.
ROOM_FRAMES = (RoomCreate, RoomJoin, RoomLeave, RoomInvite, RoomsRequest, MembersRequest, MarkRead)


def parse_ref(fields: Fields) -> str | None:
    """The frame's ``ref``: a string of up to :data:`MAX_REF` characters, or None."""
    ref = fields.obj.get("ref")
    if ref is None:
        return None
    if not isinstance(ref, str) or len(ref) > MAX_REF or not is_scalar_text(ref):
        raise FrameError(
            "bad_request", f"field 'ref' must be a string of up to {MAX_REF} characters"
        )
    return ref


def clean_room_name(raw: str) -> str:
    """A wanted room name normalised and checked as a nick is (NFKC, trimmed,
    no control characters, a letter or digit), 1-64 code points;
    ``bad_room_name`` when unusable."""
    return clean_name(raw, longest=MAX_ROOM_NAME, code="bad_room_name", what="room name")


def clean_topic(raw: str) -> str:
    """A topic, NFC and trimmed: one line (no control characters, line or
    paragraph separators) of at most :data:`MAX_TOPIC` code points; else
    ``bad_request``."""
    if not is_scalar_text(raw):
        raise FrameError("bad_request", "topic must be valid Unicode (no lone surrogates)")
    topic = unicodedata.normalize("NFC", raw).strip()
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in topic):
        raise FrameError("bad_request", "topic must be one line")
    if len(topic) > MAX_TOPIC:
        raise FrameError("bad_request", f"topic over {MAX_TOPIC} characters")
    return topic


def _room_create(fields: Fields, ref: str | None) -> RoomCreate:
    name = fields.wanted_name("name")
    if name is None:
        raise FrameError("bad_room_name", "field 'name' is required")
    kind = fields.obj.get("kind")
    if kind not in ("public", "private"):
        # No default: a room meant to be private must not come out public.
        raise FrameError("bad_request", "field 'kind' must be 'public' or 'private'")
    topic = fields.str_or_null("topic", _MAX_WANTED_TOPIC)
    return RoomCreate(
        name=clean_room_name(name),
        kind=RoomKind(kind),
        topic="" if topic is None else clean_topic(topic),
        ref=ref,
    )


def _room_join(fields: Fields, ref: str | None) -> RoomJoin:
    return RoomJoin(fields.required_id("room"), ref)


def _room_leave(fields: Fields, ref: str | None) -> RoomLeave:
    return RoomLeave(fields.required_id("room"), ref)


def _room_invite(fields: Fields, ref: str | None) -> RoomInvite:
    return RoomInvite(fields.required_id("room"), fields.required_id("user"), ref)


def _rooms(fields: Fields, ref: str | None) -> RoomsRequest:
    return RoomsRequest(ref)


def _members(fields: Fields, ref: str | None) -> MembersRequest:
    return MembersRequest(fields.required_id("room"), ref)


def _read(fields: Fields, ref: str | None) -> MarkRead:
    room = fields.optional_id("room")
    with_user = fields.optional_id("with")
    if (room is None) == (with_user is None):
        raise FrameError("bad_request", "a read names exactly one of 'room' and 'with'")
    read_id = fields.optional_int("id", 0)
    if read_id is None:
        raise FrameError("bad_request", "field 'id' is required")
    return MarkRead(read_id, room, with_user, ref)


#: Each rooms frame type and its parser: it takes the frame's fields and its
#: ``ref`` (already read), and returns the record or raises ``FrameError``.
CLIENT_FRAMES_OF_ROOMS: dict[str, Callable[[Fields, str | None], RoomFrame]] = {
    "room_create": _room_create,
    "room_join": _room_join,
    "room_leave": _room_leave,
    "room_invite": _room_invite,
    "rooms": _rooms,
    "members": _members,
    "read": _read,
}


# ----- server frames ---------------------------------------------------------
# Each record's ``wire`` gives its JSON object, keys in the contract's order;
# ``ref`` comes last, and only when set.


def room_wire(room: Room) -> dict[str, str]:
    """A room as every frame carries it: ``{"id", "name", "kind", "topic"}``."""
    return {"id": room.id, "name": room.name, "kind": room.kind.value, "topic": room.topic}


def _with_ref(wire: dict[str, Any], ref: str | None) -> dict[str, Any]:
    if ref is not None:
        wire["ref"] = ref
    return wire


@dataclass(frozen=True, slots=True)
class RoomsAnswer:
    """The answer to ``rooms``: each room with its count of members."""

    rooms: Sequence[ListedRoom]
    ref: str | None = None

    def wire(self) -> dict[str, Any]:
        listed = [{**room_wire(item.room), "members": item.members} for item in self.rooms]
        return _with_ref({"type": "rooms", "rooms": listed}, self.ref)


@dataclass(frozen=True, slots=True)
class RoomMemberEntry:
    """One member in a ``members`` answer."""

    user: User
    role: Role
    online: bool

    def wire(self) -> dict[str, Any]:
        return {**user_wire(self.user), "role": self.role.value, "online": self.online}


@dataclass(frozen=True, slots=True)
class MembersAnswer:
    """The answer to ``members``: who is in the room, their role, and who is online."""

    room: str
    members: Sequence[RoomMemberEntry]
    ref: str | None = None

    def wire(self) -> dict[str, Any]:
        members = [member.wire() for member in self.members]
        return _with_ref({"type": "members", "room": self.room, "members": members}, self.ref)


@dataclass(frozen=True, slots=True)
class MemberNotice:
    """A membership change, to the room's members and the user concerned;
    with ``ref``, the answer to the request that caused it."""

    event: Literal["join", "leave", "invite", "kick"]
    room: Room
    user: User
    by: User
    ref: str | None = None

    def wire(self) -> dict[str, Any]:
        wire = {
            "type": "member",
            "event": self.event,
            "room": room_wire(self.room),
            "user": user_wire(self.user),
            "by": user_wire(self.by),
        }
        return _with_ref(wire, self.ref)


@dataclass(frozen=True, slots=True)
class ReadNotice:
    """A read marker moved, to every connection of its user: in ``room``, or
    in the private conversation ``with_user`` (exactly one is set)."""

    id: int
    room: str | None
    with_user: str | None
    ref: str | None = None

    def __post_init__(self) -> None:
        if (self.room is None) == (self.with_user is None):
            raise ValueError("a read notice names exactly one of room and with_user")

    def wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"type": "read"}
        if self.room is not None:
            wire["room"] = self.room
        else:
            wire["with"] = self.with_user
        wire["id"] = self.id
        return _with_ref(wire, self.ref)


@dataclass(frozen=True, slots=True)
class RoomStanding:
    """One room of the user's, as ``welcome`` lists it: their role, read
    marker, and the messages from others after it (those that mention them)."""

    membership: Membership
    unread: int
    mentions: int

    def wire(self) -> dict[str, Any]:
        membership = self.membership
        return {
            "room": room_wire(membership.room),
            "role": membership.role.value,
            "read_id": membership.read_id,
            "unread": self.unread,
            "mentions": self.mentions,
        }


@dataclass(frozen=True, slots=True)
class DirectStanding:
    """A private conversation with unread messages, as ``welcome`` lists it."""

    user: User
    read_id: int
    unread: int

    def wire(self) -> dict[str, Any]:
        return {"user": user_wire(self.user), "read_id": self.read_id, "unread": self.unread}
