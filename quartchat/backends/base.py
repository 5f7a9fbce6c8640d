"""The seams between the delivery rules and the state they share.

The hub and the sessions speak only to these interfaces. One place
(``quartchat.backends.open_backends``) picks the implementations from the
settings: the embedded default (a SQLite log, in-process presence, events
and limits: one process), or Redis (any number of hypercorn workers on any
number of hosts sharing one chat).

Every backend has a lifecycle: ``run`` is started with ``nursery.start`` and
calls ``task_status.started()`` once the backend answers; cancelling it stops
the backend's own tasks; ``aclose`` releases what it holds and waits for the
calls in flight. At the seam a backend raises only the project's own errors
(:class:`~quartchat.errors.StoreError`, :class:`~quartchat.errors.Unavailable`),
never a driver's (``sqlite3``, ``coredis``) exceptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import trio

from .. import protocol_rooms
from ..broker import Deliver as Deliver  # a subscriber's callback: it only queues
from ..broker import Event
from ..errors import FrameError, RoomRefused, StoreError
from ..models import (
    GENERAL,
    Draft,
    ListedRoom,
    Membership,
    Message,
    Posted,
    Role,
    Room,
    RoomKind,
    RoomMember,
    User,
)
from ..protocol import EncodedUsers
from ..store import UNREAD_CAP as UNREAD_CAP  # where each unread count stops
from ..text import nick_keys

#: A connection's id, unique across every worker of one chat
#: (``"<worker id>.<counter>"``), so "no echo" and presence never confuse
#: connection 5 of one worker with connection 5 of another.
ConnId = str


@dataclass(frozen=True, slots=True)
class Committed:
    """A message as the log's tail hands it out. The sending connection
    rides along so that connection alone is not sent its own message."""

    message: Message
    origin: ConnId


MemberEventKind = Literal["join", "leave", "invite", "kick"]


@dataclass(frozen=True, slots=True)
class MemberChange:
    """A membership change, as the log's tail hands it out at its place among
    the messages: every worker applies it to its connections in that order,
    so a message committed after a kick never reaches the kicked user, and
    one committed after a join reaches the new member live.

    It is not a message: it takes no id, and no replay or history holds it
    (a new connection reads the memberships in force from the directory).
    ``after_id`` is its place: the newest message id when it was noted."""

    event: MemberEventKind
    room: Room
    user: User
    by: User
    after_id: int = 0
    #: The connection that asked for it, whose copy carries ``ref``.
    origin: ConnId = ""
    ref: str | None = None


#: What the log's tail hands out, in order: messages and membership changes.
LogEntry = Committed | MemberChange


@dataclass(frozen=True, slots=True)
class Bucket:
    """A token bucket an append spends from: ``rate`` tokens a second, at
    most ``burst`` saved up. Named by ``key``, shared by every worker of one
    chat and with :meth:`RateLimits.take` on the same key."""

    key: str
    rate: float
    burst: int


class RateLimited(Exception):
    """In a draft's place in :meth:`MessageLog.append`'s results: its bucket
    had no token left, so nothing of it was stored."""


class EditRefused(Exception):
    """In an edit's place in :meth:`MessageLog.append`'s results: its target
    is not a live message of its sender's (no such message, an edit or a
    delete entry, trimmed, deleted, or someone else's), so nothing of it was
    stored. Checked in the same step as the append, so an edit racing a
    delete never brings a deleted text back."""


@dataclass(frozen=True, slots=True)
class Replay:
    """What a connection is owed when it starts."""

    #: Visible messages after the cursor (or the newest ones), oldest first.
    messages: list[Message]
    #: The newest id in the log when it was read: the snapshot that live
    #: traffic is filtered against, so nothing is skipped or repeated.
    last_id: int
    #: True when no visible message after the cursor was left out.
    complete: bool


#: The rooms a read covers when the caller names none: ``general`` alone,
#: what every version-1 reader sees (with their private messages).
GENERAL_ONLY: frozenset[str] = frozenset({GENERAL})


@dataclass(frozen=True, slots=True)
class RoomUnread:
    """One room's counts for one reader, after their read marker there."""

    #: Messages from others (at most :data:`UNREAD_CAP`).
    unread: int
    #: Those of them that mention the reader (at most :data:`UNREAD_CAP`).
    mentions: int


