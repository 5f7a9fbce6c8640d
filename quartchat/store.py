"""The SQLite log of record (through sqlite-utils), and its thread discipline.

:class:`Store` is synchronous and must only run on worker threads. One writer
connection does every write; reads use a small pool of their own connections,
so WAL lets replays and history pages run while a batch commits.
:class:`AsyncStore` is what Trio code calls: each method hops to a worker
thread with ``trio.to_thread.run_sync`` under a limiter (one thread for
writes, ``READERS`` for reads), so SQLite never blocks the event loop.

The WAL is kept small (see :data:`WAL_CHECKPOINT_BYTES`), so a disk that
filled up and had space freed gets writes back instead of the WAL taking the
freed space. A failing write is logged once per kind per second (see
:data:`FAILURE_LINES`), not once per caller, and
:meth:`AsyncStore.check_writes` says whether writes fail (``/healthz``).

Schema versions live in ``PRAGMA user_version``; :func:`migrate` brings any
older file (including the Socket.IO tutorial's ``chat.db``) up to date and is
safe to run on every start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import secrets
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils
import trio

from .errors import StoreError
from .log_limits import limit
from .models import GENERAL, Draft, Kind, Message, Posted, RoomKind, User
from .text import nick_keys

T = TypeVar("T")

log = logging.getLogger(__name__)
#: One line per kind per second (a kind is a line's text before the path): a
#: full disk fails every send, and a line each would fill the log.
FAILURE_LINES = limit(log)

SCHEMA_VERSION = 5
READERS = 4
#: Seconds a connection waits for another process's write lock.
BUSY_TIMEOUT_MS = 10_000
#: The WAL's bound, in bytes. A write that leaves the ``-wal`` file larger
#: runs a PASSIVE checkpoint (it copies into the database file what no reader
#: still needs, and never waits); the write after it starts the WAL again from
#: its top, and SQLite then cuts the file back to this size
#: (``journal_size_limit``). So the WAL takes about this much disk plus one
#: batch. SQLite's own default, a checkpoint at 1000 pages (4 MiB) and a file
#: never cut back, let a single-message commit (about 16 KB of WAL) take every
#: byte freed on a full 2 MiB disk within a second, and writes never resumed.
#: Each checkpoint costs the writer two fsyncs: at 256 KiB, closed-loop ingest
#: (``bench.py --ingest``) acked about 14% fewer messages than with no bound;
#: at 1 MiB it is within the runs' spread of that.
WAL_CHECKPOINT_BYTES = 1024 * 1024
#: Milliseconds a TRUNCATE checkpoint after a delete (:meth:`WalBound.fold`)
#: waits for readers on an older snapshot before giving up for now; it holds
#: the writer meanwhile, so sends wait no longer than this for it.
FOLD_BUSY_MS = 50
#: Seconds between two probe writes of :meth:`AsyncStore.check_writes` while
#: writes fail: health checks cannot make it commit more often than this.
WRITE_PROBE_INTERVAL = 1.0
#: Free bytes the database's disk must have for a probe write to be tried
#: (see :meth:`WalBound.probe_write`): room for the WAL to reach its bound. A
#: probe commits one page and a message several, so on a nearly full disk the
#: probe alone could succeed, and health would say yes while sends still fail.
PROBE_FREE_BYTES = WAL_CHECKPOINT_BYTES
#: Errors about one row's own values (a string that is not valid Unicode, a
#: broken constraint): they fail that message, never the batch it came in.
_REFUSED_ROW = (sqlite3.IntegrityError, sqlite3.DataError, ValueError, OverflowError)

MESSAGE_COLUMNS = (
    "m.id, m.sender, m.nick, m.recipient, m.recipient_nick, m.text, m.ts, m.room, m.mentions,"
    " m.kind, m.target, m.edited_ts, m.deleted, m.by_user, m.by_nick"
)
#: How ``messages.kind`` stores a :class:`~quartchat.models.Kind` (its index here).
_KINDS = (Kind.MESSAGE, Kind.EDIT, Kind.DELETE)
#: What a history page adds to each arm: messages only, no edit or delete entry.
_MESSAGES_ONLY = " AND m.kind = 0"
#: A page (replay or history) reads the messages in one id range of a few
#: "arms", each one indexed range: a room (``messages_by_room``), the
#: private messages to the viewer (``recipient``), those the viewer sent
#: (``messages_private_by_sender``), or one direction of one private
#: conversation (``messages_private_pairs``). The arms are joined by UNION
#: ALL under one ``ORDER BY id DESC LIMIT``: SQLite merges them (MERGE
#: (UNION ALL), no sort) and stops at the limit, so a page reads at most
#: ``limit + 1`` rows of each arm and never another room's traffic.
_RANGE = "m.id > :after AND m.id < :before"
_IN_ROOM = "SELECT {columns} FROM messages m WHERE m.room = :room{i} AND " + _RANGE
_TO_VIEWER = f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.recipient = :viewer AND {_RANGE}"
# A message to oneself is the arm above's; this arm has the ones to others.
_FROM_VIEWER = (
    f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.sender = :viewer AND m.recipient IS NOT NULL"
    f" AND m.recipient <> :viewer AND {_RANGE}"
)
_FROM_OTHER = (
    f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.recipient = :viewer AND m.sender = :other"
    f" AND {_RANGE}"
)
_TO_OTHER = (
    f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.recipient = :other AND m.sender = :viewer"
    f" AND {_RANGE}"
)
#: Arms per statement: SQLite allows 500 SELECTs in one compound. A user in
#: more rooms than this has their page read in several statements, merged here.
MAX_ARMS = 200
#: Where every unread and mention count stops: a count of this means "this
#: many or more". Each count reads at most this many index entries (plus the
#: viewer's own messages in the range, for unread), so a user back after a
#: busy month costs no more than one back after a busy hour.
UNREAD_CAP = 999
#: The id above every message: the upper end of a page with no ``before_id``.
_NO_BOUND = 2**63 - 1


#: How the ``token_hash`` of a user without a token starts: never a hash.
_NO_TOKEN = "none:"


def hash_token(token: str) -> str:
    """Tokens are stored only as this hash."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def connect(path: Path | str) -> sqlite_utils.Database:
    """A connection with the pragmas every quartchat connection uses."""
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    db = sqlite_utils.Database(conn)
    _pragma(db, f"busy_timeout = {BUSY_TIMEOUT_MS}")
    # FULL makes an acked message survive power loss, not just a crash;
    # batched commits keep its fsync cost per batch, not per message.
    _pragma(db, "synchronous = FULL")
    _pragma(db, "foreign_keys = ON")
    _pragma(db, f"journal_size_limit = {WAL_CHECKPOINT_BYTES}")
    # A deleted message's text is overwritten where it lay (its cell, a freed
    # overflow page), not only unlinked: with the WAL folded in (see
    # :meth:`WalBound.fold`), no byte of the file holds it any more.
    _pragma(db, "secure_delete = ON")
    return db


