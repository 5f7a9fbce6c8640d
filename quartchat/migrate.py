"""``quartchat migrate``: copy a chat from its SQLite file into Redis, so a
chat that outgrows one process keeps its history, its users' tokens and its
clients' cursors.

Run it with the server stopped (or at least no longer writing to SQLite)::

    quartchat migrate --to redis://127.0.0.1:6379/0 [--db chat.db] [--prefix quartchat:]

What is copied: the epoch (so cursors stay valid), every user with their
token hash, every message with its id, time, room, mentions and
``client_offset`` (so a retried send is still recognised) as it is now
(edited, or deleted: with no text), every edit and delete entry (an edit
of a deleted message with no text either), the rooms with their members,
roles and read markers, and moderation's state: the sanctions in force
(mutes and bans, each with its end; ended ones are left), the admins
granted with ``quartchat admin grant``, and the audit in its order
(renumbered after the records Redis has, if it has any; Redis keeps about
its newest 100,000, as it does its own). It is idempotent: users
Redis knows, messages at or below Redis's last id, rooms Redis holds and
audit records copied before are skipped; members, roles and the sanctions
SQLite holds are set to what it says (nothing Redis holds is lifted),
markers only move up; so running it again adds nothing, and an interrupted
run resumes. It refuses a Redis that already holds a different chat.
Progress goes to stderr, a summary line to stdout; anything that stops it
is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import trio

from .backends.moderation import AuditAction, AuditEntry, AuditRecord, Sanction, SanctionKind
from .errors import StoreError, exception_leaves
from .models import Message, User
from .store import (
    MESSAGE_COLUMNS,  # the store's own row reader's columns
    SCHEMA_VERSION,
    now_ms,
    row_to_message,
)
from .usage import OneLineParser, bad_start

if TYPE_CHECKING:
    from .backends.redis_log import RedisLog
    from .backends.redis_moderation import RedisModeration
    from .backends.redis_rooms import RedisRooms

PROG = "quartchat migrate"
#: Users or messages read from SQLite and written to Redis at a time: what
#: the copy holds in memory, and one script call's worth of messages.
BATCH = 1000
#: The URL forms Redis is reached by (as ``QUARTCHAT_REDIS_URL``).
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class MigrationError(Exception):
    """What stops a migration, in words for whoever runs it."""


def main(argv: Sequence[str] | None = None) -> int:
    """``quartchat migrate`` with ``argv`` (the arguments after ``migrate``);
    the exit status."""
    args = parser().parse_args(argv)
    if not args.to.startswith(REDIS_SCHEMES):
        return bad_start(f"--to {args.to}: must look like redis://host:6379/0", PROG)
    try:
        summary = trio.run(copy_to_redis, Path(args.db), args.to, args.prefix)
    except MigrationError as exc:
        return bad_start(str(exc), PROG)
    print(summary)
    return 0


def parser() -> argparse.ArgumentParser:
    """The options, each defaulting to the setting the server reads."""
    found = OneLineParser(
        prog=PROG,
        description="Copy a chat from its SQLite file into Redis (run it with the server"
        " stopped). Idempotent: running it again adds nothing, an interrupted run resumes.",
    )
    url = os.environ.get("QUARTCHAT_REDIS_URL") or None
    found.add_argument(
        "--to",
        "--url",
        default=url,
        required=url is None,
        metavar="URL",
        help="the Redis to copy into, redis://host:port/db (default: $QUARTCHAT_REDIS_URL"
        + (f", now {url}" if url else ", unset")
        + ")",
    )
    found.add_argument(
        "--db",
        default=os.environ.get("QUARTCHAT_DB") or "chat.db",
        metavar="PATH",
        help="the SQLite file to copy from (default: $QUARTCHAT_DB, else chat.db)",
    )
    found.add_argument(
        "--prefix",
        default=os.environ.get("QUARTCHAT_REDIS_PREFIX") or "quartchat:",
        help="the prefix of the chat's keys in Redis, as the servers will use it"
        " (default: $QUARTCHAT_REDIS_PREFIX, else quartchat:)",
    )
    return found


async def copy_to_redis(db_path: Path, url: str, prefix: str) -> str:
    """Copy the store at ``db_path`` into Redis at ``url``; the summary line.
    Raises :class:`MigrationError` for anything that stops it."""
    try:
        from .backends.redis_client import check_reachable, redis_client
        from .backends.redis_log import RedisLog
        from .backends.redis_moderation import RedisModeration
        from .backends.redis_rooms import RedisRooms
    except ModuleNotFoundError as exc:  # coredis is an extra
        if (exc.name or "").partition(".")[0] == __package__:
            raise  # a module of quartchat's own: a broken install, not the extra
        raise MigrationError(
            f"needs the redis extra ({exc.name} is missing): pip install 'quartchat[redis]'"
        ) from exc
    db = await trio.to_thread.run_sync(open_readonly, db_path)
    try:
        try:
            await check_reachable(url)
        except StoreError as exc:
            raise MigrationError(f"--to {url}: {exc}") from exc
        log = RedisLog(url, prefix=prefix)
        try:
            async with redis_client(url) as client, trio.open_nursery() as nursery:
                await nursery.start(log.run)
                rooms = RedisRooms(client, prefix)
                await nursery.start(rooms.run)
                board = RedisModeration(client, prefix)
                await nursery.start(board.run)
                try:
                    parts = [await copy(db, log), await copy_rooms(db, rooms)]
                    parts.append(await copy_moderation(db, board))
                    return "; ".join(parts)
                finally:
                    await board.aclose()
                    await rooms.aclose()
                    await log.aclose()
                    nursery.cancel_scope.cancel()  # the directory's run waits for ever
        except Exception as failed:
            cause = redis_failure(failed)
            if cause is None:
                raise
            raise MigrationError(f"stopped: {cause}") from failed
    finally:
        db.close()


def open_readonly(path: Path) -> sqlite3.Connection:
    """The store at ``path``, read-only; it must have this quartchat's schema.
    Used from one thread at a time (the copy's calls take turns)."""
    if not path.is_file():
        raise MigrationError(f"--db {path}: no such file (the SQLite store to copy)")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        db.close()
        raise MigrationError(f"--db {path}: cannot read it: {exc}") from exc
    if version != SCHEMA_VERSION:
        db.close()
        raise MigrationError(
            f"--db {path} has schema {version}, this quartchat {SCHEMA_VERSION}: "
            "start this quartchat on it once (it upgrades the file), then migrate"
        )
    return db


async def copy(db: sqlite3.Connection, log: RedisLog) -> str:
    """Copy the epoch, the users, then the messages after Redis's last id."""
    read = trio.to_thread.run_sync
    epoch = str((await read(_one, db, "SELECT value FROM meta WHERE key = 'epoch'"))[0])
    await log.adopt_epoch(epoch)

    (total_users,) = await read(_one, db, "SELECT COUNT(*) FROM users")
    done = new_users = 0
    after_user = ""
    while users := await read(user_batch, db, after_user):
        for user, token_hash, created, subject in users:
            new_users += await log.import_user(user, token_hash, created, subject)
        done += len(users)
        after_user = users[-1][0].id
        print(f"users: {done:,}/{total_users:,}", file=sys.stderr)

    (total,) = await read(_one, db, "SELECT COUNT(*) FROM messages")
    position = already = await log.last_id()
    added = 0
    while batch := await read(message_batch, db, position):
        added += await log.import_messages(batch)
        position = batch[-1][0].id
        print(f"messages: up to id {position:,} ({added:,} added)", file=sys.stderr)
    return (
        f"epoch {epoch}: {new_users:,} users added ({done - new_users:,} already there),"
        f" {added:,} messages added (of {total:,}; Redis had ids up to {already:,});"
        f" Redis last id {await log.last_id():,}"
    )


async def copy_rooms(db: sqlite3.Connection, rooms: RedisRooms) -> str:
    """Copy the rooms in creation order (``general`` is Redis's already),
    then every membership with its role, then the read markers."""
    from .backends.sqlite_rooms import member_batch, read_batch, room_batch
    from .errors import RoomRefused
    from .models import GENERAL

    read = trio.to_thread.run_sync
    added = seen = 0
    after_seq = 0
    while batch := await read(room_batch, db, after_seq, BATCH):
        for seq, room in batch:
            after_seq = seq
            if room.id == GENERAL:
                continue
            seen += 1
            try:
                added += await rooms.put_room(room, None)
            except RoomRefused as exc:
                raise MigrationError(
                    f"room {room.name!r} ({room.id}): Redis holds another room named like it"
                ) from exc
        print(f"rooms: {seen:,} ({added:,} added)", file=sys.stderr)

    members = 0
    after: tuple[str, str] = ("", "")
    while memberships := await read(member_batch, db, after, BATCH):
        for room_id, user_id, role in memberships:
            if room_id == GENERAL:
                await rooms.set_role(GENERAL, user_id, role)
            else:
                await rooms.put_member(room_id, user_id, role)
        members += len(memberships)
        after = memberships[-1][:2]
        print(f"members: {members:,}", file=sys.stderr)

    markers = 0
    for table in ("room_reads", "direct_reads"):
        after = ("", "")
        while marks := await read(read_batch, db, table, after, BATCH):
            for user_id, where, read_id in marks:
                if table == "room_reads":
                    await rooms.put_read(user_id, where, read_id)
                else:
                    await rooms.mark_direct_read(user_id, where, read_id)
            markers += len(marks)
            after = marks[-1][:2]
        print(f"read markers: {markers:,}", file=sys.stderr)
    return (
        f"{added:,} rooms added ({seen - added:,} already there),"
        f" {members:,} memberships and {markers:,} read markers set"
    )


async def copy_moderation(db: sqlite3.Connection, board: RedisModeration) -> str:
    """Copy the sanctions in force, the admins, then the audit after what
    an earlier run copied. A store whose board never opened has none of
    moderation's tables: nothing to copy."""
    from .backends.sqlite_moderation import admins

    read = trio.to_thread.run_sync
    tables = await read(moderation_tables, db)
    now = now_ms()
    held = await read(sanctions_held, db) if "sanctions" in tables else []
    in_force = [sanction for sanction in held if sanction.in_force(now)]
    already = set(await board.in_force(now))
    fresh = [sanction for sanction in in_force if sanction not in already]
    for sanction in fresh:
        await board.impose(sanction)
    print(
        f"sanctions: {len(in_force):,} in force ({len(fresh):,} set),"
        f" {len(held) - len(in_force):,} ended (not copied)",
        file=sys.stderr,
    )

    granted = await read(admins, db) if "admins" in tables else []
    new_admins = 0
    for user_id in granted:
        new_admins += await board.set_admin(user_id, True)
    print(f"admins: {len(granted):,} ({new_admins:,} added)", file=sys.stderr)

    total: object = 0
    added = 0
    if "audit" in tables:
        (total,) = await read(_one, db, "SELECT COUNT(*) FROM audit")
        position = await board.audit_copied()
        while records := await read(audit_batch, db, position):
            added += await board.import_audit(records)
            position = records[-1].id
            print(f"audit: up to id {position:,} ({added:,} added)", file=sys.stderr)
    newest = await board.audit(None, 1)
    return (
        f"{len(fresh):,} sanctions set ({len(in_force) - len(fresh):,} already there,"
        f" {len(held) - len(in_force):,} ended not copied),"
        f" {new_admins:,} admins added ({len(granted) - new_admins:,} already there),"
        f" {added:,} audit records added (of {total:,});"
        f" Redis audit up to id {newest[0].id if newest else 0:,}"
    )


def moderation_tables(db: sqlite3.Connection) -> set[str]:
    """Which of moderation's tables the store has (a chat made before
    moderation, and never started since, has none)."""
    rows = db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        " AND name IN ('sanctions', 'admins', 'audit')"
    ).fetchall()
    return {name for (name,) in rows}


