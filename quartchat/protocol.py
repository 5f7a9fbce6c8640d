"""Protocol v1 (and 1.1's rooms and moderation) without I/O: parse and
validate client frames, encode server frames.

Everything here is synchronous and pure, so the rules of docs/protocol.md are
tested without a socket. A client frame becomes one of the frozen dataclasses
below (or of :mod:`quartchat.protocol_rooms` for the rooms' own frames, of
:mod:`quartchat.protocol_moderation` for moderation's) or raises
:class:`~quartchat.errors.FrameError` with the protocol's code; a server
frame is one of the frozen records at the end, and :func:`encode` makes it
one line of JSON. :func:`parse_frame` is the one entry point.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .errors import MUTED, FrameError
from .frame_fields import MAX_ID as MAX_ID
from .frame_fields import MAX_ID_LEN as MAX_ID_LEN
from .frame_fields import Fields, clean_name, user_wire
from .frame_fields import is_scalar_text as is_scalar_text
from .models import GENERAL, Kind, Message, User, room_of
from .protocol_moderation import (
    CLIENT_FRAMES_OF_MODERATION,
    BanNotice,
    ModerationFrame,
    MuteNotice,
    RoleNotice,
)
from .protocol_rooms import (
    CLIENT_FRAMES_OF_ROOMS,
    DirectStanding,
    MemberNotice,
    MembersAnswer,
    ReadNotice,
    RoomFrame,
    RoomsAnswer,
    RoomStanding,
    parse_ref,
)
from .text import is_blank

MAX_TEXT = 2000
MAX_NICK = 32
#: The longest ``jwt`` a ``hello`` may carry (a token with a few claims is
#: some hundreds of characters; an RS256 signature alone is 342).
MAX_JWT = 8192
OFFSET_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
#: Error codes that are the client's own fault, the only ones that count as
#: strikes toward the 1008 close. Server failures (``internal``), the send
#: rate every tab of a user shares (``rate_limited``) and another user
#: holding a nick (``nick_taken``) or a room name (``room_taken``) are not.
#: Nor are ``unknown_room``, ``not_member`` and ``forbidden``: a page that
#: was right a moment ago meets them after a kick or a change of role (its
#: outbox still holding sends to the room), and a private room answers a
#: non-member as if it did not exist. Nor moderation's ``muted`` (someone
#: else's doing) and ``unknown_message``: a message deleted a moment ago
#: meets an honest page's edit or delete still on its way.
CLIENT_FAULTS = frozenset(
    {
        "bad_json",
        "bad_request",
        "empty",
        "too_long",
        "bad_offset",
        "bad_nick",
        "unknown_user",
        "bad_room_name",
    }
)
#: Error codes of the rooms (protocol 1.1), beside version 1's.
ROOM_ERROR_CODES = frozenset(
    {"unknown_room", "not_member", "forbidden", "room_taken", "bad_room_name"}
)
#: Error codes of moderation (protocol 1.1), beside those; ``forbidden`` is
#: the rooms' (a frame its sender may not send).
MODERATION_ERROR_CODES = frozenset({"muted", "unknown_message"})


@dataclass(frozen=True, slots=True)
class Hello:
    token: str | None
    nick: str | None
    last_id: int | None
    epoch: str | None
    #: Addition to v1: refuse a taken or bad nick instead of starting with another.
    nick_exact: bool = False
    #: Addition in 1.1: a JSON Web Token from the deployment's backend, in
    #: place of ``token`` (checked by :mod:`quartchat.jwt_identity`).
    jwt: str | None = None


@dataclass(frozen=True, slots=True)
class Send:
    client_offset: str
    text: str
    to: str | None
    #: Addition in 1.1: the room, ``general`` when absent or null; None for a
    #: private message (``to`` set), which is in no room.
    room: str | None = None
    #: Addition in 1.1: above 0, an ``edit`` of message ``target``, whose
    #: new text is ``text``. Its room and recipient are the target's: an
    #: edit names neither, so ``to`` is None and ``room`` ``general`` here.
    target: int = 0

    def __post_init__(self) -> None:
        _set(self, "room", room_of(self.room, self.to))


@dataclass(frozen=True, slots=True)
class Nick:
    nick: str


@dataclass(frozen=True, slots=True)
class Typing:
    active: bool
    to: str | None
    #: Addition in 1.1, as :attr:`Send.room`.
    room: str | None = None

    def __post_init__(self) -> None:
        _set(self, "room", room_of(self.room, self.to))


@dataclass(frozen=True, slots=True)
class History:
    before_id: int | None
    limit: int
    #: Addition to v1: only the private conversation with this user.
    with_user: str | None
    #: Addition in 1.1: only this room's messages. None, with no
    #: ``with_user`` either, is version 1's view: ``general`` and the
    #: user's private messages (unlike a send's, an absent room is not
    #: ``general`` alone).
    room: str | None = None

    def __post_init__(self) -> None:
        if self.room is not None and self.with_user is not None:
            raise ValueError("a private conversation is in no room")


@dataclass(frozen=True, slots=True)
class Ping:
    pass


ClientFrame = Hello | Send | Nick | Typing | History | Ping | RoomFrame | ModerationFrame
FrameOf1_1 = RoomFrame | ModerationFrame

_set = object.__setattr__


def parse_frame(raw: str, *, history_max: int = 200, rooms: bool = False) -> ClientFrame:
    """Turn one client text frame into a dataclass, or raise ``FrameError``.

    ``rooms`` is whether the server serves rooms (protocol 1.1). Until it
    does, 1.1's own frame types (the rooms', moderation's and ``edit``) are
    unknown types, as in version 1, and a ``room`` other than ``general``
    on a ``send``, ``typing`` or ``history`` is ``unknown_room``: it is
    refused rather than read as ``general``, so nothing meant for a room
    goes to everyone."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        raise FrameError("bad_json", "frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise FrameError("bad_request", "frame must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise FrameError("bad_request", "field 'type' must be a string")
    fields = Fields(obj)
    if kind == "send":
        return _parse_send(fields, rooms)
    if kind == "hello":
        return Hello(
            token=fields.optional_str("token", MAX_ID_LEN),
            nick=fields.wanted_name("nick"),
            last_id=fields.optional_int("last_id", 0),
            epoch=fields.optional_str("epoch", MAX_ID_LEN),
            nick_exact=obj.get("nick_exact") is True,
            jwt=fields.optional_str("jwt", MAX_JWT),
        )
    if kind == "nick":
        nick = fields.wanted_name("nick")
        if nick is None:
            raise FrameError("bad_request", "field 'nick' is required")
        return Nick(nick=nick)
    if kind == "typing":
        active = obj.get("active")
        if not isinstance(active, bool):
            raise FrameError("bad_request", "field 'active' must be true or false")
        to = fields.optional_str("to", MAX_ID_LEN)
        return Typing(active=active, to=to, room=_room_field(fields, to, "to", rooms))
    if kind == "history":
        limit = fields.optional_int("limit", 1)
        with_user = fields.optional_str("with", MAX_ID_LEN)
        return History(
            before_id=fields.optional_int("before_id", 0),
            limit=min(limit if limit is not None else 50, history_max),
            with_user=with_user,
            room=_room_field(fields, with_user, "with", rooms),
        )
    if kind == "ping":
        return Ping()
    if rooms and kind == "edit":
        return _parse_edit(fields)
    parse_frame_of_1_1 = _CLIENT_FRAMES_OF_1_1.get(kind) if rooms else None
    if parse_frame_of_1_1 is None:
        raise FrameError("bad_request", f"unknown frame type {kind[:40]!r}")
    return _parse_with_ref(parse_frame_of_1_1, fields)


#: The frame types of 1.1 that carry a ``ref``, and their parsers.
_CLIENT_FRAMES_OF_1_1: dict[str, Callable[[Fields, str | None], FrameOf1_1]] = {
    **CLIENT_FRAMES_OF_ROOMS,
    **CLIENT_FRAMES_OF_MODERATION,
}


def _parse_with_ref(
    parse: Callable[[Fields, str | None], FrameOf1_1], fields: Fields
) -> FrameOf1_1:
    """A frame of 1.1 parsed by ``parse``; a refusal carries the frame's
    ``ref`` (read first, so even a frame refused for another field echoes it)."""
    ref = parse_ref(fields)
    try:
        return parse(fields, ref)
    except FrameError as exc:
        exc.ref = ref
        raise


def _room_field(
    fields: Fields, other: str | None, other_name: str, rooms: bool, offset: str | None = None
) -> str | None:
    """The ``room`` of a ``send``, ``typing`` or ``history``: None when
    absent or null (``general``, or the private conversation ``other``
    names); ``bad_request`` beside ``other``; ``unknown_room`` when the
    server serves no rooms yet and it is not ``general``."""
    try:
        room = fields.optional_id("room")
    except FrameError as exc:
        raise FrameError(exc.code, exc.message, offset) from None
    if room is None:
        return None
    if other is not None:
        raise FrameError(
            "bad_request", f"a frame with '{other_name}' is private: it takes no 'room'", offset
        )
    if not rooms and room != GENERAL:
        raise FrameError("unknown_room", "no such room", offset)
    return room


def _parse_send(fields: Fields, rooms: bool) -> Send:
    offset = _client_offset(fields)
    text = _text(fields, offset)
    to = fields.obj.get("to")
    if to is not None and (
        not isinstance(to, str) or not 0 < len(to) <= MAX_ID_LEN or not is_scalar_text(to)
    ):
        raise FrameError("bad_request", "field 'to' must be a user id or null", offset)
    room = _room_field(fields, to, "to", rooms, offset)
    return Send(client_offset=offset, text=text, to=to, room=room)


def _parse_edit(fields: Fields) -> Send:
    """``edit``: a send with a ``target`` (a message id), acked and refused as
    a send is. It names no room and no recipient (the target's are used):
    a ``room`` or ``to`` other than null is ``bad_request``, rather than
    ignored while the client believes it edits elsewhere."""
    offset = _client_offset(fields)
    try:
        target = fields.required_int("target", 1)
    except FrameError as exc:
        raise FrameError(exc.code, exc.message, offset) from None
    text = _text(fields, offset)
    for name in ("room", "to"):
        if fields.obj.get(name) is not None:
            raise FrameError("bad_request", f"an edit takes no '{name}': the target's", offset)
    return Send(client_offset=offset, text=text, to=None, target=target)


def _client_offset(fields: Fields) -> str:
    """A send's (or an edit's) ``client_offset``; ``bad_offset`` when unusable."""
    offset = fields.obj.get("client_offset")
    if not isinstance(offset, str) or not OFFSET_RE.fullmatch(offset):
        raise FrameError(
            "bad_offset",
            "client_offset must be 1-64 characters of A-Z a-z 0-9 _ . : -",
            # Echoed only when it can be sent back (a lone surrogate cannot).
            offset
            if isinstance(offset, str) and len(offset) <= 64 and is_scalar_text(offset)
            else None,
        )
    return offset


def _text(fields: Fields, offset: str) -> str:
    """A send's (or an edit's) text, trimmed and checked; refusals name ``offset``."""
    text = fields.obj.get("text")
    if not isinstance(text, str):
        raise FrameError("bad_request", "field 'text' must be a string", offset)
    if "\x00" in text:
        raise FrameError("bad_request", "text must not contain NUL", offset)
    if not is_scalar_text(text):
        raise FrameError("bad_request", "text must be valid Unicode (no lone surrogates)", offset)
    # Every reader sees the same text: no leading or trailing blank lines.
    text = text.strip()
    if is_blank(text):
        raise FrameError("empty", "text is empty", offset)
    if len(text) > MAX_TEXT:
        raise FrameError("too_long", f"text over {MAX_TEXT} characters", offset)
    return text


def clean_nick(raw: str) -> str:
    """Normalise (NFKC) and trim a wanted nickname and check it (see
    :func:`~quartchat.frame_fields.clean_name`); raise ``bad_nick`` when unusable."""
    return clean_name(raw, longest=MAX_NICK, code="bad_nick", what="nickname")


# ----- server frames -------------------------------------------------------
# One frozen record per server frame type; ``encode`` is the only way a frame
# becomes text. Each record's ``wire`` gives its JSON object, with the keys in
# the order docs/protocol.md shows them.

#: Built once: ``json.dumps`` with options would build a new encoder per call.
#: Frames are trees of records, so the check for cycles is not needed.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def encode(frame: ServerFrame) -> str:
    """One server frame as one line of compact JSON: newlines inside strings
    are escaped, other non-ASCII characters are kept as they are."""
    if isinstance(frame, Welcome):
        return frame.line()
    return _JSON.encode(frame.wire())


_user = user_wire


def user_json(user: User) -> str:
    """One user as every frame carries them, encoded: ``{"id":..,"nick":..}``."""
    return _JSON.encode(_user(user))


@dataclass(frozen=True, slots=True)
class EncodedUsers:
    """A list of users already encoded as a JSON array, which a ``welcome``
    splices in as its ``online`` list unchanged. A presence board keeps one
    fragment per online user (see :meth:`quartchat.presence.Presence.listed`),
    so a welcome costs a join of strings, not a JSON encoding of everyone
    online: in a connection storm every welcome lists thousands of users."""

    json: str

    @classmethod
    def of(cls, users: Iterable[User]) -> EncodedUsers:
        return cls.join(user_json(user) for user in users)

    @classmethod
    def join(cls, fragments: Iterable[str]) -> EncodedUsers:
        """The list of users whose :func:`user_json` are ``fragments``, in order."""
        return cls(f"[{','.join(fragments)}]")


def _message(message: Message, name_general: bool) -> dict[str, Any]:
    """A message as ``message`` and ``history`` frames carry it (no ``type``):
    version 1's fields, then 1.1's ``room``, ``mentions`` (absent when it
    names no one) and ``edited_ts`` (absent when never edited). A private
    message has no ``room``; a message of ``general`` names it only with
    ``name_general`` (see :class:`MessageFrame`). A deleted message is
    ``{"id", "deleted": true, "from", "to", "ts", "room"}``: no text, and
    nothing that came of it (mentions, edits)."""
    recipient = message.recipient
    to = None if recipient is None else _user(recipient)
    wire: dict[str, Any]
    if message.deleted:
        wire = {"id": message.id, "deleted": True, "from": _user(message.sender), "to": to}
    else:
        wire = {"id": message.id, "from": _user(message.sender), "to": to, "text": message.text}
    wire["ts"] = message.ts
    room = message.room
    if room is not None and (name_general or room != GENERAL):
        wire["room"] = room
    if message.deleted:
        return wire
    if message.mentions:
        wire["mentions"] = message.mentions
    if message.edited_ts is not None:
        wire["edited_ts"] = message.edited_ts
    return wire


def _edited(entry: Message) -> dict[str, Any]:
    """An edit entry of the log as its ``edited`` frame. ``room`` is always
    there (null for a private message, ``general`` named): a 1.1 frame
    has no version-1 bytes to keep. ``text`` is "" when the target has
    been deleted since (a ``deleted`` frame follows it)."""
    recipient = entry.recipient
    return {
        "type": "edited",
        "id": entry.id,
        "target": entry.target,
        "text": entry.text,
        "room": entry.room,
        "ts": entry.ts,
        "from": _user(entry.sender),
        "to": None if recipient is None else _user(recipient),
    }


def _deleted(entry: Message) -> dict[str, Any]:
    """A delete entry of the log as its ``deleted`` frame (``room`` as in
    :func:`_edited`); ``from`` is the author, ``by`` who deleted (the author
    when the entry names no one)."""
    recipient = entry.recipient
    return {
        "type": "deleted",
        "id": entry.id,
        "target": entry.target,
        "room": entry.room,
        "by": _user(entry.sender if entry.by is None else entry.by),
        "ts": entry.ts,
        "from": _user(entry.sender),
        "to": None if recipient is None else _user(recipient),
    }


@dataclass(frozen=True, slots=True)
class Limits:
    """The server's settings a client should respect, as ``welcome`` tells them."""

    text: int
    nick: int
    send_rate: float
    send_burst: int
    frame_rate: float
    frame_burst: int
    frame_bytes: int
    history: int


@dataclass(frozen=True, slots=True)
class Welcome:
    user: User
    #: None for a user who came with a ``jwt``: only a JWT logs them in.
    token: str | None
    #: Everyone online, the user included: records, or already encoded.
    online: Sequence[User] | EncodedUsers
    last_id: int
    epoch: str
    recovered: bool
    limits: Limits
    #: Addition in 1.1: every room the user is in; absent when None.
    rooms: Sequence[RoomStanding] | None = None
    #: Addition in 1.1: private conversations with unread messages; absent when None.
    direct: Sequence[DirectStanding] | None = None
    #: Addition in 1.1: the user is a chat-wide admin. ``"admin": true`` is
    #: sent only then, so every other welcome keeps its bytes.
    admin: bool = False

    def wire(self) -> dict[str, Any]:
        online = self.online
        return {
            "type": "welcome",
            "user": _user(self.user),
            "token": self.token,
            "online": (
                json.loads(online.json)
                if isinstance(online, EncodedUsers)
                else [_user(user) for user in online]
            ),
            **self._after_online(),
        }

    def _after_online(self) -> dict[str, Any]:
        """The fields after ``online``, in the order of docs/protocol.md."""
        wire: dict[str, Any] = {
            "last_id": self.last_id,
            "epoch": self.epoch,
            "recovered": self.recovered,
            "limits": asdict(self.limits),
        }
        if self.rooms is not None:
            wire["rooms"] = [standing.wire() for standing in self.rooms]
        if self.direct is not None:
            wire["direct"] = [standing.wire() for standing in self.direct]
        if self.admin:
            wire["admin"] = True
        return wire

    def line(self) -> str:
        """What :func:`encode` makes of it, byte for byte, with the online
        list spliced in as encoded text rather than encoded again."""
        online = self.online
        if not isinstance(online, EncodedUsers):
            online = EncodedUsers.of(online)
        head = _JSON.encode({"type": "welcome", "user": _user(self.user), "token": self.token})
        tail = _JSON.encode(self._after_online())
        return f'{head[:-1]},"online":{online.json},{tail[1:]}'


@dataclass(frozen=True, slots=True)
class MessageFrame:
    """A committed entry of the log, live or replayed; encoded once per
    broadcast. A message is a ``message`` frame; an edit entry an ``edited``
    frame and a delete entry a ``deleted`` frame (protocol 1.1), whatever
    path hands them out.

    A message of ``general`` carries ``"room": "general"`` only with
    ``name_general``: without it, version-1 traffic is encoded byte for byte
    as version 1 wrote it (tests of version 1 compare message frames key for
    key). Messages of other rooms always name their room."""

    message: Message
    #: Name ``general`` on its messages, as protocol 1.1 shows them.
    name_general: bool = False

    def wire(self) -> dict[str, Any]:
        message = self.message
        if message.kind is Kind.EDIT:
            return _edited(message)
        if message.kind is Kind.DELETE:
            return _deleted(message)
        return {"type": "message", **_message(message, self.name_general)}


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """The answer to a ``history`` request, which it echoes."""

    messages: Sequence[Message]
    has_more: bool
    before_id: int | None
    with_user: str | None
    #: Addition in 1.1: the room the page is of (a request's, or the backlog
    #: a joining member gets); absent when None.
    room: str | None = None
    #: As :attr:`MessageFrame.name_general`, for the page's messages.
    name_general: bool = False

    def wire(self) -> dict[str, Any]:
        name_general = self.name_general
        # A page holds messages alone (the log's history gives no edit or
        # delete entry): one that slipped in would show as a message.
        messages = [
            _message(message, name_general)
            for message in self.messages
            if message.kind is Kind.MESSAGE
        ]
        wire = {
            "type": "history",
            "messages": messages,
            "has_more": self.has_more,
            "before_id": self.before_id,
            "with": self.with_user,
        }
        if self.room is not None:
            wire["room"] = self.room
        return wire


@dataclass(frozen=True, slots=True)
class Ack:
    """A ``send`` committed (or already stored: the same id again)."""

    client_offset: str
    id: int
    ts: int

    def wire(self) -> dict[str, Any]:
        return {"type": "ack", "client_offset": self.client_offset, "id": self.id, "ts": self.ts}


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    code: str
    message: str
    #: Set when the error is about a ``send``; absent from the frame otherwise.
    client_offset: str | None = None
    #: Addition to v1: seconds until the refused request would be served (a
    #: spent history budget); absent from the frame otherwise.
    retry_after: float | None = None
    #: Addition in 1.1: the refused frame's ``ref``; absent when it had none.
    ref: str | None = None
    #: Addition in 1.1, for code ``muted`` alone (and always there for it):
    #: when the mute ends, in ms since the epoch; None (``null``) for good.
    until: int | None = None

    @classmethod
    def of(cls, exc: FrameError) -> ErrorFrame:
        return cls(exc.code, exc.message, exc.client_offset, exc.retry_after, exc.ref, exc.until)

    def wire(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.client_offset is not None:
            frame["client_offset"] = self.client_offset
        if self.code == MUTED:
            frame["until"] = self.until
        if self.retry_after is not None:
            frame["retry_after"] = self.retry_after
        if self.ref is not None:
            frame["ref"] = self.ref
        return frame


@dataclass(frozen=True, slots=True)
class PresenceNotice:
    """A user joined, left, or (with ``old_nick``) changed their nick."""

    event: Literal["join", "leave", "nick"]
    user: User
    #: Set for ``nick`` events only; absent from the frame otherwise.
    old_nick: str | None = None

    def wire(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "presence", "event": self.event, "user": _user(self.user)}
        if self.old_nick is not None:
            frame["old_nick"] = self.old_nick
        return frame


@dataclass(frozen=True, slots=True)
class TypingNotice:
    """Another user's typing state in a conversation (``to``: null for everyone)."""

    user: User
    active: bool
    to: str | None
    #: Addition in 1.1: the room typed in; absent when None (version 1's
    #: notices, and private conversations).
    room: str | None = None

    def wire(self) -> dict[str, Any]:
        wire = {"type": "typing", "user": _user(self.user), "active": self.active, "to": self.to}
        if self.room is not None:
            wire["room"] = self.room
        return wire


@dataclass(frozen=True, slots=True)
class Pong:
    def wire(self) -> dict[str, Any]:
        return {"type": "pong"}


ServerFrame = (
    Welcome
    | MessageFrame
    | HistoryPage
    | Ack
    | ErrorFrame
    | PresenceNotice
    | TypingNotice
    | Pong
    | RoomsAnswer
    | MembersAnswer
    | MemberNotice
    | ReadNotice
    | RoleNotice
    | MuteNotice
    | BanNotice
)