def _pragma(db: sqlite_utils.Database, statement: str) -> Any:
    """Run a PRAGMA to completion (a half-read one blocks later savepoints)."""
    rows = db.conn.execute(f"PRAGMA {statement}").fetchall()
    return rows[0][0] if rows else None


def migrate(db: sqlite_utils.Database) -> str:
    """Create or upgrade the schema; return this database's epoch.

    A database already at this version is only read, so starting a server
    on it writes nothing."""
    db.enable_wal()  # a no-op on a file already in WAL mode
    version = _pragma(db, "user_version")
    if version > SCHEMA_VERSION:
        raise StoreError(f"database schema {version} is newer than this server ({SCHEMA_VERSION})")
    if version < SCHEMA_VERSION:
        with db.atomic():
            if version < 1:
                _create_v1(db)
            if version < 2:
                _create_v2(db)
            if version < 3:
                _create_v3(db)
            if version < 4:
                _create_v4(db)
            if version < 5:
                _create_v5(db)
            if _epoch(db) is None:
                db.table("meta").insert({"key": "epoch", "value": secrets.token_hex(8)})
            _pragma(db, f"user_version = {SCHEMA_VERSION}")
    epoch = _epoch(db)
    if epoch is None:
        raise StoreError("database has no epoch: it was not made by quartchat")
    return epoch


def _epoch(db: sqlite_utils.Database) -> str | None:
    row = _one(db.execute("SELECT value FROM meta WHERE key = 'epoch'"))
    return None if row is None else str(row[0])


def _check_writable(db: sqlite_utils.Database) -> None:
    """Refuse a file this process can read but not write: a chat server must
    store what it acks. SQLite itself answers, through a write rolled back."""
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        _pragma(db, f"user_version = {SCHEMA_VERSION}")
    finally:
        db.conn.execute("ROLLBACK")


