"""The embedded room directory: rooms, members and read markers in the chat's
SQLite file, beside the log (the tables come from schema 2, see
:func:`quartchat.store.migrate`).

Every call runs on the store's worker threads under its limiters
(:meth:`~quartchat.store.AsyncStore.write` and ``read``). A write is one
``BEGIN IMMEDIATE`` transaction: it holds the write lock from its first
read, so claiming a name (look, then insert) cannot interleave with another
writer's, even a second process on the same file.

The functions below take a plain :class:`sqlite3.Connection`, so
``quartchat migrate`` reads a store with the same queries.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from typing import Any

import trio

from ..errors import FORBIDDEN, NOT_MEMBER, ROOM_TAKEN, UNKNOWN_ROOM, RoomRefused
from ..models import GENERAL, ListedRoom, Membership, Role, Room, RoomKind, RoomMember
from ..store import AsyncStore, now_ms
from .base import check_read_id, clean_room_name, clean_topic, room_name_keys
from .sqlite_calls import StoreCalls

_ROOM = "r.id, r.name, r.kind, r.topic"
#: Members by role (owner, moderator, member), then user id: the order
#: every backend lists them in.
_ROLE_ORDER = "CASE m.role WHEN 'owner' THEN 0 WHEN 'moderator' THEN 1 ELSE 2 END, m.user_id"


class SqliteRooms:
    """:class:`~quartchat.backends.base.RoomDirectory` on the chat's SQLite store."""

    def __init__(self, store: AsyncStore) -> None:
        self.store = store
        self._calls = StoreCalls(store, "the room directory")
        self._write = self._calls.write
        self._read = self._calls.read

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Nothing in the background: the migration made ``general``."""
        task_status.started()
        await trio.sleep_forever()

    async def aclose(self) -> None:
        """Refuse new calls, wait for those running (the store is the log's
        to close, after this)."""
        await self._calls.aclose()

    async def create(self, creator: str, name: str, kind: RoomKind, topic: str = "") -> Room:
        room = Room("r" + secrets.token_hex(8), clean_room_name(name), kind, clean_topic(topic))
        return await self._write(lambda conn: insert_room(conn, room, creator))

    async def get(self, room_id: str) -> Room | None:
        return await self._read(lambda conn: room_by_id(conn, room_id))

    async def role_of(self, room_id: str, user_id: str) -> Role | None:
        return await self._read(lambda conn: _role_of(conn, room_id, user_id))

    async def add_member(self, room_id: str, user_id: str) -> bool:
        return await self._write(lambda conn: _add_member(conn, room_id, user_id))

    async def remove_member(self, room_id: str, user_id: str) -> bool:
        if room_id == GENERAL:
            raise RoomRefused(FORBIDDEN, "nobody can leave general")
        return await self._write(lambda conn: _remove_member(conn, room_id, user_id))

    async def set_role(self, room_id: str, user_id: str, role: Role) -> Role:
        return await self._write(lambda conn: _set_role(conn, room_id, user_id, role))

    async def members(self, room_id: str) -> list[RoomMember]:
        return await self._read(lambda conn: _members(conn, room_id))

    async def rooms_of(self, user_id: str) -> list[Membership]:
        return await self._read(lambda conn: _rooms_of(conn, user_id))

    async def listing(self, viewer: str) -> list[ListedRoom]:
        return await self._read(lambda conn: _listing(conn, viewer))

    async def mark_read(self, user_id: str, room_id: str, message_id: int) -> int:
        check_read_id(message_id)
        return await self._write(lambda conn: _mark_read(conn, user_id, room_id, message_id))

    async def mark_direct_read(self, user_id: str, other_id: str, message_id: int) -> int:
        check_read_id(message_id)
        return await self._write(lambda conn: mark_direct(conn, user_id, other_id, message_id))

    async def direct_reads(self, user_id: str) -> dict[str, int]:
        return await self._read(lambda conn: direct_markers(conn, user_id))


# ----- the queries (a connection each; writes inside the caller's transaction)


def _room(row: Any) -> Room:
    room_id, name, kind, topic = row[:4]
    return Room(room_id, name, RoomKind(kind), topic)


def room_by_id(conn: sqlite3.Connection, room_id: str) -> Room | None:
    row = conn.execute(f"SELECT {_ROOM} FROM rooms r WHERE r.id = ?", [room_id]).fetchone()
    return None if row is None else _room(row)


def _existing(conn: sqlite3.Connection, room_id: str) -> Room:
    room = room_by_id(conn, room_id)
    if room is None:
        raise RoomRefused(UNKNOWN_ROOM, "no such room")
    return room


def insert_room(conn: sqlite3.Connection, room: Room, owner: str | None) -> Room:
    """Store ``room`` holding its name's keys, with ``owner`` (if any) as its
    owner; ``room_taken`` when another room holds one of the keys. A room
    already stored under this id is left as it is (an import run again)."""
    keys = room_name_keys(room.name)
    holders = conn.execute(
        "SELECT room_id FROM room_names WHERE key IN (SELECT value FROM json_each(?))",
        [json.dumps(keys)],
    ).fetchall()
    if any(holder != room.id for (holder,) in holders):
        raise RoomRefused(ROOM_TAKEN, f"a room named like {room.name!r} exists")
    conn.execute(
        "INSERT OR IGNORE INTO rooms (id, name, kind, topic, created) VALUES (?, ?, ?, ?, ?)",
        [room.id, room.name, room.kind.value, room.topic, now_ms()],
    )
    conn.executemany(
        "INSERT OR IGNORE INTO room_names (key, room_id) VALUES (?, ?)",
        [(key, room.id) for key in keys],
    )
    if owner is not None:
        put_member(conn, room.id, owner, Role.OWNER)
    return room


def put_member(conn: sqlite3.Connection, room_id: str, user_id: str, role: Role) -> None:
    """Record ``role`` for the user in the room (a member there from now)."""
    conn.execute(
        "INSERT INTO room_members (room_id, user_id, role) VALUES (?, ?, ?)"
        " ON CONFLICT (room_id, user_id) DO UPDATE SET role = excluded.role",
        [room_id, user_id, role.value],
    )


def _stored_role(conn: sqlite3.Connection, room_id: str, user_id: str) -> Role | None:
    row = conn.execute(
        "SELECT role FROM room_members WHERE room_id = ? AND user_id = ?", [room_id, user_id]
    ).fetchone()
    return None if row is None else Role(row[0])


def _role_of(conn: sqlite3.Connection, room_id: str, user_id: str) -> Role | None:
    role = _stored_role(conn, room_id, user_id)
    return Role.MEMBER if role is None and room_id == GENERAL else role


def _add_member(conn: sqlite3.Connection, room_id: str, user_id: str) -> bool:
    _existing(conn, room_id)
    if room_id == GENERAL:
        return False
    cursor = conn.execute(
        "INSERT OR IGNORE INTO room_members (room_id, user_id, role) VALUES (?, ?, 'member')",
        [room_id, user_id],
    )
    return cursor.rowcount == 1


def _remove_member(conn: sqlite3.Connection, room_id: str, user_id: str) -> bool:
    _existing(conn, room_id)
    conn.execute("DELETE FROM room_reads WHERE user_id = ? AND room_id = ?", [user_id, room_id])
    cursor = conn.execute(
        "DELETE FROM room_members WHERE room_id = ? AND user_id = ?", [room_id, user_id]
    )
    return cursor.rowcount == 1


def _set_role(conn: sqlite3.Connection, room_id: str, user_id: str, role: Role) -> Role:
    _existing(conn, room_id)
    old = _role_of(conn, room_id, user_id)
    if old is None:
        raise RoomRefused(NOT_MEMBER, "not a member of that room")
    if room_id == GENERAL and role is Role.MEMBER:
        conn.execute(
            "DELETE FROM room_members WHERE room_id = ? AND user_id = ?", [room_id, user_id]
        )
    else:
        put_member(conn, room_id, user_id, role)
    return old


def _members(conn: sqlite3.Connection, room_id: str) -> list[RoomMember]:
    _existing(conn, room_id)
    rows = conn.execute(
        f"SELECT m.user_id, m.role FROM room_members m WHERE m.room_id = ? ORDER BY {_ROLE_ORDER}",
        [room_id],
    ).fetchall()
    return [RoomMember(user_id, Role(role)) for user_id, role in rows]


def _rooms_of(conn: sqlite3.Connection, user_id: str) -> list[Membership]:
    rows = conn.execute(
        f"SELECT {_ROOM}, COALESCE(m.role, 'member'), COALESCE(rr.read_id, 0)"
        " FROM rooms r"
        " LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = :user"
        " LEFT JOIN room_reads rr ON rr.room_id = r.id AND rr.user_id = :user"
        " WHERE r.id = :general OR r.id IN (SELECT room_id FROM room_members WHERE user_id = :user)"
        " ORDER BY r.id != :general, r.seq",
        {"user": user_id, "general": GENERAL},
    ).fetchall()
    return [Membership(_room(row), Role(row[4]), row[5]) for row in rows]


def _listing(conn: sqlite3.Connection, viewer: str) -> list[ListedRoom]:
    """General's count is the users table's (the identities in this file)."""
    rows = conn.execute(
        f"SELECT {_ROOM}, CASE WHEN r.id = :general THEN (SELECT COUNT(*) FROM users)"
        " ELSE (SELECT COUNT(*) FROM room_members m WHERE m.room_id = r.id) END"
        " FROM rooms r WHERE r.kind = 'public'"
        " OR r.id IN (SELECT room_id FROM room_members WHERE user_id = :viewer)"
        " ORDER BY r.id != :general, r.seq",
        {"general": GENERAL, "viewer": viewer},
    ).fetchall()
    return [ListedRoom(_room(row), row[4]) for row in rows]


def _mark_read(conn: sqlite3.Connection, user_id: str, room_id: str, message_id: int) -> int:
    _existing(conn, room_id)
    if _role_of(conn, room_id, user_id) is None:
        raise RoomRefused(NOT_MEMBER, "not a member of that room")
    row = conn.execute(
        "INSERT INTO room_reads (user_id, room_id, read_id) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id, room_id) DO UPDATE SET read_id = MAX(read_id, excluded.read_id)"
        " RETURNING read_id",
        [user_id, room_id, message_id],
    ).fetchone()
    return int(row[0])


def mark_direct(conn: sqlite3.Connection, user_id: str, other_id: str, message_id: int) -> int:
    row = conn.execute(
        "INSERT INTO direct_reads (user_id, other_id, read_id) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id, other_id) DO UPDATE SET read_id = MAX(read_id, excluded.read_id)"
        " RETURNING read_id",
        [user_id, other_id, message_id],
    ).fetchone()
    return int(row[0])


def direct_markers(conn: sqlite3.Connection, user_id: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT other_id, read_id FROM direct_reads WHERE user_id = ?", [user_id]
    ).fetchall()
    return {other: read_id for other, read_id in rows}


# ----- what ``quartchat migrate`` copies, in pages (keyset order) -------------


def room_batch(conn: sqlite3.Connection, after_seq: int, limit: int) -> list[tuple[int, Room]]:
    """The next rooms in creation order after ``after_seq``, each with its seq."""
    rows = conn.execute(
        f"SELECT {_ROOM}, r.seq FROM rooms r WHERE r.seq > ? ORDER BY r.seq LIMIT ?",
        [after_seq, limit],
    ).fetchall()
    return [(row[4], _room(row)) for row in rows]


def member_batch(
    conn: sqlite3.Connection, after: tuple[str, str], limit: int
) -> list[tuple[str, str, Role]]:
    """The next ``(room id, user id, role)`` rows after ``after`` (a room id, a user id)."""
    rows = conn.execute(
        "SELECT room_id, user_id, role FROM room_members WHERE (room_id, user_id) > (?, ?)"
        " ORDER BY room_id, user_id LIMIT ?",
        [*after, limit],
    ).fetchall()
    return [(room_id, user_id, Role(role)) for room_id, user_id, role in rows]


def read_batch(
    conn: sqlite3.Connection, table: str, after: tuple[str, str], limit: int
) -> list[tuple[str, str, int]]:
    """The next ``(user id, room or other user's id, marker)`` rows of
    ``room_reads`` or ``direct_reads`` after ``after``."""
    column = {"room_reads": "room_id", "direct_reads": "other_id"}[table]
    return conn.execute(
        f"SELECT user_id, {column}, read_id FROM {table} WHERE (user_id, {column}) > (?, ?)"
        f" ORDER BY user_id, {column} LIMIT ?",
        [*after, limit],
    ).fetchall()
