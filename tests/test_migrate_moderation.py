"""A chat moved from SQLite to Redis (``quartchat migrate``) keeps its
moderation: the mutes and bans in force (each until when it was to end),
the admins granted with ``quartchat admin grant``, and the whole audit in
its order; running it again adds nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from quartchat.backends.moderation import AuditEntry, AuditRecord, Sanction
from quartchat.backends.redis_client import redis_client
from quartchat.backends.redis_moderation import RedisModeration
from quartchat.backends.sqlite_moderation import SqliteModeration
from quartchat.store import AsyncStore, Store, now_ms
from redis_server import RedisServer, redis_integer

#: ``quartchat migrate``, as an installed quartchat runs it.
COMMAND = [sys.executable, "-m", "quartchat", "migrate"]
PREFIX = "moved:"
HOUR = 3_600_000


def migrate(db: Path, url: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*COMMAND, "--db", str(db), "--to", url, "--prefix", PREFIX],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done


@asynccontextmanager
async def embedded_board(path: Path) -> AsyncIterator[SqliteModeration]:
    """The chat file's own board, as the server (or ``quartchat admin``) opens it."""
    store = await AsyncStore.open(path)
    board = await SqliteModeration.open(store)
    try:
        yield board
    finally:
        await board.aclose()
        await store.aclose()


@asynccontextmanager
async def redis_board(url: str) -> AsyncIterator[RedisModeration]:
    """The board the servers will read after the move."""
    async with redis_client(url) as client:
        board = RedisModeration(client, PREFIX)
        try:
            yield board
        finally:
            await board.aclose()


def action(n: int, user: str | None = "ubob", room: str | None = "rdesign") -> AuditEntry:
    """A distinct audit entry (its detail and time tell it apart)."""
    return AuditEntry("ualice", "mute", user, room, json.dumps({"seconds": n}), 1_000 + n)


async def moderated_chat(path: Path) -> tuple[list[Sanction], list[AuditRecord]]:
    """A chat on SQLite with users, sanctions (one ended while the server
    was stopped, still in the file), admins (one revoked) and an audit; its
    sanctions in force, in the seam's order, and its records."""
    store = Store(path)
    for nick in ("alice", "bob", "carol"):
        store.create_user(nick)
    store.close()
    now = now_ms()
    in_force = [
        Sanction("ban", "ueve", None, None, "ualice"),
        Sanction("mute", "ubob", None, None, "cli"),
        Sanction("mute", "ubob", "rdesign", now + HOUR, "ualice"),
    ]
    async with embedded_board(path) as board:
        for sanction in in_force:
            await board.impose(sanction)
        await board.impose(Sanction("mute", "ucarol", "rdesign", now + 300, "ualice"))
        for user_id in ("ucarol", "udan", "uzed"):
            await board.set_admin(user_id, True)
        await board.set_admin("udan", False)
        records = [await board.record(action(n)) for n in range(5)]
        records.append(await board.record(action(5, user=None, room=None)))
    await trio.sleep(max(0, now + 400 - now_ms()) / 1000)  # carol's mute ends
    return in_force, records


async def test_sanctions_admins_and_audit_move_to_redis_once(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    path = tmp_path / "chat.db"
    in_force, records = await moderated_chat(path)

    first = await trio.to_thread.run_sync(migrate, path, redis_server.url)
    assert (
        "3 sanctions set (0 already there, 1 ended not copied),"
        " 2 admins added (0 already there), 6 audit records added (of 6);"
        " Redis audit up to id 6"
    ) in first.stdout
    progress = first.stderr.splitlines()
    assert "sanctions: 3 in force (3 set), 1 ended (not copied)" in progress
    assert "admins: 2 (2 added)" in progress
    assert "audit: up to id 6 (6 added)" in progress

    async with redis_board(redis_server.url) as moved:
        assert await moved.in_force(now_ms()) == in_force
        assert await moved.ban_of("ueve", now_ms()) == in_force[0]
        assert await moved.admins() == ["ucarol", "uzed"]
        assert await moved.audit(None, 100) == records[::-1]  # newest first, ids kept
        assert await moved.audit(4, 2) == records[1:3][::-1]  # ids 3 and 2
    # The timed mute still ends when it was to: its key expires then.
    ends = redis_integer(redis_server.port, "PEXPIRETIME", f"{PREFIX}sanction:mute:ubob:rdesign")
    assert ends == in_force[2].until

    again = await trio.to_thread.run_sync(migrate, path, redis_server.url)
    assert (
        "0 sanctions set (3 already there, 1 ended not copied),"
        " 0 admins added (2 already there), 0 audit records added (of 6);"
        " Redis audit up to id 6"
    ) in again.stdout
    assert redis_integer(redis_server.port, "XLEN", f"{PREFIX}audit") == 6
    assert redis_integer(redis_server.port, "ZCARD", f"{PREFIX}sanctions") == 3
    async with redis_board(redis_server.url) as moved:
        assert await moved.audit(None, 100) == records[::-1]
        # Redis goes on numbering after the copied records.
        assert (await moved.record(action(6))).id == 7


async def test_the_audit_follows_what_redis_holds_in_order_and_resumes(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Copied into an audit that has records, SQLite's come after them,
    renumbered in their order; a run stopped halfway, and records SQLite
    gained since, are completed by the next run, none twice."""
    path = tmp_path / "chat.db"
    _, records = await moderated_chat(path)
    async with redis_board(redis_server.url) as moved:
        on_redis = [await moved.record(action(n, user="uzed")) for n in (100, 101)]
        assert await moved.import_audit(records[:2]) == 2  # a run that stopped there
    async with embedded_board(path) as board:
        records.append(await board.record(action(6)))

    done = await trio.to_thread.run_sync(migrate, path, redis_server.url)
    assert "5 audit records added (of 7); Redis audit up to id 9" in done.stdout
    again = await trio.to_thread.run_sync(migrate, path, redis_server.url)
    assert "0 audit records added (of 7); Redis audit up to id 9" in again.stdout

    async with redis_board(redis_server.url) as moved:
        assert await moved.import_audit(records) == 0  # all copied: skipped in the script
        audit = (await moved.audit(None, 100))[::-1]
    assert [record.id for record in audit] == list(range(1, 10))
    assert [record.entry for record in audit] == [
        *(record.entry for record in on_redis),
        *(record.entry for record in records),
    ]


async def test_a_chat_that_never_moderated_moves_with_nothing_to_carry(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """A store no board has opened has none of moderation's tables."""
    path = tmp_path / "chat.db"
    Store(path).close()

    done = await trio.to_thread.run_sync(migrate, path, redis_server.url)

    assert (
        "0 sanctions set (0 already there, 0 ended not copied),"
        " 0 admins added (0 already there), 0 audit records added (of 0);"
        " Redis audit up to id 0"
    ) in done.stdout
    assert len(done.stdout.splitlines()) == 1