def _create_v1(db: sqlite_utils.Database) -> None:
    tutorial = "messages" in db.table_names() and "content" in db.table("messages").columns_dict
    if tutorial:
        db.execute("ALTER TABLE messages RENAME TO tutorial_messages")
    db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
    db.table("users").create(
        {"id": str, "nick": str, "token_hash": str, "created": int},
        pk="id",
        not_null={"nick", "token_hash", "created"},
        if_not_exists=True,
    )
    db.table("users").create_index(["token_hash"], unique=True, if_not_exists=True)
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            sender TEXT NOT NULL REFERENCES users(id),
            nick TEXT NOT NULL,
            recipient TEXT REFERENCES users(id),
            recipient_nick TEXT,
            text TEXT NOT NULL,
            ts INTEGER NOT NULL,
            client_offset TEXT NOT NULL,
            UNIQUE (sender, client_offset)
        )
        """
    )
    db.table("messages").create_index(["recipient", "id"], if_not_exists=True)
    if tutorial:
        _import_tutorial(db)


#: The tables of schema 2, one statement each (``executescript`` would
#: commit the migration's transaction half-way).
_V2_TABLES = (
    """CREATE TABLE IF NOT EXISTS rooms (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('public', 'private')),
        topic TEXT NOT NULL,
        created INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS room_names (
        key TEXT PRIMARY KEY,
        room_id TEXT NOT NULL REFERENCES rooms(id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS room_members (
        room_id TEXT NOT NULL REFERENCES rooms(id),
        user_id TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('owner', 'moderator', 'member')),
        PRIMARY KEY (room_id, user_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS room_members_by_user ON room_members (user_id, room_id)",
    """CREATE TABLE IF NOT EXISTS room_reads (
        user_id TEXT NOT NULL,
        room_id TEXT NOT NULL REFERENCES rooms(id),
        read_id INTEGER NOT NULL,
        PRIMARY KEY (user_id, room_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS direct_reads (
        user_id TEXT NOT NULL,
        other_id TEXT NOT NULL,
        read_id INTEGER NOT NULL,
        PRIMARY KEY (user_id, other_id)
    ) WITHOUT ROWID""",
)


def _create_v2(db: sqlite_utils.Database) -> None:
    """Rooms (issue 21): the rooms, the name keys they hold, their members
    with roles, and read markers per user and room or private conversation.
    Idempotent (a file part-way there is finished). The room ``general`` is
    created here, holding its name; every user is in it without a row (a
    row there only records a role above ``member``). No foreign key names a
    user: pruning silent users must not fail on their memberships. The
    queries on these tables are :mod:`quartchat.backends.sqlite_rooms`'s."""
    for statement in _V2_TABLES:
        db.execute(statement)
    db.execute(
        "INSERT OR IGNORE INTO rooms (id, name, kind, topic, created) VALUES (?, ?, ?, '', ?)",
        [GENERAL, GENERAL, RoomKind.PUBLIC.value, now_ms()],
    )
    db.conn.executemany(
        "INSERT OR IGNORE INTO room_names (key, room_id) VALUES (?, ?)",
        [(key, GENERAL) for key in sorted(nick_keys(GENERAL))],
    )


#: The indexes and table of schema 3 (see :func:`_create_v3`).
_V3_STATEMENTS = (
    # Partial: a private message (room NULL) takes no entry. ``sender`` is in
    # it so an unread count ("from others") reads the index alone.
    "CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room, id, sender)"
    " WHERE room IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS messages_private_by_sender ON messages (sender, id)"
    " WHERE recipient IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS messages_private_pairs ON messages (recipient, sender, id)"
    " WHERE recipient IS NOT NULL",
    # A public row written without a room (by a tool writing SQL of schema
    # 1 or 2: a seed script, a test's fixture) is general's, as it was then.
    # quartchat's own inserts always name the room, so this costs them only
    # the WHEN test.
    f"""CREATE TRIGGER IF NOT EXISTS messages_public_default_general AFTER INSERT ON messages
    WHEN NEW.room IS NULL AND NEW.recipient IS NULL BEGIN
        UPDATE messages SET room = '{GENERAL}' WHERE id = NEW.id;
    END""",
    """CREATE TABLE IF NOT EXISTS mentions (
        user_id TEXT NOT NULL,
        room TEXT NOT NULL,
        message_id INTEGER NOT NULL,
        PRIMARY KEY (user_id, room, message_id)
    ) WITHOUT ROWID""",
)


def _create_v3(db: sqlite_utils.Database) -> None:
    """Messages in rooms (issue 21): each message's ``room`` (every public
    message so far is ``general``'s; a private one has none) and its
    ``mentions`` (a JSON list of user ids, NULL for none); the indexes a
    page reads one room, or one side of the private messages, by; and the
    ``mentions`` table, by the user mentioned, for mention counts. The table
    holds mentions in rooms of someone other than the sender (the ones a
    count can find); the message keeps every mention as given. Idempotent."""
    columns = db.table("messages").columns_dict
    for column in ("room", "mentions"):
        if column not in columns:
            db.execute(f"ALTER TABLE messages ADD COLUMN {column} TEXT")
    db.execute("UPDATE messages SET room = ? WHERE recipient IS NULL AND room IS NULL", [GENERAL])
    for statement in _V3_STATEMENTS:
        db.execute(statement)


def _create_v4(db: sqlite_utils.Database) -> None:
    """Logins vouched for by a JWT (issue 22): each user's ``subject`` (the
    ``sub`` of the deployment's account; NULL for an anonymous identity),
    unique, so one account is one user on every start. Idempotent."""
    if "subject" not in db.table("users").columns_dict:
        db.execute("ALTER TABLE users ADD COLUMN subject TEXT")
    # Partial: the anonymous identities, most rows, take no entry.
    db.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS users_by_subject ON users (subject)"
        " WHERE subject IS NOT NULL"
    )


#: The columns schema 5 adds to ``messages`` (see :func:`_create_v5`).
_V5_COLUMNS = (
    ("kind", "INTEGER NOT NULL DEFAULT 0"),
    ("target", "INTEGER"),
    ("edited_ts", "INTEGER"),
    ("deleted", "INTEGER NOT NULL DEFAULT 0"),
    ("by_user", "TEXT"),
    ("by_nick", "TEXT"),
)
#: Schema 3's indexes as schema 5 has them: with ``kind`` and ``deleted``,
#: so an unread count (messages only, none deleted) still reads the index alone.
_V5_INDEXES = {
    "messages_by_room": "ON messages (room, id, sender, kind, deleted) WHERE room IS NOT NULL",
    "messages_private_pairs": "ON messages (recipient, sender, id, kind, deleted)"
    " WHERE recipient IS NOT NULL",
}


def _create_v5(db: sqlite_utils.Database) -> None:
    """Edits and deletes as entries of the log (issue 22). Each row gains its
    ``kind`` (0 a message, 1 an edit, 2 a delete: the index in
    :data:`_KINDS`), the ``target`` message an entry changes (NULL for a
    message), a message's ``edited_ts`` and ``deleted`` (as it is now), and
    who deleted (``by_user``, ``by_nick``, on a delete entry). An entry has
    its target's room and recipient, so the indexes a page reads by show it
    to whoever may see its target. ``messages_by_target`` finds a message's
    edits when it is deleted. Every row so far is a message. Adding columns
    rewrites no row; the two indexes are rebuilt once. Idempotent."""
    columns = db.table("messages").columns_dict
    for column, definition in _V5_COLUMNS:
        if column not in columns:
            db.execute(f"ALTER TABLE messages ADD COLUMN {column} {definition}")
    for name, definition in _V5_INDEXES.items():
        indexed = [row[2] for row in db.execute(f"PRAGMA index_info({name})").fetchall()]
        if "kind" not in indexed:
            _drop_index(db, name)
            db.execute(f"CREATE INDEX {name} {definition}")
    db.execute(
        "CREATE INDEX IF NOT EXISTS messages_by_target ON messages (target)"
        " WHERE target IS NOT NULL"
    )


def _drop_index(db: sqlite_utils.Database, name: str) -> None:
    """Drop an index without zeroing its pages: an index of ids holds no
    text, and zeroing a large one would write it all again (into the WAL)."""
    secure = _pragma(db, "secure_delete")
    _pragma(db, "secure_delete = OFF")
    try:
        db.execute(f"DROP INDEX IF EXISTS {name}")
    finally:
        _pragma(db, f"secure_delete = {secure}")


def _import_tutorial(db: sqlite_utils.Database) -> None:
    """Keep the tutorial's messages (ids included) under one 'tutorial' user."""
    legacy = "u-tutorial"
    db.table("users").insert(
        {
            "id": legacy,
            "nick": "tutorial",
            "token_hash": secrets.token_hex(32),
            "created": now_ms(),
        },
        ignore=True,
    )
    db.execute(
        "INSERT INTO messages (id, sender, nick, text, ts, client_offset)"
        " SELECT id, ?, 'tutorial', COALESCE(content, ''), ?,"
        " COALESCE(client_offset, 'tutorial-' || id)"
        " FROM tutorial_messages ORDER BY id",
        [legacy, now_ms()],
    )
    db.execute("DROP TABLE tutorial_messages")


def _one(cursor: sqlite3.Cursor) -> Any:
    """The first row, with the statement run to its end (RETURNING included),
    so no statement is left open across a COMMIT."""
    rows = cursor.fetchall()
    return rows[0] if rows else None


def row_to_message(row: Sequence[Any]) -> Message:
    """A row of :data:`MESSAGE_COLUMNS` as a message (or an edit or delete entry)."""
    msg_id, sender, nick, recipient, recipient_nick, text, ts, room, mentions = row[:9]
    kind, target, edited_ts, deleted, by_user, by_nick = row[9:]
    return Message(
        id=msg_id,
        sender=User(sender, nick),
        recipient=None if recipient is None else User(recipient, recipient_nick),
        text=text,
        ts=ts,
        room=room if recipient is None else None,
        mentions=() if mentions is None else tuple(json.loads(mentions)),
        kind=_KINDS[kind],
        target=target or 0,
        edited_ts=edited_ts,
        deleted=bool(deleted),
        by=None if by_user is None else User(by_user, by_nick),
    )


#: How a part of the store borrows a reader connection (:meth:`Store._reader`).
Readers = Callable[[], AbstractContextManager[sqlite_utils.Database]]


class Store:
    """Synchronous access to one SQLite file. Worker threads only.

    The store owns the connections (one writer, a pool of readers) and hands
    them to its parts, one job each: :class:`WalBound` keeps the WAL small,
    :class:`UserRows` keeps the identities, :class:`MessageRows` the
    messages (with :class:`ChangeRows`, their edits and deletes). Its own
    methods are theirs, so callers need know only it."""

    def __init__(self, path: Path | str) -> None:
        """Open (creating or migrating) the file; :class:`StoreError` names the
        file and the cause when it cannot be used."""
        self.path = Path(path)
        try:
            self._writer = connect(self.path)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from exc
        try:
            self.epoch = migrate(self._writer)
            _check_writable(self._writer)
        except (sqlite3.Error, StoreError) as exc:
            self._writer.close()
            raise StoreError(f"cannot use database {self.path}: {exc}") from exc
        self._readers: queue.SimpleQueue[sqlite_utils.Database] = queue.SimpleQueue()
        self._all = [self._writer]
        self.wal = WalBound(self._writer, self.path)
        self.users = UserRows(self._writer, self._reader, self.wal)
        self.messages = MessageRows(self._writer, self._reader, self.wal)

    def close(self) -> None:
        """Fold the WAL into the database file, then close every connection:
        after a clean stop the file alone holds every message (a backup may
        copy just it).

        When the checkpoint fails (a full disk: the database file cannot
        grow), every connection is still closed, and :class:`StoreError` says
        why. Nothing is lost: the WAL keeps every committed message, and the
        next open reads it."""
        try:
            _pragma(self._writer, "wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            failed: sqlite3.Error | None = exc
        else:
            failed = None
        for db in self._all:
            db.close()
        if failed is not None:
            raise StoreError(
                f"cannot use database {self.path}: {failed} (its WAL could not be folded"
                f" into it; {self.wal.file.name} keeps every committed message)"
            ) from failed

    @contextmanager
    def _reader(self) -> Iterator[sqlite_utils.Database]:
        try:
            db = self._readers.get_nowait()
        except queue.Empty:
            db = connect(self.path)
            self._all.append(db)
        try:
            yield db
        finally:
            self._readers.put(db)

    # ----- users (see UserRows) ------------------------------------------

    def create_user(self, nick: str) -> tuple[User, str]:
        """A new identity; returns it and its secret token (stored only hashed)."""
        return self.users.create_users([nick])[0]

    def create_users(self, nicks: Sequence[str]) -> list[tuple[User, str]]:
        return self.users.create_users(nicks)

    def user_by_token(self, token: str) -> User | None:
        return self.users.user_by_token(token)

    def get_user(self, user_id: str) -> User | None:
        return self.users.get_user(user_id)

    def set_nick(self, user_id: str, nick: str) -> None:
        self.users.set_nick(user_id, nick)

    def user_by_subject(self, subject: str) -> User | None:
        return self.users.user_by_subject(subject)

    def user_for_subject(self, subject: str, nick: str) -> User:
        return self.users.user_for_subject(subject, nick)

    def prune_silent_users(self, created_before: int, keep: Collection[str]) -> int:
        return self.users.prune_silent_users(created_before, keep)

    # ----- messages (see MessageRows) ------------------------------------

    def insert(self, drafts: Iterable[Draft]) -> list[Posted | StoreError | None]:
        return self.messages.insert(drafts)

    def get(self, message_id: int) -> Message | None:
        return self.messages.get(message_id)

    def delete(self, target: int, by: User) -> Message | None:
        return self.messages.changes.delete(target, by)

    def fold_wal(self) -> bool:
        return self.wal.fold()

    def last_id(self) -> int:
        return self.messages.last_id()

    def replay(
        self,
        viewer: str,
        after_id: int | None,
        limit: int,
        rooms: Collection[str] = (GENERAL,),
    ) -> tuple[list[Message], int, bool]:
        return self.messages.replay(viewer, after_id, limit, rooms)

    def history(
        self,
        viewer: str,
        before_id: int | None,
        limit: int,
        with_user: str | None = None,
        room: str | None = None,
    ) -> tuple[list[Message], bool]:
        return self.messages.history(viewer, before_id, limit, with_user, room)

    def unread(
        self, viewer: str, rooms: Mapping[str, int], direct: Mapping[str, int]
    ) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
        return self.messages.unread(viewer, rooms, direct)

    def committed_after(self, after_id: int, limit: int) -> list[Message]:
        return self.messages.committed_after(after_id, limit)


class WalBound:
    """Keeps the WAL near :data:`WAL_CHECKPOINT_BYTES`, so a disk that filled
    up and had space freed gets writes back; and the probe write that finds
    out whether writes succeed again. Every write on ``writer`` calls
    :meth:`after_commit` once it has committed."""

    def __init__(self, writer: sqlite_utils.Database, path: Path) -> None:
        self._writer = writer
        self._path = path
        #: The ``-wal`` file beside the database.
        self.file = path.with_name(path.name + "-wal")
        #: Why the last write's checkpoint failed (the write itself committed),
        #: or None: see :meth:`after_commit`.
        self.checkpoint_failure: sqlite3.Error | None = None

    def after_commit(self) -> None:
        """After a commit: checkpoint the WAL once it passes
        :data:`WAL_CHECKPOINT_BYTES`. A checkpoint that fails leaves the
        committed write as it is and its cause in :attr:`checkpoint_failure`."""
        self.checkpoint_failure = None
        try:
            size = self.file.stat().st_size
        except OSError:
            return
        if size <= WAL_CHECKPOINT_BYTES:
            return
        try:
            _pragma(self._writer, "wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            self.checkpoint_failure = exc

    def fold(self) -> bool:
        """Fold the whole WAL into the database file and cut it to nothing (a
        TRUNCATE checkpoint), so no frame still holds a page as it was before
        a delete wiped a text (see :func:`connect`'s ``secure_delete``).
        Waits at most :data:`FOLD_BUSY_MS` for readers on an older snapshot;
        False when they kept it from finishing (call again shortly)."""
        _pragma(self._writer, f"busy_timeout = {FOLD_BUSY_MS}")
        try:
            blocked = _pragma(self._writer, "wal_checkpoint(TRUNCATE)")
        finally:
            _pragma(self._writer, f"busy_timeout = {BUSY_TIMEOUT_MS}")
        return not blocked

    def probe_write(self) -> None:
        """Commit a small change (the time of this probe, in ``meta``), then
        bound the WAL, as a message's commit does; first make sure the disk
        has :data:`PROBE_FREE_BYTES` free (:class:`StoreError` if not)."""
        free = _free_bytes(self._path.parent)
        if free < PROBE_FREE_BYTES:
            raise StoreError(f"{free} bytes free beside {self._path}")
        with self._writer.atomic():
            self._writer.execute(
                "INSERT INTO meta (key, value) VALUES ('write_probe', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [str(now_ms())],
            )
        self.after_commit()


class UserRows:
    """The identities (the :class:`~quartchat.backends.base.Identities`
    seam's rows): users, their nicks and their tokens' hashes."""

    def __init__(self, writer: sqlite_utils.Database, readers: Readers, wal: WalBound) -> None:
        self._writer = writer
        self._reader = readers
        self._wal = wal

    def create_users(self, nicks: Sequence[str]) -> list[tuple[User, str]]:
        """New identities in one transaction, so one commit (one fsync) serves
        them all; each with its secret token (stored only hashed), in order."""
        created = now_ms()
        made: list[tuple[User, str]] = []
        rows = []
        for nick in nicks:
            token = secrets.token_urlsafe(32)
            user = User(id="u" + secrets.token_hex(8), nick=nick)
            made.append((user, token))
            rows.append((user.id, nick, hash_token(token), created))
        with self._writer.atomic():
            self._writer.conn.executemany(
                "INSERT INTO users (id, nick, token_hash, created) VALUES (?, ?, ?, ?)", rows
            )
        self._wal.after_commit()
        return made

    def user_by_token(self, token: str) -> User | None:
        with self._reader() as db:
            row = _one(
                db.execute("SELECT id, nick FROM users WHERE token_hash = ?", [hash_token(token)])
            )
        return None if row is None else User(row[0], row[1])

    def get_user(self, user_id: str) -> User | None:
        with self._reader() as db:
            row = _one(db.execute("SELECT id, nick FROM users WHERE id = ?", [user_id]))
        return None if row is None else User(row[0], row[1])

    def set_nick(self, user_id: str, nick: str) -> None:
        with self._writer.atomic():
            self._writer.execute("UPDATE users SET nick = ? WHERE id = ?", [nick, user_id])
        self._wal.after_commit()

    def user_by_subject(self, subject: str) -> User | None:
        """The user of a deployment's account, if it logged in before."""
        with self._reader() as db:
            row = _one(db.execute("SELECT id, nick FROM users WHERE subject = ?", [subject]))
        return None if row is None else User(row[0], row[1])

    def user_for_subject(self, subject: str, nick: str) -> User:
        """The user of a deployment's account, made with ``nick`` if it is
        new. Such a user has no token: its ``token_hash`` is a value no
        token hashes to (a SHA-256 is hex digits only)."""
        user_id, no_token = "u" + secrets.token_hex(8), _NO_TOKEN + secrets.token_hex(16)
        with self._writer.atomic():
            self._writer.execute(
                "INSERT INTO users (id, nick, token_hash, created, subject)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (subject) WHERE subject IS NOT NULL DO NOTHING",
                [user_id, nick, no_token, now_ms(), subject],
            )
            row = _one(
                self._writer.execute("SELECT id, nick FROM users WHERE subject = ?", [subject])
            )
        self._wal.after_commit()
        return User(row[0], row[1])

    def prune_silent_users(self, created_before: int, keep: Collection[str]) -> int:
        """Delete users created before ``created_before`` (ms) who never sent
        a message nor got a private one nor joined a room, except ``keep``
        (those online). A deployment's account (a user with a subject) is
        never pruned: its id must stay the one its ``sub`` maps to.
        Returns how many went. Their token then closes with 4003."""
        with self._writer.atomic():
            cursor = self._writer.execute(
                "DELETE FROM users WHERE created < ?"
                " AND NOT EXISTS (SELECT 1 FROM messages WHERE sender = users.id)"
                " AND NOT EXISTS (SELECT 1 FROM messages WHERE recipient = users.id)"
                " AND NOT EXISTS (SELECT 1 FROM room_members WHERE user_id = users.id)"
                " AND subject IS NULL"
                " AND id NOT IN (SELECT value FROM json_each(?))",
                [created_before, json.dumps(list(keep))],
            )
        self._wal.after_commit()
        return int(cursor.rowcount)


class MessageRows:
    """The messages: storing a batch, and the reads by room and private
    conversation (pages, unread counts, what a tail re-reads)."""

    def __init__(self, writer: sqlite_utils.Database, readers: Readers, wal: WalBound) -> None:
        self._writer = writer
        self._reader = readers
        self._wal = wal
        self.changes = ChangeRows(writer, wal)

    def insert(self, drafts: Iterable[Draft]) -> list[Posted | StoreError | None]:
        """Store drafts in one transaction; a known ``(sender, client_offset)``
        gives back the original message, marked ``duplicate``. A draft with a
        ``target`` is an edit (see :meth:`ChangeRows.edit`): None in its place
        when its target is not a live message of its sender's.

        A row SQLite refuses (a value it cannot take, a broken constraint)
        fails that draft alone, as a :class:`StoreError` in its place: SQLite
        backs out only the failed statement and the transaction goes on, so
        the others still commit, with no savepoint per draft. Any other error
        (locked, disk full) fails the whole batch.
        """
        ts = now_ms()
        out: list[Posted | StoreError | None] = []
        with self._writer.atomic():
            for d in drafts:
                try:
                    out.append(self._insert_one(d, ts))
                except _REFUSED_ROW as exc:
                    refused = StoreError("the message could not be stored")
                    refused.__cause__ = exc
                    out.append(refused)
        self._wal.after_commit()
        return out

    def _insert_one(self, d: Draft, ts: int) -> Posted | None:
        # Looked up first rather than left to ON CONFLICT: a conflicting
        # INSERT on an AUTOINCREMENT key still spends an id, so retries would
        # leave gaps in the ids. A retried edit is found here too, before its
        # target is checked: it was stored, whatever became of the target.
        conn = self._writer.conn
        old = _one(
            conn.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages m"
                " WHERE m.sender = ? AND m.client_offset = ?",
                [d.sender.id, d.client_offset],
            )
        )
        if old is not None:
            return Posted(row_to_message(old), duplicate=True)
        if d.target > 0:
            return self.changes.edit(d, ts)
        to_id = None if d.recipient is None else d.recipient.id
        to_nick = None if d.recipient is None else d.recipient.nick
        mentions = json.dumps(list(d.mentions)) if d.mentions else None
        row = _one(
            conn.execute(
                "INSERT INTO messages (sender, nick, recipient, recipient_nick, text, ts,"
                " client_offset, room, mentions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [
                    *(d.sender.id, d.sender.nick, to_id, to_nick, d.text, ts, d.client_offset),
                    *(d.room, mentions),
                ],
            )
        )
        _note_mentions(conn, d.room, row[0], d.sender.id, d.mentions)
        message = Message(row[0], d.sender, d.recipient, d.text, ts, d.room, d.mentions)
        return Posted(message, duplicate=False)

    def get(self, message_id: int) -> Message | None:
        """The message as it is now; None for no message (or an entry)."""
        with self._reader() as db:
            row = _one(
                db.execute(
                    f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ? AND m.kind = 0",
                    [message_id],
                )
            )
        return None if row is None else row_to_message(row)

    def last_id(self) -> int:
        with self._reader() as db:
            return _last_id(db)

    def replay(
        self,
        viewer: str,
        after_id: int | None,
        limit: int,
        rooms: Collection[str] = (GENERAL,),
    ) -> tuple[list[Message], int, bool]:
        """What ``viewer`` may see after ``after_id`` (or the newest ``limit``
        when ``after_id`` is None): the messages of ``rooms`` and the
        viewer's private ones, with the edit and delete entries among them
        (an entry has its target's room and recipient), oldest first, each
        as it is now; the store's newest id; and whether the list is
        complete (nothing visible was left out)."""
        arms, params = _visible(viewer, rooms)
        params.update(after=after_id or 0, before=_NO_BOUND)
        with self._reader() as db, db.atomic():  # one snapshot for both reads
            last = _last_id(db)
            messages, more = _newest(db, arms, params, limit)
        return messages, last, after_id is not None and not more

    def history(
        self,
        viewer: str,
        before_id: int | None,
        limit: int,
        with_user: str | None = None,
        room: str | None = None,
    ) -> tuple[list[Message], bool]:
        """Up to ``limit`` messages below ``before_id``, oldest first, and
        whether older ones exist: of ``room``, or of the private conversation
        ``with_user``, or (neither given) of ``general`` and the viewer's
        private messages. Messages only (no edit or delete entry), as they
        are now. Whether the viewer may read ``room`` is the caller's rule."""
        if with_user is not None and room is not None:
            raise ValueError("a page is of one room or one private conversation")
        if with_user is not None:
            arms = [_FROM_OTHER] if with_user == viewer else [_FROM_OTHER, _TO_OTHER]
            params: dict[str, Any] = {"viewer": viewer, "other": with_user}
        elif room is not None:
            arms, params = [_IN_ROOM.format(columns=MESSAGE_COLUMNS, i=0)], {"room0": room}
        else:
            arms, params = _visible(viewer, (GENERAL,))
        params.update(after=0, before=before_id if before_id is not None else _NO_BOUND)
        with self._reader() as db:
            return _newest(db, [arm + _MESSAGES_ONLY for arm in arms], params, limit)

    def unread(
        self, viewer: str, rooms: Mapping[str, int], direct: Mapping[str, int]
    ) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
        """For each room of ``rooms`` (room id to the viewer's read marker
        there): how many messages after the marker came from others, and how
        many of them mention the viewer; for each private conversation of
        ``direct`` (the other's id to the marker): how many messages the
        other sent the viewer after it. Edit and delete entries and deleted
        messages count nowhere. Every count stops at :data:`UNREAD_CAP`, and
        reads indexes only; a room's unread count looks at no more than
        ``4 * UNREAD_CAP`` entries after the marker."""
        with self._reader() as db, db.atomic():  # one snapshot for every count
            in_rooms = {
                room: (
                    _unread_in_room(db, room, after, viewer),
                    _count(db, _MENTIONS_IN_ROOM, [viewer, room, after]),
                )
                for room, after in rooms.items()
            }
            private = {
                other: 0 if other == viewer else _count(db, _UNREAD_FROM, [viewer, other, after])
                for other, after in direct.items()
            }
        return in_rooms, private

    def committed_after(self, after_id: int, limit: int) -> list[Message]:
        """Up to ``limit`` entries (messages, edits, deletes) with ids above
        ``after_id``, whoever may see them, oldest first, as they are now:
        what a log's tail re-reads when it fell behind."""
        with self._reader() as db:
            rows = db.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id > ? ORDER BY m.id LIMIT ?",
                [after_id, limit],
            ).fetchall()
        return [row_to_message(r) for r in rows]


