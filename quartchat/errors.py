"""The small, named set of things that go wrong in quartchat.

``FrameError`` becomes an ``error`` frame and the socket stays open;
``CloseConnection`` ends the socket with a WebSocket close code. Both carry
what the client is told, so no handler has to invent wording.
"""

from __future__ import annotations


class QuartchatError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(QuartchatError):
    """A setting from the environment is unusable; the message names it."""


def exception_leaves(failed: BaseException) -> list[BaseException]:
    """``failed``, or what the exception groups around it hold, flattened
    (a nursery's, or a Redis client's task group's, wrap what was raised)."""
    leaves = [failed]
    while any(isinstance(leaf, BaseExceptionGroup) for leaf in leaves):
        leaves = [
            inner
            for leaf in leaves
            for inner in (leaf.exceptions if isinstance(leaf, BaseExceptionGroup) else [leaf])
        ]
    return leaves


class StoreError(QuartchatError):
    """The store could not do what was asked (disk full, corrupt file...)."""


class Unavailable(StoreError):
    """The shared backend (Redis) cannot be reached now; nothing was stored,
    and the same request may succeed once it is back."""


class PeerGone(QuartchatError):
    """The client went away; there is nobody left to answer."""


class FrameError(QuartchatError):
    """A client frame was refused; answered with an ``error`` frame."""

    def __init__(
        self,
        code: str,
        message: str,
        client_offset: str | None = None,
        *,
        retry_after: float | None = None,
        ref: str | None = None,
        until: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_offset = client_offset
        #: Seconds after which the same request would be served (a rate limit's hint).
        self.retry_after = retry_after
        #: The refused frame's ``ref`` (protocol 1.1), echoed on the error frame.
        self.ref = ref
        #: For :data:`MUTED` only: when the mute ends, in ms since the epoch
        #: (None: for good); the error frame shows it for that code alone.
        self.until = until


class RoomRefused(FrameError):
    """The room directory refused a change or a look-up (see the ``ROOM_*``
    codes below, and ``bad_request`` for a topic it cannot keep); answered
    with an ``error`` frame like any :class:`FrameError`."""


# Error codes of the room directory (docs/protocol.md, Rooms).
ROOM_TAKEN = "room_taken"
BAD_ROOM_NAME = "bad_room_name"
UNKNOWN_ROOM = "unknown_room"
NOT_MEMBER = "not_member"
FORBIDDEN = "forbidden"

# Error codes of moderation (docs/protocol.md, Moderation and identity).
#: A send or an edit from a user muted where it goes; the error carries ``until``.
MUTED = "muted"
#: An edit or a delete of a message that is not there (never stored,
#: trimmed, deleted already, or not a message but an edit or delete entry).
UNKNOWN_MESSAGE = "unknown_message"


class CloseConnection(QuartchatError):
    """The socket must end with ``code`` (see the close-code table)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


# Close codes, named once (docs/protocol.md has the table).
GOING_AWAY = 1001
UNSUPPORTED_DATA = 1003
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
NO_HELLO = 4001
UNKNOWN_TOKEN = 4003
TOO_SLOW = 4008
#: Protocol 1.1: the user is banned (a ``hello`` while the ban lasts, and
#: every connection of theirs when it is imposed).
BANNED = 4009
