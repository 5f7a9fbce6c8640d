"""What every frame shares: for client frames, typed access to their fields,
the bounds on ids and numbers and the cleaning of a wanted name (a nick, a
room name); for server frames, a user's shape. Pure and synchronous, like
the rest of the protocol layer (:mod:`quartchat.protocol`,
:mod:`quartchat.protocol_rooms`)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from .errors import FrameError
from .models import User
from .text import has_letter

#: Long enough for any token or id we issue, short enough to bound a lookup.
MAX_ID_LEN = 128
#: Message ids, cursors and page sizes are 0..MAX_ID: the largest integer
#: SQLite stores, so no number a client sends can overflow a query.
MAX_ID = 2**63 - 1
#: A wanted name is read up to this many code points before it is cleaned:
#: far over any name's limit, so one that NFKC shortens is judged on what it
#: becomes, and still a bound on the work of cleaning it.
MAX_WANTED_NAME = 1000
#: JSON's ``\ud800`` escapes decode to lone surrogates: not Unicode scalar
#: values, so they cannot be encoded as UTF-8, stored or sent to anyone.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: Characters no name may hold: controls, format characters (bidi controls,
#: zero-width joiners), line and paragraph separators.
_NOT_IN_NAMES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def is_scalar_text(text: str) -> bool:
    """True when ``text`` holds only Unicode scalar values (no lone surrogates)."""
    return _SURROGATE.search(text) is None


def clean_name(raw: str, *, longest: int, code: str, what: str) -> str:
    """Normalise (NFKC) and trim a wanted name and check it: 1 to ``longest``
    code points, no control or format characters, at least one letter or
    digit as it looks. Raises ``FrameError(code)`` naming ``what`` when it is
    unusable. NFKC makes fullwidth and mathematical letters plain and
    composes accents, so one name has one spelling."""
    if not is_scalar_text(raw):
        raise FrameError(code, f"{what} must be valid Unicode (no lone surrogates)")
    name = unicodedata.normalize("NFKC", raw).strip()
    if not 1 <= len(name) <= longest:
        raise FrameError(code, f"{what} must be 1-{longest} characters")
    if any(unicodedata.category(ch) in _NOT_IN_NAMES for ch in name):
        raise FrameError(code, f"{what} must not contain control characters")
    if not has_letter(name):
        raise FrameError(code, f"{what} must show at least one letter or digit")
    return name


class Fields:
    """Typed access to a frame's fields, raising ``bad_request`` on a wrong type."""

    __slots__ = ("obj",)

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj

    def optional_str(self, name: str, max_len: int) -> str | None:
        """A string of at most ``max_len`` code points (valid Unicode), or None."""
        value = self.str_or_null(name, max_len)
        if value is not None and not is_scalar_text(value):
            raise FrameError("bad_request", f"field '{name}' must be valid Unicode text")
        return value

    def optional_id(self, name: str) -> str | None:
        """An id (a user's, a room's): 1 to :data:`MAX_ID_LEN` code points of
        valid Unicode, or None when absent or null."""
        value = self.obj.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LEN:
            raise FrameError("bad_request", f"field '{name}' must be an id or null")
        if not is_scalar_text(value):
            raise FrameError("bad_request", f"field '{name}' must be valid Unicode text")
        return value

    def required_id(self, name: str) -> str:
        """As :meth:`optional_id`, but the field must be there."""
        value = self.optional_id(name)
        if value is None:
            raise FrameError("bad_request", f"field '{name}' is required")
        return value

    def wanted_name(self, name: str) -> str | None:
        """A name as sent (a nick, a room name), for :func:`clean_name` to judge."""
        return self.str_or_null(name, MAX_WANTED_NAME)

    def str_or_null(self, name: str, max_len: int) -> str | None:
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

    def required_int(self, name: str, low: int, high: int = MAX_ID) -> int:
        """An integer in ``low..high`` that must be there: not null, not a
        bool, not a float (``600.0`` included), not a string."""
        value = self.nullable_int(name, low, high)
        if value is None:
            raise FrameError("bad_request", f"field '{name}' is required")
        return value

    def nullable_int(self, name: str, low: int, high: int = MAX_ID) -> int | None:
        """An integer in ``low..high``, or null; the field itself must be
        there, so a null is always meant (a ban for good, say), never a
        field forgotten."""
        self.require(name)
        value = self.obj[name]
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise FrameError(
                "bad_request", f"field '{name}' must be an integer from {low} to {high}"
            )
        return value

    def require(self, name: str) -> None:
        """``bad_request`` unless the frame has the field (null counts as there)."""
        if name not in self.obj:
            raise FrameError("bad_request", f"field '{name}' is required")


def user_wire(user: User) -> dict[str, str]:
    """A user as every server frame carries them: ``{"id": .., "nick": ..}``."""
    return {"id": user.id, "nick": user.nick}