class ChangeRows:
    """Edits and deletes: entries of the log (an id each, in the log's order,
    with the sender, recipient and room of the message they change), and
    that message's row kept as it is now (text, ``edited_ts``, ``deleted``).
    On the writer only."""

    def __init__(self, writer: sqlite_utils.Database, wal: WalBound) -> None:
        self._writer = writer
        self._wal = wal

    def _live_target(self, target: int) -> Message | None:
        """Message ``target`` as it is now, if it is a message not deleted."""
        row = _one(
            self._writer.conn.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages m"
                " WHERE m.id = ? AND m.kind = 0 AND m.deleted = 0",
                [target],
            )
        )
        return None if row is None else row_to_message(row)

    def edit(self, d: Draft, ts: int) -> Posted | None:
        """Store draft ``d`` (``target`` set, not a retry) as an edit entry,
        and give its target the new text, ``edited_ts`` and mentions, in the
        caller's transaction; None (nothing stored) when the target is not a
        live message of ``d``'s sender. The entry takes the target's room and
        recipient, whatever the draft says."""
        conn = self._writer.conn
        old = self._live_target(d.target)
        if old is None or old.sender.id != d.sender.id:
            return None
        mentions = json.dumps(list(d.mentions)) if d.mentions else None
        entry = _one(
            conn.execute(
                "INSERT INTO messages (sender, nick, recipient, recipient_nick, text, ts,"
                " client_offset, room, mentions, kind, target)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?) RETURNING id",
                [
                    *(d.sender.id, d.sender.nick, *_user_columns(old.recipient), d.text, ts),
                    *(d.client_offset, old.room, mentions, d.target),
                ],
            )
        )
        conn.execute(
            "UPDATE messages SET text = ?, edited_ts = ?, mentions = ? WHERE id = ?",
            [d.text, ts, mentions, d.target],
        )
        _forget_mentions(conn, old)
        _note_mentions(conn, old.room, d.target, d.sender.id, d.mentions)
        message = Message(
            entry[0], d.sender, old.recipient, d.text, ts, old.room, d.mentions,
            kind=Kind.EDIT, target=d.target,
        )  # fmt: skip
        return Posted(message, duplicate=False)

    def delete(self, target: int, by: User) -> Message | None:
        """Delete message ``target`` in one transaction: wipe its text and
        its edit entries' texts (and their mentions), mark it deleted, and
        append a delete entry; that entry, or None (nothing written) when
        the target is no live message. ``secure_delete`` overwrites the old
        texts in the pages; the caller folds the WAL in soon after
        (:meth:`WalBound.fold`), where earlier copies of those pages lie."""
        ts = now_ms()
        with self._writer.atomic():
            conn = self._writer.conn
            old = self._live_target(target)
            if old is None:
                return None
            conn.execute(
                "UPDATE messages SET text = '', mentions = NULL, deleted = 1 WHERE id = ?",
                [target],
            )
            conn.execute(
                "UPDATE messages SET text = '', mentions = NULL WHERE target = ? AND kind = 1",
                [target],
            )
            _forget_mentions(conn, old)
            # The entry's offset has a '#', which no client's may hold: it
            # never meets a send's in the (sender, client_offset) key.
            entry = _one(
                conn.execute(
                    "INSERT INTO messages (sender, nick, recipient, recipient_nick, text, ts,"
                    " client_offset, room, kind, target, by_user, by_nick)"
                    " VALUES (?, ?, ?, ?, '', ?, ?, ?, 2, ?, ?, ?) RETURNING id",
                    [
                        *(old.sender.id, old.sender.nick, *_user_columns(old.recipient), ts),
                        *(f"delete#{target}", old.room, target, by.id, by.nick),
                    ],
                )
            )
        self._wal.after_commit()
        return Message(
            entry[0], old.sender, old.recipient, "", ts, old.room,
            kind=Kind.DELETE, target=target, by=by,
        )  # fmt: skip