def sanctions_held(db: sqlite3.Connection) -> list[Sanction]:
    """Every stored sanction, ended or not (few: each a person's decision)."""
    rows = db.execute(
        "SELECT kind, user_id, room, until, imposed_by FROM sanctions ORDER BY kind, user_id, room"
    ).fetchall()
    return [
        Sanction(cast(SanctionKind, kind), user_id, room or None, until, by)
        for kind, user_id, room, until, by in rows
    ]


def audit_batch(db: sqlite3.Connection, after_id: int) -> list[AuditRecord]:
    """The next audit records by id after ``after_id``, oldest first."""
    rows = db.execute(
        "SELECT id, actor, action, user_id, room, detail, ts FROM audit WHERE id > ?"
        " ORDER BY id LIMIT ?",
        [after_id, BATCH],
    ).fetchall()
    return [
        AuditRecord(record_id, AuditEntry(actor, cast(AuditAction, action), user, room, detail, ts))
        for record_id, actor, action, user, room, detail, ts in rows
    ]


def _one(db: sqlite3.Connection, query: str) -> tuple[object, ...]:
    row: tuple[object, ...] = db.execute(query).fetchone()
    return row


def user_batch(db: sqlite3.Connection, after_id: str) -> list[tuple[User, str, int, str | None]]:
    """The next users by id after ``after_id``, with their token hash, creation
    time and deployment account (a JWT's ``sub``, or None)."""
    rows = db.execute(
        "SELECT id, nick, token_hash, created, subject FROM users WHERE id > ? ORDER BY id LIMIT ?",
        [after_id, BATCH],
    ).fetchall()
    return [(User(row[0], row[1]), row[2], row[3], row[4]) for row in rows]


def message_batch(db: sqlite3.Connection, after_id: int) -> list[tuple[Message, str]]:
    """The next entries (messages, edits, deletes) by id after ``after_id``,
    each as the store reads it (a message as it is now) with its client
    offset. The store's own row reader decodes them, so what its schema
    holds reaches Redis as :class:`Message` fields."""
    rows = db.execute(
        f"SELECT {MESSAGE_COLUMNS}, m.client_offset FROM messages m WHERE m.id > ?"
        " ORDER BY m.id LIMIT ?",
        [after_id, BATCH],
    ).fetchall()
    return [(row_to_message(row[:-1]), row[-1]) for row in rows]


def redis_failure(failed: BaseException) -> str | None:
    """What stopped a copy, when it was Redis (a refusal, or Redis gone),
    found in ``failed`` or the exception groups around it; else None."""
    import coredis.exceptions

    leaves = exception_leaves(failed)
    for leaf in leaves:
        if isinstance(leaf, StoreError):
            return str(leaf)
    for leaf in leaves:
        if isinstance(leaf, (coredis.exceptions.ConnectionError, OSError)):
            return f"Redis is unreachable ({leaf})"
    return None
