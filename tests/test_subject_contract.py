"""``Identities.user_for_subject`` on the SQLite and the Redis log: one
account of the deployment (a JWT's ``sub``) is one user, made once even
when two callers (two workers, on Redis) meet it at once, kept by a
restart, never pruned; and a store of schema 3 gains subjects on start."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import sqlite_utils
import trio

from quartchat import store as sqlite_store
from quartchat.backends.redis_log import RedisLog
from quartchat.backends.sqlite_log import SqliteLog
from quartchat.models import User
from quartchat.store import Store, now_ms

Log = SqliteLog | RedisLog
OpenLog = Callable[[], Awaitable[Log]]


@pytest.fixture(params=["sqlite", "redis"])
async def open_log(
    request: pytest.FixtureRequest, tmp_path: Path, nursery: trio.Nursery
) -> AsyncIterator[OpenLog]:
    """Opens logs of one chat: on Redis, each one is another worker; on
    SQLite, one file opened again after the last one closed."""
    opened: list[Log] = []
    url = request.getfixturevalue("redis_url") if request.param == "redis" else ""

    async def open_one() -> Log:
        log: Log
        if url:
            log = RedisLog(url, prefix="test:")
        else:
            for previous in opened:
                await previous.aclose()
            log = await SqliteLog.open(tmp_path / "chat.db")
        await nursery.start(log.run)
        opened.append(log)
        return log

    yield open_one
    for log in opened:
        await log.aclose()


async def test_one_subject_is_one_user_for_good(open_log: OpenLog) -> None:
    log = await open_log()
    alice = await log.user_for_subject("acct-1", "alice")
    assert alice.nick == "alice"
    assert await log.get_user(alice.id) == alice
    # The nick given later is only for a new user: the stored one stays.
    assert await log.user_for_subject("acct-1", "other") == alice
    bob = await log.user_for_subject("acct-2", "alice")
    assert bob.id != alice.id
    await log.set_nick(alice.id, "alicia")
    assert await log.user_for_subject("acct-1", "alice") == User(alice.id, "alicia")
    again = await open_log()  # another worker, or the file after a restart
    assert await again.user_for_subject("acct-1", "x") == User(alice.id, "alicia")


async def test_first_meetings_at_once_make_one_user(open_log: OpenLog) -> None:
    logs = [await open_log()]
    if isinstance(logs[0], RedisLog):
        logs.append(await open_log())
    found: list[User] = []

    async def meet(log: Log, nick: str) -> None:
        found.append(await log.user_for_subject("acct-new", nick))

    async with trio.open_nursery() as nursery:
        for i in range(8):
            nursery.start_soon(meet, logs[i % len(logs)], f"n{i}")
    assert len(set(found)) == 1


async def test_subjects_are_never_pruned_and_guests_still_are(open_log: OpenLog) -> None:
    log = await open_log()
    member = await log.user_for_subject("acct-1", "member")
    guest, token = await log.create_user("guest")
    assert await log.prune_silent_users(now_ms() + 1000, []) == 1
    assert await log.user_by_token(token) is None
    assert await log.get_user(guest.id) is None
    assert await log.get_user(member.id) == member
    assert await log.user_for_subject("acct-1", "x") == member


async def test_subjects_are_not_tokens(open_log: OpenLog) -> None:
    log = await open_log()
    await log.user_for_subject("acct-1", "member")
    for guess in ("acct-1", "", "none:"):
        assert await log.user_by_token(guess) is None


def version_3_file(path: Path) -> Path:
    db = sqlite_utils.Database(path)
    sqlite_store._create_v1(db)
    sqlite_store._create_v2(db)
    sqlite_store._create_v3(db)
    db.execute("INSERT INTO meta (key, value) VALUES ('epoch', 'e3')")
    db.execute("INSERT INTO users (id, nick, token_hash, created) VALUES ('u-old', 'old', 'h', 1)")
    db.execute("PRAGMA user_version = 3")
    db.conn.commit()
    db.close()
    return path


def test_a_version_3_store_gains_subjects_on_start(tmp_path: Path) -> None:
    path = version_3_file(tmp_path / "old.db")
    store = Store(path)
    try:
        assert store.epoch == "e3"
        assert store.get_user("u-old") == User("u-old", "old")
        member = store.user_for_subject("acct-1", "member")
        assert store.user_for_subject("acct-1", "x") == member
        assert store.prune_silent_users(now_ms() + 1000, []) == 1  # u-old, not member
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_store.SCHEMA_VERSION
    Store(path).close()  # opening it again changes nothing