def _user_columns(user: User | None) -> tuple[str | None, str | None]:
    """A user as a row holds them: id and nick (NULL and NULL for none)."""
    return (None, None) if user is None else (user.id, user.nick)


def _note_mentions(
    conn: sqlite3.Connection,
    room: str | None,
    message_id: int,
    sender: str,
    mentions: Sequence[str],
) -> None:
    """Index a message's mentions in a room for the mention counts (not the
    sender's own; none for a private message)."""
    if room is not None and mentions:
        conn.executemany(
            "INSERT OR IGNORE INTO mentions (user_id, room, message_id) VALUES (?, ?, ?)",
            [(user, room, message_id) for user in mentions if user != sender],
        )


def _forget_mentions(conn: sqlite3.Connection, message: Message) -> None:
    """Take ``message``'s mentions (as stored) out of the mention counts,
    each by its key (the table has no index by message)."""
    if message.room is not None and message.mentions:
        conn.executemany(
            "DELETE FROM mentions WHERE user_id = ? AND room = ? AND message_id = ?",
            [(user, message.room, message.id) for user in message.mentions],
        )


def _free_bytes(folder: Path) -> float:
    """Bytes this process may still write on ``folder``'s disk (infinite when
    the system will not say)."""
    try:
        usage = os.statvfs(folder)
    except OSError:
        return float("inf")
    return usage.f_bavail * usage.f_frsize


