"""The seam of moderation's shared state: sanctions, chat-wide admins, the audit.

Who may do what is the caller's rule (:mod:`quartchat.moderation_desk`);
this seam records. Room roles (owner, moderator, member) are the room
directory's (:class:`~quartchat.backends.base.RoomDirectory.set_role`); what
lives here is what is not a room's: mutes (in one room, or chat-wide) and
bans, which users are admins besides those a JWT names, and the audit
record of every moderation action, which admins read.

Like every backend it has a lifecycle (``run`` with ``nursery.start``,
``aclose``) and raises only :class:`~quartchat.errors.StoreError` (and
:class:`~quartchat.errors.Unavailable`) at the seam. Two implementations:
SQLite (``sqlite_moderation``, in the chat's own database file) and Redis
(``redis_moderation``, shared by every worker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import trio

SanctionKind = Literal["mute", "ban"]


@dataclass(frozen=True, slots=True)
class Sanction:
    """A mute or a ban in force, or (``until`` in the past) one that ended."""

    kind: SanctionKind
    user: str
    #: A mute's room; None for a chat-wide mute, and always for a ban.
    room: str | None
    #: When it ends, in ms since the epoch; None: for good.
    until: int | None
    #: Who imposed it (a user id).
    by: str

    def in_force(self, now_ms: int) -> bool:
        return self.until is None or self.until > now_ms


#: What an audit record says was done (the frames' names, and the admin
#: command's grants).
AuditAction = Literal[
    "delete", "role", "kick", "mute", "unmute", "ban", "unban", "grant_admin", "revoke_admin"
]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One moderation action, as recorded: who did what to whom, when."""

    #: Who acted: a user id, or ``"cli"`` for the ``quartchat admin`` command.
    actor: str
    action: AuditAction
    #: Whom it was done to (a user id); None when it was a message's.
    user: str | None
    #: Where: a room id, or None (chat-wide, or a private message).
    room: str | None
    #: What else it takes to read it: a message id, a role, seconds (a
    #: short JSON object, or "").
    detail: str
    #: When, in ms since the epoch.
    ts: int


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An :class:`AuditEntry` as stored, with its place in the audit."""

    id: int
    entry: AuditEntry


class ModerationBoard(Protocol):
    """Sanctions, admins and the audit, shared by every worker of one chat.

    Each worker keeps a view of the sanctions in force and the admins
    (:mod:`quartchat.sanctions`), loaded with :meth:`in_force` and
    :meth:`admins` and refreshed at least once a second, so a send is
    checked without a round trip; a ``hello`` asks :meth:`ban_of` itself.
    """

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled (SQLite: its thread; Redis: nothing of its own)."""

    async def aclose(self) -> None:
        """Wait for calls in flight, then release what it holds."""

    async def impose(self, sanction: Sanction) -> None:
        """Record ``sanction``, replacing the one of the same kind, user and
        room; one whose ``until`` has passed lifts it (deletes it)."""

    async def in_force(self, now_ms: int) -> list[Sanction]:
        """Every sanction in force at ``now_ms`` (ended ones are dropped as
        they are met), in a fixed order: kind, user, room (None first)."""

    async def ban_of(self, user_id: str, now_ms: int) -> Sanction | None:
        """The user's ban in force at ``now_ms``, if any (one key read)."""

    async def set_admin(self, user_id: str, admin: bool) -> bool:
        """Make the user a chat-wide admin or not; whether that changed anything."""

    async def admins(self) -> list[str]:
        """The user ids made admins here (not those a JWT names), sorted."""

    async def record(self, entry: AuditEntry) -> AuditRecord:
        """Append ``entry`` to the audit; ids increase in the order recorded."""

    async def audit(self, before_id: int | None, limit: int) -> list[AuditRecord]:
        """Up to ``limit`` records below ``before_id`` (the newest when
        None), newest first."""