@dataclass(frozen=True, slots=True)
class Unread:
    """What a reader has not read yet, as :meth:`MessageLog.unread` counts it."""

    #: By room id.
    rooms: dict[str, RoomUnread]
    #: By the other's user id: the private messages they sent the reader.
    direct: dict[str, int]


class MessageLog(Protocol):
    """The ordered log of record.

    Ids are positive integers, strictly increasing in commit order across
    every writer. ``append`` returns only once its messages are durable.

    The send limits are spent by ``append`` rather than by a seam of their
    own: on Redis the bucket is spent inside the append's script, so a send
    costs one round trip, not two (on SQLite, the bucket is spent under the
    append's own lock, just before the insert). A separate "spend, then
    append" would double the per-message round trips on the hot path.
    """

    #: Names this log's history; a cursor from another epoch means nothing here.
    epoch: str

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled (reconnects, tails, maintenance)."""

    async def aclose(self) -> None:
        """Wait for calls in flight, then release connections."""

    async def append(
        self, drafts: Sequence[Draft], buckets: Sequence[Bucket | None] = ()
    ) -> list[Posted | StoreError | RateLimited | EditRefused]:
        """Store drafts atomically each: dedup ``(sender, client_offset)``
        (a known one gives back the stored message, ``duplicate=True``, and no
        new id), give new ones the next ids, commit; results in draft order.
        A draft the backend refuses for its own values is a StoreError in its
        place (the others still commit). Raises StoreError/Unavailable with
        nothing acked when the batch as a whole failed.

        ``buckets`` (one per draft, or empty for none) are the send limits:
        a draft with a bucket first spends one token of it, as one step with
        its append, so a limit holds across workers without a round trip of
        its own. A draft whose bucket is empty is :class:`RateLimited` in its
        place, nothing of it stored; a retry (a duplicate) spends a token
        too. The backend keeps the buckets where :class:`RateLimits` keeps
        them (in-process, or in Redis), on the same keys.

        A draft with ``target`` is an edit: stored as an entry of kind
        ``EDIT`` (its own id, its text, the target's room and recipient,
        dedup on its sender's ``client_offset`` as any draft), and the
        target's text as it is now becomes the edit's, with ``edited_ts``
        the edit's ts. A target that is not a live message of the sender's
        is :class:`EditRefused` in its place, nothing stored."""

    async def get(self, message_id: int) -> Message | None:
        """The message with that id as it is now (its last text and
        ``edited_ts``; ``deleted`` with text "" when deleted), or None when
        there is none: never stored, trimmed, or an edit or delete entry."""

    async def delete(self, target: int, by: User, origin: ConnId = "") -> Message | None:
        """Delete message ``target``: its text and the text of every edit of
        it are wiped from the store (not hidden: no page of the SQLite file,
        of its WAL after the next checkpoint, nor any Redis key holds them;
        SQLite checkpoints with TRUNCATE within 5 s of a delete), it reads
        as ``deleted`` from now on, and an entry of kind ``DELETE`` is
        appended (the next id; the target's sender, recipient and room;
        ``by``; text "") for every tail to hand out, with ``origin``.
        Returns that entry, or None when ``target`` is no live message (never
        stored, trimmed, an edit or delete entry, deleted already). Who may
        delete is the caller's rule."""

    async def read_after(
        self,
        viewer: str,
        after_id: int | None,
        limit: int,
        rooms: Collection[str] = GENERAL_ONLY,
    ) -> Replay:
        """The messages of ``rooms`` and ``viewer``'s private messages with
        ids above ``after_id`` (or the newest ``limit`` when None), at most
        ``limit`` (the newest), in id order, with the snapshot id; nothing
        of any other room. Edit and delete entries are among them (they
        count toward ``limit``), seen by whoever may see their target;
        messages come as they are now (see :meth:`get`). Which rooms the
        viewer is in is the caller's knowledge (the room directory's). Its
        cost grows with the number of ``rooms`` and ``limit``, never with
        other rooms' traffic."""

    async def history(
        self,
        viewer: str,
        before_id: int | None,
        limit: int,
        with_user: str | None,
        room: str | None = None,
    ) -> tuple[list[Message], bool]:
        """Up to ``limit`` messages below ``before_id`` (newest when None),
        oldest first, and whether older ones exist: of ``room``, or of the
        private conversation between ``viewer`` and ``with_user``, or, when
        neither is given, of ``general`` and the viewer's private messages
        (what version 1 shows). Both at once is a ValueError. Whether the
        viewer may read ``room`` is the caller's rule. Only messages (no
        edit or delete entry), each as it is now (see :meth:`get`): a
        deleted one stays in its place, ``deleted``, with no text."""

    async def unread(
        self, viewer: str, rooms: Mapping[str, int], direct: Mapping[str, int]
    ) -> Unread:
        """For each room of ``rooms`` (room id to ``viewer``'s read marker
        there), the messages after the marker from others and how many of
        them mention ``viewer``; for each private conversation of ``direct``
        (the other's id to the marker), the messages the other sent ``viewer``
        after it. Each count stops at :data:`UNREAD_CAP` and reads an index,
        so its cost is bounded whatever the traffic: a room's unread count
        looks at the first ``4 * UNREAD_CAP`` messages after the marker at
        most (a reader who wrote most of those sees fewer counted than there
        are). A self-mention is not counted; mentions in private messages
        are kept with the message but not counted. Edit and delete entries
        are not counted (an edit is no new message)."""

    async def note_change(self, change: MemberChange) -> MemberChange:
        """Place ``change`` in the log after the newest committed message, for
        every tail to hand out in that order; returns it with its
        ``after_id``. Called once the room directory holds the change, so a
        tail that has handed it out never disagrees with the directory."""

    def tail(self, after_id: int) -> AsyncIterator[list[LogEntry]]:
        """Every message committed with an id above ``after_id``, by anyone
        (edit and delete entries included, as :meth:`append` and
        :meth:`delete` stored them), and every change noted since, in log order and in batches, for
        ever; across an outage of the backend it resumes where it stopped.
        One per worker, not per socket."""

    async def last_id(self) -> int:
        """The newest committed id (0 for an empty log)."""


class Identities(Protocol):
    """Who may write to the log: each identity's id, nick and secret token.

    A backend may serve this and :class:`MessageLog` from one object (the
    two share a connection and ``prune_silent_users`` asks which identities
    wrote); :class:`~quartchat.backends.Backends` hands them out apart, so
    each user of them depends only on the seam it calls.
    """

    async def create_user(self, nick: str) -> tuple[User, str]:
        """A new identity and its secret token (only a hash is kept)."""

    async def user_by_token(self, token: str) -> User | None: ...

    async def get_user(self, user_id: str) -> User | None: ...

    async def set_nick(self, user_id: str, nick: str) -> None: ...

    async def user_for_subject(self, subject: str, nick: str) -> User:
        """The user of an account at the deployment (a JWT's ``sub``): got,
        or made with ``nick`` the first time, atomically, so two workers
        meeting a new subject at once make one user. The same subject is the
        same user for good: such a user has no token and is never pruned."""

    async def prune_silent_users(self, created_before: int, keep: Collection[str]) -> int:
        """Delete identities created before ``created_before`` (ms since the
        epoch) that never sent nor received a message, except ``keep`` (those
        online); return how many went. Their tokens then close with 4003."""


#: What travels on the event bus: the frame and its audience. A bus between
#: workers must carry the audience too (``only_users``, ``skip_user``,
#: ``skip_conn``), so it is the concrete record, not a protocol of ``line`` alone.
BusEvent = Event


class EventBus(Protocol):
    """Presence, nick and typing frames for every worker's connections.

    Committed messages do not travel here: each worker reads them from the
    log's tail, in id order. ``publish`` never waits for a client; events
    may be lost across an outage (they are hints, not history).
    """

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Relay events between workers until cancelled."""

    def publish(self, event: BusEvent) -> None:
        """Send ``event`` to every worker's subscribers (this one's included)."""


class PresenceBoard(Protocol):
    """Who is online across all workers: users (not tabs) and their nicks.

    Nicks are unique among online users, compared by
    :func:`quartchat.text.nick_keys` (sharing any key is a clash); claiming one
    is atomic across workers.
    A worker that dies without saying goodbye has its connections expire.
    """

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Heartbeats and the expiry of dead workers' connections, until cancelled."""

    async def connect(self, conn: ConnId, user: User) -> tuple[User, bool]:
        """Count ``conn`` for ``user``; return the user as online now (an
        already-online user keeps their nick; a new one gets ``user.nick`` or
        its first free ``nick-2`` variant) and whether this made them online."""

    async def disconnect(self, conn: ConnId, user_id: str) -> bool:
        """Forget ``conn``; True when the user has no connection left anywhere."""

    async def depart_if_idle(self, user_id: str) -> User | None:
        """If the user still has no connection, take them offline (freeing
        their nick) and return them: exactly one caller gets the user."""

    async def rename(self, user_id: str, nick: str) -> User | None:
        """Give an online user ``nick`` if no one else holds it; the old user
        record, or None when the nick is taken."""

    async def get(self, user_id: str) -> User | None: ...

    async def online(self) -> list[User]: ...

    async def listed(self) -> EncodedUsers:
        """:meth:`online`, encoded as a ``welcome`` lists it (a board may keep
        each user's fragment encoded, so a welcome costs no encoding of
        everyone online)."""

    async def is_free(self, nick: str, user_id: str | None) -> bool: ...

    def connections_elsewhere(self) -> int:
        """Connections counted on the other workers, as last heard (no I/O):
        the flush pacer shares its frame budget with them, so the chat's
        frames per second do not grow with the number of workers."""

    def returned(self) -> AsyncIterator[list[User]]:
        """Users of this worker's open connections who are online again after
        the other workers took this one for dead (its heartbeats were late,
        it was not gone) and reported them :meth:`departed`: the hub
        announces their join. Never ends; one consumer per board."""

    def departed(self) -> AsyncIterator[list[User]]:
        """Users taken offline because every connection they had was on
        workers that died without saying goodbye (their heartbeat expired).
        Each such user is reported once, by one surviving worker, so the hub
        publishes exactly one ``leave``. Never ends; one consumer per board."""