def _last_id(db: sqlite_utils.Database) -> int:
    return int(_one(db.execute("SELECT COALESCE(MAX(id), 0) FROM messages"))[0])


def _visible(viewer: str, rooms: Collection[str]) -> tuple[list[str], dict[str, Any]]:
    """The arms (and their parameters) of what ``viewer`` sees: each room of
    ``rooms`` (once each, in a fixed order), then their private messages."""
    ordered = sorted(set(rooms))
    arms = [_IN_ROOM.format(columns=MESSAGE_COLUMNS, i=i) for i in range(len(ordered))]
    params: dict[str, Any] = {f"room{i}": room for i, room in enumerate(ordered)}
    params["viewer"] = viewer
    return [*arms, _TO_VIEWER, _FROM_VIEWER], params


def _newest(
    db: sqlite_utils.Database, arms: Sequence[str], params: dict[str, Any], limit: int
) -> tuple[list[Message], bool]:
    """The newest ``limit`` messages of the ``arms`` (see :data:`_RANGE`),
    oldest first, and whether more matched (one extra row is read to tell).
    Up to :data:`MAX_ARMS` arms are one statement; more are several, merged."""
    rows: list[Any] = []
    for start in range(0, len(arms), MAX_ARMS):
        statement = " UNION ALL ".join(arms[start : start + MAX_ARMS])
        rows += db.execute(
            f"{statement} ORDER BY 1 DESC LIMIT :limit", {**params, "limit": limit + 1}
        ).fetchall()
    if len(arms) > MAX_ARMS:
        rows = sorted(rows, key=lambda row: int(row[0]), reverse=True)[: limit + 1]
    return [row_to_message(r) for r in reversed(rows[:limit])], len(rows) > limit


