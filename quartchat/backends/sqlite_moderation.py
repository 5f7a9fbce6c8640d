"""The embedded moderation board: sanctions, admins and the audit in the
chat's own SQLite file, beside the log and the rooms.

The tables are this module's (made with ``CREATE TABLE IF NOT EXISTS`` when
the board opens, see :meth:`SqliteModeration.open`), not the store's schema
versions: a chat made before moderation gains them on its first start, and
a store that never opens a board is left as it was.

- ``sanctions``: one row per mute or ban in force, keyed by kind, user and
  room (``''`` for none: a chat-wide mute, or a ban); ``until`` NULL for good.
- ``admins``: the users made admins with ``quartchat admin grant``.
- ``audit``: every moderation action, ids from ``AUTOINCREMENT`` so an id is
  never given twice, even after the newest record is gone. Not bounded:
  actions are few (each a person's decision) and small.

Every call runs on the store's threads under its limiters
(:meth:`~quartchat.store.AsyncStore.write` and ``read``), never on the
event loop. The functions below take a plain :class:`sqlite3.Connection`, so
another reader of the file can use the same queries.
"""

from __future__ import annotations

import sqlite3
from typing import Any, cast

import trio

from ..store import AsyncStore, now_ms
from .moderation import AuditAction, AuditEntry, AuditRecord, Sanction, SanctionKind
from .sqlite_calls import StoreCalls

#: The tables, each made only when missing (see the module doc).
TABLES = (
    "CREATE TABLE IF NOT EXISTS sanctions ("
    " kind TEXT NOT NULL CHECK (kind IN ('mute', 'ban')),"
    " user_id TEXT NOT NULL,"
    " room TEXT NOT NULL DEFAULT '',"
    " until INTEGER,"
    " imposed_by TEXT NOT NULL,"
    " PRIMARY KEY (kind, user_id, room)"
    ") WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS admins (user_id TEXT PRIMARY KEY) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS audit ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " ts INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " user_id TEXT,"
    " room TEXT,"
    " detail TEXT NOT NULL DEFAULT ''"
    ")",
)
TABLE_COUNT = len(TABLES)