class RateLimits(Protocol):
    """Token buckets shared by every worker (a user's allowance does not
    multiply with the number of workers)."""

    async def take(self, key: str, rate: float, burst: int) -> bool:
        """Spend one token of bucket ``key`` if it has one."""

    async def spend(self, key: str, rate: float, burst: int, cost: int) -> float:
        """Spend ``cost`` tokens of bucket ``key`` at once if it holds that
        many, and return 0.0; otherwise spend nothing and return the seconds
        until it will hold them (a request whose price varies, such as a
        history page priced by its messages). ``cost`` is 1 to ``burst``. The
        same key is the same bucket as for :meth:`take`."""


#: The largest read marker a directory keeps: the largest integer a double
#: (a Lua number in Redis's scripts) holds exactly. Ids are far below it.
MAX_READ_ID = 2**53


def clean_room_name(raw: str) -> str:
    """A wanted room name, cleaned by the protocol's rule
    (:func:`quartchat.protocol_rooms.clean_room_name`); refused as
    :class:`RoomRefused` ``bad_room_name``. Two names clash when they share
    a :func:`room_name_keys` key."""
    return _as_room_refusal(protocol_rooms.clean_room_name, raw)


def room_name_keys(name: str) -> list[str]:
    """The keys a cleaned room name holds, sorted: the nick keys (a room
    called "Design" holds what a nick "design" or "d\u0435sign" would)."""
    return sorted(nick_keys(name))