_MENTIONS_IN_ROOM = "SELECT 1 FROM mentions WHERE user_id = ? AND room = ? AND message_id > ?"
_UNREAD_FROM = (
    "SELECT 1 FROM messages WHERE recipient = ? AND sender = ? AND id > ?"
    " AND kind = 0 AND deleted = 0"
)


def _unread_in_room(db: sqlite_utils.Database, room: str, after: int, viewer: str) -> int:
    """Messages from others among the first ``4 * UNREAD_CAP`` entries of
    ``room`` after ``after``, up to :data:`UNREAD_CAP`: the viewer's own,
    edit and delete entries and deleted messages are skipped, yet a viewer
    who wrote thousands cannot make the count read more (the Redis log's
    script reads the same entries). ``messages_by_room`` holds every column
    it reads."""
    found = _one(
        db.execute(
            "SELECT COUNT(*) FROM (SELECT sender, kind, deleted FROM messages"
            f" WHERE room = ? AND id > ? ORDER BY id LIMIT {4 * UNREAD_CAP})"
            " WHERE sender <> ? AND kind = 0 AND deleted = 0",
            [room, after, viewer],
        )
    )
    return min(int(found[0]), UNREAD_CAP)


def _count(db: sqlite_utils.Database, rows: str, params: list[Any]) -> int:
    """How many ``rows`` there are, up to :data:`UNREAD_CAP`."""
    found = _one(db.execute(f"SELECT COUNT(*) FROM ({rows} LIMIT {UNREAD_CAP})", params))
    return int(found[0])


class WriteHealth:
    """Whether the store's writes succeed, as the last one found, and the log
    lines about it (:data:`FAILURE_LINES`): one per kind of failure at a
    time, one when writes succeed again."""

    def __init__(self, path: Path) -> None:
        self._path = path
        #: Why the last write failed (or its checkpoint did), or None.
        self.failure: str | None = None
        self._failed_since_success = 0
        self._next_probe = float("-inf")

    def wrote(self, checkpoint_failure: sqlite3.Error | None) -> None:
        """A write committed; its checkpoint failed with ``checkpoint_failure``, if any."""
        if checkpoint_failure is not None:
            self.failed("a checkpoint", checkpoint_failure)
            return
        if self.failure is not None:
            log.warning(
                "writes to %s succeed again, after %d failed",
                self._path,
                self._failed_since_success,
            )
        self.failure = None
        self._failed_since_success = 0

    def failed(self, what: str, exc: sqlite3.Error) -> None:
        """``what`` ("a write", "a read", "a checkpoint") failed with ``exc``."""
        if what != "a read":
            self.failure = str(exc)
            self._failed_since_success += 1
        # The cause is part of the line's template: each cause is a kind of its own.
        cause = str(exc).replace("%", "%%")
        log.error(f"{what} on %s failed: {cause}", self._path)

    def probe_due(self, now: float) -> bool:
        """Whether a probe write may run now (see :data:`WRITE_PROBE_INTERVAL`)."""
        if now < self._next_probe:
            return False
        self._next_probe = now + WRITE_PROBE_INTERVAL
        return True


@dataclass(slots=True, eq=False)
class _NewUser:
    """A nick waiting for its row, and what came of it."""

    nick: str
    done: bool = False
    made: tuple[User, str] | None = None
    error: Exception | None = None


