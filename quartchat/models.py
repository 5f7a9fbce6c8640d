"""Plain records shared by the store, the hub and the protocol: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class User:
    id: str
    nick: str


@dataclass(frozen=True, slots=True)
class Draft:
    """A message a client asked to store, not yet committed."""

    sender: User
    client_offset: str
    text: str
    recipient: User | None
    #: The connection that sent it (a :data:`~quartchat.backends.base.ConnId`),
    #: so it alone gets no echo; it rides the log's tail, not its history.
    origin: str = ""
    #: The room it goes to: ``general`` when not given; None for a private
    #: message (``recipient`` set), which is outside rooms.
    room: str | None = None
    #: Ids of the room's members its text names as ``@nick``.
    mentions: tuple[str, ...] = ()
    #: Above 0, an edit: ``text`` replaces the text of message ``target``,
    #: whose room and recipient this draft must copy (the log checks that
    #: the target is a live message of ``sender``'s).
    target: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "room", room_of(self.room, self.recipient))


class Kind(StrEnum):
    """What an entry of the log is: a message, or a change to one. Edits and
    deletes are entries of their own (an id each, in the log's order), so
    they reach live connections, replays and every worker's tail as
    messages do, to the same audience as the message they change."""

    MESSAGE = "message"
    EDIT = "edit"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Message:
    """A committed message: ``id`` is its place in the log."""

    id: int
    sender: User
    recipient: User | None
    text: str
    ts: int
    #: As :attr:`Draft.room`: ``general`` when not given, None when private.
    room: str | None = None
    #: Ids of the room's members its text names as ``@nick``.
    mentions: tuple[str, ...] = ()
    #: A message, an edit of one (``text`` its new text) or a delete of one
    #: (``text`` ""). An edit or a delete has the sender, recipient and room
    #: of the message it changes, ``target``.
    kind: Kind = Kind.MESSAGE
    target: int = 0
    #: A message as it is now: when its text was last edited (None: never).
    edited_ts: int | None = None
    #: A message as it is now: deleted (its text is gone: ``text`` is "").
    deleted: bool = False
    #: A delete: who deleted (the author, a moderator, an admin).
    by: User | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "room", room_of(self.room, self.recipient))


def room_of(room: str | None, recipient: User | str | None) -> str | None:
    """The room of a message (or a frame) to ``room`` and ``recipient`` (a
    user, or their id): ``general`` when neither is given (all version-1
    public traffic), None for a private one. Both at once is a caller's
    mistake (the parser refuses such a frame)."""
    if recipient is not None:
        if room is not None:
            raise ValueError("a private conversation is in no room")
        return None
    return GENERAL if room is None else room


@dataclass(frozen=True, slots=True)
class Posted:
    """What storing a draft gave: the message, and whether it was a retry."""

    message: Message
    duplicate: bool


class Role(StrEnum):
    """A member's standing in one room (the values are the wire's)."""

    OWNER = "owner"
    MODERATOR = "moderator"
    MEMBER = "member"


class RoomKind(StrEnum):
    """Who may join a room: anyone (``public``), or only those invited (``private``)."""

    PUBLIC = "public"
    PRIVATE = "private"


#: The public room every user is in and nobody can leave (its id and its name).
GENERAL = "general"


@dataclass(frozen=True, slots=True)
class Room:
    """A group conversation, as the wire shows it."""

    id: str
    name: str
    kind: RoomKind
    topic: str


@dataclass(frozen=True, slots=True)
class Membership:
    """One room a user is in: their role there and their read marker (the
    highest message id they have read in it; 0 for none)."""

    room: Room
    role: Role
    read_id: int


@dataclass(frozen=True, slots=True)
class RoomMember:
    """One member of a room, as the room's member list holds them."""

    user_id: str
    role: Role


@dataclass(frozen=True, slots=True)
class ListedRoom:
    """A room in the ``rooms`` answer, with how many members it has."""

    room: Room
    members: int
