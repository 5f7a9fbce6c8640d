"""Protocol v1 without I/O: parse and validate client frames, encode server frames.

Everything here is synchronous and pure, so the rules of docs/protocol.md are
tested without a socket. A client frame becomes one of the frozen dataclasses
below or raises :class:`~quartchat.errors.FrameError` with the protocol's code;
a server frame is one of the frozen records at the end, and :func:`encode`
makes it one line of JSON.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .errors import FrameError
from .models import Message, User
from .text import has_letter, is_blank

MAX_TEXT = 2000
MAX_NICK = 32
OFFSET_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
#: Long enough for any token or id we issue, short enough to bound a lookup.
MAX_ID_LEN = 128
#: Message ids, cursors and page sizes are 0..MAX_ID: the largest integer
#: SQLite stores, so no number a client sends can overflow a query.
MAX_ID = 2**63 - 1
#: JSON's ``\ud800`` escapes decode to lone surrogates: not Unicode scalar
#: values, so they cannot be encoded as UTF-8, stored or sent to anyone.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: Error codes that are the client's own fault, the only ones that count as
#: strikes toward the 1008 close. Server failures (``internal``), the send
#: rate every tab of a user shares (``rate_limited``) and another user
#: holding a nick (``nick_taken``) are not.
CLIENT_FAULTS = frozenset(
    {"bad_json", "bad_request", "empty", "too_long", "bad_offset", "bad_nick", "unknown_user"}
)


@dataclass(frozen=True, slots=True)
class Hello:
    token: str | None
    nick: str | None
    last_id: int | None
    epoch: str | None
    #: Addition to v1: refuse a taken or bad nick instead of starting with another.
    nick_exact: bool = False


@dataclass(frozen=True, slots=True)
class Send:
    client_offset: str
    text: str
    to: str | None


@dataclass(frozen=True, slots=True)
class Nick:
    nick: str


@dataclass(frozen=True, slots=True)
class Typing:
    active: bool
    to: str | None


@dataclass(frozen=True, slots=True)
class History:
    before_id: int | None
    limit: int
    #: Addition to v1: only the private conversation with this user.
    with_user: str | None


@dataclass(frozen=True, slots=True)
class Ping:
    pass


ClientFrame = Hello | Send | Nick | Typing | History | Ping


def parse_frame(raw: str, *, history_max: int = 200) -> ClientFrame:
    """Turn one client text frame into a dataclass, or raise ``FrameError``."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        raise FrameError("bad_json", "frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise FrameError("bad_request", "frame must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise FrameError("bad_request", "field 'type' must be a string")
    fields = _Fields(obj)
    if kind == "send":
        return _parse_send(fields)
    if kind == "hello":
        return Hello(
            token=fields.optional_str("token", MAX_ID_LEN),
            nick=fields.wanted_nick(),
            last_id=fields.optional_int("last_id", 0),
            epoch=fields.optional_str("epoch", MAX_ID_LEN),
            nick_exact=obj.get("nick_exact") is True,
        )
    if kind == "nick":
        nick = fields.wanted_nick()
        if nick is None:
            raise FrameError("bad_request", "field 'nick' is required")
        return Nick(nick=nick)
    if kind == "typing":
        active = obj.get("active")
        if not isinstance(active, bool):
            raise FrameError("bad_request", "field 'active' must be true or false")
        return Typing(active=active, to=fields.optional_str("to", MAX_ID_LEN))
    if kind == "history":
        limit = fields.optional_int("limit", 1)
        return History(
            before_id=fields.optional_int("before_id", 0),
            limit=min(limit if limit is not None else 50, history_max),
            with_user=fields.optional_str("with", MAX_ID_LEN),
        )
    if kind == "ping":
        return Ping()
    raise FrameError("bad_request", f"unknown frame type {kind[:40]!r}")


def _parse_send(fields: _Fields) -> Send:
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
    to = fields.obj.get("to")
    if to is not None and (
        not isinstance(to, str) or not 0 < len(to) <= MAX_ID_LEN or not is_scalar_text(to)
    ):
        raise FrameError("bad_request", "field 'to' must be a user id or null", offset)
    return Send(client_offset=offset, text=text, to=to)


class _Fields:
    """Typed access to a frame's fields, raising ``bad_request`` on a wrong type."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj

    def optional_str(self, name: str, max_len: int) -> str | None:
        value = self._str_or_null(name, max_len)
        if value is not None and not is_scalar_text(value):
            raise FrameError("bad_request", f"field '{name}' must be valid Unicode text")
        return value

    def wanted_nick(self) -> str | None:
        """The ``nick`` field as sent: :func:`clean_nick` judges it (``bad_nick``)."""
        return self._str_or_null("nick", 1000)

    def _str_or_null(self, name: str, max_len: int) -> str | None:
        value = self.obj.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or len(value) > max_len:
            raise FrameError("bad_request", f"field '{name}' must be a string or null")
        return value

    def optional_int(self, name: str, low: int) -> int | None:
        """An integer in ``low..MAX_ID``, or None."""
        value = self.obj.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_ID:
            raise FrameError(
                "bad_request", f"field '{name}' must be an integer from {low} to 2**63-1, or null"
            )
        return value


def is_scalar_text(text: str) -> bool:
    """True when ``text`` holds only Unicode scalar values (no lone surrogates)."""
    return _SURROGATE.search(text) is None


def clean_nick(raw: str) -> str:
    """Normalise (NFKC) and trim a wanted nickname and check it; raise
    ``bad_nick`` when unusable. NFKC makes fullwidth and mathematical letters
    plain and composes accents, so one name has one spelling."""
    if not is_scalar_text(raw):
        raise FrameError("bad_nick", "nickname must be valid Unicode (no lone surrogates)")
    nick = unicodedata.normalize("NFKC", raw).strip()
    if not 1 <= len(nick) <= MAX_NICK:
        raise FrameError("bad_nick", f"nickname must be 1-{MAX_NICK} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in nick):
        raise FrameError("bad_nick", "nickname must not contain control characters")
    if not has_letter(nick):
        raise FrameError("bad_nick", "nickname must show at least one letter or digit")
    return nick


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


def _user(user: User) -> dict[str, str]:
    return {"id": user.id, "nick": user.nick}


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


def _message(message: Message) -> dict[str, Any]:
    """A message as ``message`` and ``history`` frames carry it (no ``type``)."""
    recipient = message.recipient
    return {
        "id": message.id,
        "from": _user(message.sender),
        "to": None if recipient is None else _user(recipient),
        "text": message.text,
        "ts": message.ts,
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
    token: str
    #: Everyone online, the user included: records, or already encoded.
    online: Sequence[User] | EncodedUsers
    last_id: int
    epoch: str
    recovered: bool
    limits: Limits

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
            "last_id": self.last_id,
            "epoch": self.epoch,
            "recovered": self.recovered,
            "limits": asdict(self.limits),
        }

    def line(self) -> str:
        """What :func:`encode` makes of it, byte for byte, with the online
        list spliced in as encoded text rather than encoded again."""
        online = self.online
        if not isinstance(online, EncodedUsers):
            online = EncodedUsers.of(online)
        head = _JSON.encode({"type": "welcome", "user": _user(self.user), "token": self.token})
        tail = _JSON.encode(
            {
                "last_id": self.last_id,
                "epoch": self.epoch,
                "recovered": self.recovered,
                "limits": asdict(self.limits),
            }
        )
        return f'{head[:-1]},"online":{online.json},{tail[1:]}'


@dataclass(frozen=True, slots=True)
class MessageFrame:
    """A committed message, live or replayed; encoded once per broadcast."""

    message: Message

    def wire(self) -> dict[str, Any]:
        return {"type": "message", **_message(self.message)}


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """The answer to a ``history`` request, which it echoes."""

    messages: Sequence[Message]
    has_more: bool
    before_id: int | None
    with_user: str | None

    def wire(self) -> dict[str, Any]:
        return {
            "type": "history",
            "messages": [_message(message) for message in self.messages],
            "has_more": self.has_more,
            "before_id": self.before_id,
            "with": self.with_user,
        }


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

    @classmethod
    def of(cls, exc: FrameError) -> ErrorFrame:
        return cls(exc.code, exc.message, exc.client_offset, exc.retry_after)

    def wire(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.client_offset is not None:
            frame["client_offset"] = self.client_offset
        if self.retry_after is not None:
            frame["retry_after"] = self.retry_after
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

    def wire(self) -> dict[str, Any]:
        return {"type": "typing", "user": _user(self.user), "active": self.active, "to": self.to}


@dataclass(frozen=True, slots=True)
class Pong:
    def wire(self) -> dict[str, Any]:
        return {"type": "pong"}


ServerFrame = (
    Welcome | MessageFrame | HistoryPage | Ack | ErrorFrame | PresenceNotice | TypingNotice | Pong
)