class AsyncStore:
    """Trio-facing store: every call runs on a worker thread, never the loop.

    SQLite's errors stop here: callers see :class:`StoreError` (the original
    chained), so one ``except StoreError`` covers disk full, locks and I/O.
    They are logged here too (see :class:`WriteHealth`), so callers need not.
    """

    def __init__(self, store: Store) -> None:
        self.sync = store
        self.epoch = store.epoch
        self._write = trio.CapacityLimiter(1)
        self._read = trio.CapacityLimiter(READERS)
        self._closed = False
        #: New identities waiting for the writer (see :meth:`create_user`).
        self._new_users: list[_NewUser] = []
        self.health = WriteHealth(store.path)
        #: Why the stop's checkpoint failed (logged once), or None.
        self.close_failure: StoreError | None = None

    @classmethod
    async def open(cls, path: Path | str) -> AsyncStore:
        store = await trio.to_thread.run_sync(Store, path)
        return cls(store)

    async def aclose(self) -> None:
        """Close once every running call has finished; later calls get StoreError.

        A checkpoint that fails (see :meth:`Store.close`) is logged in one
        line and kept in :attr:`close_failure`, for the exit status."""
        if self._closed:
            return
        self._closed = True
        # Holding every token of both limiters means no call is running, and
        # none can start: each checks the flag once it holds its token.
        borrowers = [object() for _ in range(READERS)]
        async with self._write:
            taken = []
            try:
                for borrower in borrowers:
                    await self._read.acquire_on_behalf_of(borrower)
                    taken.append(borrower)
                try:
                    await trio.to_thread.run_sync(self.sync.close)
                except StoreError as exc:
                    self.close_failure = exc
                    log.error("the stop could not checkpoint the store: %s", exc)
            finally:
                for borrower in taken:
                    self._read.release_on_behalf_of(borrower)

    async def _call(self, limiter: trio.CapacityLimiter, fn: Callable[..., T], *args: Any) -> T:
        writing = limiter is self._write
        async with limiter:
            if self._closed:
                raise StoreError("the store is closed")
            try:
                result = await trio.to_thread.run_sync(fn, *args)
            except sqlite3.Error as exc:
                self.health.failed("a write" if writing else "a read", exc)
                raise StoreError(f"the store failed: {exc}") from exc
            if writing:
                self.health.wrote(self.sync.wal.checkpoint_failure)
            return result

    async def check_writes(self) -> None:
        """Raise :class:`StoreError` while writes fail (the last one did, or
        its checkpoint). Then a probe write (:meth:`WalBound.probe_write`) is
        tried first, at most once per :data:`WRITE_PROBE_INTERVAL`, so a store
        nobody writes to (a load balancer sends it nothing while this says it
        fails) is still seen to recover once the disk has room again."""
        if self.health.failure is None:
            return
        if self.health.probe_due(trio.current_time()):
            with contextlib.suppress(StoreError):
                await self._on_writer(self.sync.wal.probe_write)
        if self.health.failure is not None:
            raise StoreError(f"writes fail: {self.health.failure}")

    async def _on_writer(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._call(self._write, fn, *args)

    async def _on_reader(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._call(self._read, fn, *args)

    async def create_user(self, nick: str) -> tuple[User, str]:
        """A new identity, returned once its row is committed.

        Group commit, as :mod:`quartchat.committer` does for messages: every
        call queues its nick, then waits for the writer. Whoever gets the
        writer with its own nick still queued stores every queued nick in one
        transaction (one fsync) on the writer's thread; the others find
        theirs already committed. So a connection storm costs one commit per
        batch of new users, not one each, and the Trio thread never waits on
        SQLite. A caller that leaves before its turn takes its nick out; one
        that leaves after its row was committed leaves a silent user, which
        is pruned like any other.
        """
        mine = _NewUser(nick)
        self._new_users.append(mine)
        try:
            async with self._write:
                if not mine.done:
                    await self._create_queued_users()
        finally:
            if not mine.done:
                self._new_users.remove(mine)
        if mine.error is not None:
            raise StoreError(f"the store failed: {mine.error}") from mine.error
        assert mine.made is not None
        return mine.made

    async def _create_queued_users(self) -> None:
        """Store every queued nick in one transaction (the writer is held)."""
        batch, self._new_users = self._new_users, []
        try:
            if self._closed:
                raise StoreError("the store is closed")
            made = await trio.to_thread.run_sync(self.sync.create_users, [p.nick for p in batch])
        except (sqlite3.Error, StoreError) as exc:
            if isinstance(exc, sqlite3.Error):
                self.health.failed("a write", exc)
            for pending in batch:
                pending.error, pending.done = exc, True
            return
        except BaseException:
            self._new_users[:0] = batch  # not stored: the next holder of the writer tries
            raise
        self.health.wrote(self.sync.wal.checkpoint_failure)
        for pending, user in zip(batch, made, strict=True):
            pending.made, pending.done = user, True

    async def set_nick(self, user_id: str, nick: str) -> None:
        await self._on_writer(self.sync.set_nick, user_id, nick)

    async def prune_silent_users(self, created_before: int, keep: Collection[str]) -> int:
        return await self._on_writer(self.sync.prune_silent_users, created_before, keep)

    async def insert(self, drafts: Sequence[Draft]) -> list[Posted | StoreError | None]:
        """None in an edit's place: its target is no live message of its sender's."""
        return await self._on_writer(self.sync.insert, drafts)

    async def get(self, message_id: int) -> Message | None:
        return await self._on_reader(self.sync.get, message_id)

    async def delete(self, target: int, by: User) -> Message | None:
        return await self._on_writer(self.sync.delete, target, by)

    async def fold_wal(self) -> bool:
        """:meth:`WalBound.fold` on the writer's thread: True once done."""
        return await self._on_writer(self.sync.fold_wal)

    async def user_by_token(self, token: str) -> User | None:
        return await self._on_reader(self.sync.user_by_token, token)

    async def get_user(self, user_id: str) -> User | None:
        return await self._on_reader(self.sync.get_user, user_id)

    async def user_for_subject(self, subject: str, nick: str) -> User:
        """Read first: a returning account costs no write."""
        user = await self._on_reader(self.sync.user_by_subject, subject)
        if user is None:
            user = await self._on_writer(self.sync.user_for_subject, subject, nick)
        return user

    async def last_id(self) -> int:
        return await self._on_reader(self.sync.last_id)

    async def replay(
        self,
        viewer: str,
        after_id: int | None,
        limit: int,
        rooms: Collection[str] = (GENERAL,),
    ) -> tuple[list[Message], int, bool]:
        return await self._on_reader(self.sync.replay, viewer, after_id, limit, rooms)

    async def history(
        self,
        viewer: str,
        before_id: int | None,
        limit: int,
        with_user: str | None,
        room: str | None = None,
    ) -> tuple[list[Message], bool]:
        return await self._on_reader(self.sync.history, viewer, before_id, limit, with_user, room)

    async def unread(
        self, viewer: str, rooms: Mapping[str, int], direct: Mapping[str, int]
    ) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
        return await self._on_reader(self.sync.unread, viewer, rooms, direct)

    async def committed_after(self, after_id: int, limit: int) -> list[Message]:
        return await self._on_reader(self.sync.committed_after, after_id, limit)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` on the writer connection, in one ``BEGIN IMMEDIATE``
        transaction, on the writer's thread: for SQL kept beside its own
        seam (:mod:`quartchat.backends.sqlite_rooms`). An exception from
        ``fn`` rolls the transaction back and reaches the caller."""
        return await self._on_writer(_transact, self.sync, fn)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` on a reader connection, on a reader thread."""
        return await self._on_reader(_read_with, self.sync, fn)


def _transact(store: Store, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` in one immediate transaction of the writer, then bound the
    WAL as every write does. IMMEDIATE takes the write lock first, so what
    ``fn`` reads cannot change before it writes."""
    conn = store._writer.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
        conn.commit()
    except BaseException:
        conn.rollback()  # also after a failed COMMIT (a full disk), so the writer is free
        raise
    store.wal.after_commit()
    return result


def _read_with(store: Store, fn: Callable[[sqlite3.Connection], T]) -> T:
    with store._reader() as db:
        return fn(db.conn)