def clean_topic(raw: str) -> str:
    """A room's topic, cleaned by the protocol's rule
    (:func:`quartchat.protocol_rooms.clean_topic`); refused as
    :class:`RoomRefused` ``bad_request``."""
    return _as_room_refusal(protocol_rooms.clean_topic, raw)


def _as_room_refusal(clean: Callable[[str], str], raw: str) -> str:
    try:
        return clean(raw)
    except FrameError as exc:
        raise RoomRefused(exc.code, exc.message) from None


def check_read_id(message_id: int) -> int:
    """A read marker's id, 0 to :data:`MAX_READ_ID` (the hub clamps a
    client's to the log's last id first)."""
    if not 0 <= message_id <= MAX_READ_ID:
        raise RoomRefused("bad_request", f"read id must be 0-{MAX_READ_ID}")
    return message_id


class RoomDirectory(Protocol):
    """Rooms, their members' roles, and how far each user has read.

    No messages live here (they are the log's): only the state the delivery
    rules consult. The public room ``general`` (:data:`~quartchat.models.GENERAL`)
    always exists; every user is in it without a row of their own (a row
    there records only a role above ``member``), and nobody leaves it.
    Room names are unique by look: a name holds its :func:`room_name_keys`,
    and creating a room claims them atomically across workers.

    Refusals are :class:`~quartchat.errors.RoomRefused` with the codes of
    :mod:`quartchat.errors` (``room_taken``, ``bad_room_name``,
    ``unknown_room``, ``not_member``, ``forbidden``); failures are
    :class:`StoreError` / :class:`~quartchat.errors.Unavailable`. Who may do
    what (join only public rooms, invite into private ones, kick) is the
    caller's rule: the directory records, it does not authorise. Lists come
    in a fixed order on every backend: rooms by creation (``general``
    first), members by role (owner, moderator, member), then user id.
    """

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; started once ``general`` exists."""

    async def aclose(self) -> None:
        """Refuse new calls and wait for those in flight."""

    async def create(self, creator: str, name: str, kind: RoomKind, topic: str = "") -> Room:
        """A new room, with ``creator`` its owner and first member. ``name``
        is cleaned by :func:`clean_room_name` (``bad_room_name``), ``topic``
        by :func:`clean_topic`; ``room_taken`` when another room's name
        shares a key with it."""

    async def get(self, room_id: str) -> Room | None: ...

    async def role_of(self, room_id: str, user_id: str) -> Role | None:
        """The user's role there, or None when they are not a member (or
        there is no such room); every user is a member of ``general``."""

    async def add_member(self, room_id: str, user_id: str) -> bool:
        """Make the user a ``member``; False when they already were (their
        role unchanged). ``unknown_room``."""

    async def remove_member(self, room_id: str, user_id: str) -> bool:
        """Take the user out (a leave or a kick), with their read marker
        there; False when they were not in. ``forbidden`` for ``general``,
        ``unknown_room``."""

    async def set_role(self, room_id: str, user_id: str, role: Role) -> Role:
        """Give a member ``role``; the role they had. ``not_member``,
        ``unknown_room``."""

    async def members(self, room_id: str) -> list[RoomMember]:
        """The room's members with their roles. For ``general``, only those
        with a role above ``member`` (everyone else is in it implicitly: the
        identities list them). ``unknown_room``."""

    async def rooms_of(self, user_id: str) -> list[Membership]:
        """Every room the user is in, ``general`` first, with their role
        and read marker there (0: nothing read)."""

    async def listing(self, viewer: str) -> list[ListedRoom]:
        """Every public room and every room ``viewer`` is in, with its member
        count (``general``'s: the number of users): the ``rooms`` answer."""

    async def mark_read(self, user_id: str, room_id: str, message_id: int) -> int:
        """Move the user's marker in the room up to ``message_id`` (never
        down); the marker now in force. ``not_member``, ``unknown_room``,
        ``bad_request`` outside 0..:data:`MAX_READ_ID`."""

    async def mark_direct_read(self, user_id: str, other_id: str, message_id: int) -> int:
        """The same for the private conversation with ``other_id``."""

    async def direct_reads(self, user_id: str) -> dict[str, int]:
        """The user's markers in private conversations, by the other's id."""