class SqliteModeration:
    """:class:`~quartchat.backends.moderation.ModerationBoard` on the chat's SQLite store."""

    def __init__(self, store: AsyncStore) -> None:
        self.store = store
        self._calls = StoreCalls(store, "the moderation board")
        self._write = self._calls.write
        self._read = self._calls.read

    @classmethod
    async def open(cls, store: AsyncStore) -> SqliteModeration:
        """The board on ``store``, its tables made if the file has none yet
        (looked for first: a chat that has them costs no write at start)."""
        board = cls(store)
        if await board._read(_tables_missing):
            await board._write(create_tables)
        return board

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Nothing in the background: ended sanctions go as they are met."""
        task_status.started()
        await trio.sleep_forever()

    async def aclose(self) -> None:
        """Refuse new calls, wait for those running (the store is the log's
        to close, after this)."""
        await self._calls.aclose()

    async def impose(self, sanction: Sanction) -> None:
        check_sanction(sanction)
        now = now_ms()
        await self._write(lambda conn: impose(conn, sanction, now))

    async def in_force(self, now_ms: int) -> list[Sanction]:
        held = await self._read(_all_sanctions)
        ended = [s for s in held if not s.in_force(now_ms)]
        if ended:
            await self._write(lambda conn: _drop_ended(conn, now_ms))
        return [s for s in held if s.in_force(now_ms)]

    async def ban_of(self, user_id: str, now_ms: int) -> Sanction | None:
        ban = await self._read(lambda conn: _ban(conn, user_id))
        return ban if ban is not None and ban.in_force(now_ms) else None

    async def set_admin(self, user_id: str, admin: bool) -> bool:
        return await self._write(lambda conn: set_admin(conn, user_id, admin))

    async def admins(self) -> list[str]:
        return await self._read(admins)

    async def record(self, entry: AuditEntry) -> AuditRecord:
        return await self._write(lambda conn: record(conn, entry))

    async def audit(self, before_id: int | None, limit: int) -> list[AuditRecord]:
        if limit <= 0:
            return []
        return await self._read(lambda conn: audit_page(conn, before_id, limit))


def check_sanction(sanction: Sanction) -> None:
    """A ban is chat-wide: one given a room is a caller's mistake, refused
    rather than stored where :meth:`ban_of` would never look."""
    if sanction.kind == "ban" and sanction.room is not None:
        raise ValueError("a ban has no room")


# ----- the queries (a connection each; writes inside the caller's transaction)


def _tables_missing(conn: sqlite3.Connection) -> bool:
    found = conn.execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
        " AND name IN ('sanctions', 'admins', 'audit')"
    ).fetchone()[0]
    return bool(found < TABLE_COUNT)


def create_tables(conn: sqlite3.Connection) -> None:
    for statement in TABLES:
        conn.execute(statement)


def _sanction(row: Any) -> Sanction:
    kind, user_id, room, until, by = row
    return Sanction(cast(SanctionKind, kind), user_id, room or None, until, by)


def impose(conn: sqlite3.Connection, sanction: Sanction, now: int) -> None:
    """Replace the sanction of the same kind, user and room; one already
    ended at ``now`` only takes the old one away."""
    key = [sanction.kind, sanction.user, sanction.room or ""]
    if not sanction.in_force(now):
        conn.execute("DELETE FROM sanctions WHERE kind = ? AND user_id = ? AND room = ?", key)
        return
    conn.execute(
        "INSERT INTO sanctions (kind, user_id, room, until, imposed_by) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (kind, user_id, room)"
        " DO UPDATE SET until = excluded.until, imposed_by = excluded.imposed_by",
        [*key, sanction.until, sanction.by],
    )


def _all_sanctions(conn: sqlite3.Connection) -> list[Sanction]:
    """Every stored sanction, ended or not, in the seam's order (``''``,
    no room, sorts first)."""
    rows = conn.execute(
        "SELECT kind, user_id, room, until, imposed_by FROM sanctions ORDER BY kind, user_id, room"
    ).fetchall()
    return [_sanction(row) for row in rows]


def _drop_ended(conn: sqlite3.Connection, now: int) -> None:
    conn.execute("DELETE FROM sanctions WHERE until IS NOT NULL AND until <= ?", [now])


def _ban(conn: sqlite3.Connection, user_id: str) -> Sanction | None:
    row = conn.execute(
        "SELECT kind, user_id, room, until, imposed_by FROM sanctions"
        " WHERE kind = 'ban' AND user_id = ? AND room = ''",
        [user_id],
    ).fetchone()
    return None if row is None else _sanction(row)


def set_admin(conn: sqlite3.Connection, user_id: str, admin: bool) -> bool:
    if admin:
        cursor = conn.execute("INSERT OR IGNORE INTO admins (user_id) VALUES (?)", [user_id])
    else:
        cursor = conn.execute("DELETE FROM admins WHERE user_id = ?", [user_id])
    return cursor.rowcount == 1


def admins(conn: sqlite3.Connection) -> list[str]:
    return [user_id for (user_id,) in conn.execute("SELECT user_id FROM admins ORDER BY user_id")]


def record(conn: sqlite3.Connection, entry: AuditEntry) -> AuditRecord:
    (record_id,) = conn.execute(
        "INSERT INTO audit (ts, actor, action, user_id, room, detail)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        [entry.ts, entry.actor, entry.action, entry.user, entry.room, entry.detail],
    ).fetchone()
    return AuditRecord(int(record_id), entry)


def audit_page(conn: sqlite3.Connection, before_id: int | None, limit: int) -> list[AuditRecord]:
    """Up to ``limit`` records below ``before_id`` (all when None), newest first."""
    rows = conn.execute(
        "SELECT id, actor, action, user_id, room, detail, ts FROM audit"
        " WHERE id < ? ORDER BY id DESC LIMIT ?",
        [_NO_BOUND if before_id is None else min(before_id, _NO_BOUND), min(limit, _NO_BOUND)],
    ).fetchall()
    return [
        AuditRecord(record_id, AuditEntry(actor, cast(AuditAction, action), user, room, detail, ts))
        for record_id, actor, action, user, room, detail, ts in rows
    ]


#: Above every id SQLite gives (a signed 64-bit integer).
_NO_BOUND = 2**63 - 1
