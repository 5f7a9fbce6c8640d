"""One contract for the moderation board (sanctions, admins, the audit), run
against SQLite and Redis.

Each test sees two workers, ``a`` and ``b``: on SQLite, two boards on two
stores of one file (each with its own writer); on Redis, two boards, each
with its own connection pool, on one ``redis-server``. What one worker
records, the other reads: that is what every worker's view of the
sanctions, and the ``quartchat admin`` command, rely on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import trio

from quartchat.backends.moderation import AuditEntry, AuditRecord, ModerationBoard, Sanction
from quartchat.backends.redis_client import redis_client
from quartchat.backends.redis_moderation import RedisModeration
from quartchat.backends.sqlite_moderation import SqliteModeration
from quartchat.store import AsyncStore, now_ms
from redis_server import RedisServer, redis_integer

PREFIX = "test:"
HOUR = 3_600_000


@dataclass
class Chat:
    a: ModerationBoard
    b: ModerationBoard
    redis: RedisServer | None = None


@pytest.fixture(params=["sqlite", "redis"])
async def chat(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Chat]:
    async with trio.open_nursery() as nursery:
        if request.param == "sqlite":
            one = await AsyncStore.open(tmp_path / "chat.db")
            two = await AsyncStore.open(tmp_path / "chat.db")
            a, b = await SqliteModeration.open(one), await SqliteModeration.open(two)
            await nursery.start(a.run)
            await nursery.start(b.run)
            yield Chat(a, b)
            await a.aclose()
            await b.aclose()
            await one.aclose()
            await two.aclose()
        else:
            server: RedisServer = request.getfixturevalue("redis_server")
            async with redis_client(server.url) as first, redis_client(server.url) as second:
                ra, rb = RedisModeration(first, PREFIX), RedisModeration(second, PREFIX)
                await nursery.start(ra.run)
                await nursery.start(rb.run)
                yield Chat(ra, rb, server)
                await ra.aclose()
                await rb.aclose()
        nursery.cancel_scope.cancel()


def mute(user: str, room: str | None, until: int | None, by: str = "umod") -> Sanction:
    return Sanction("mute", user, room, until, by)


def ban(user: str, until: int | None, by: str = "uadmin") -> Sanction:
    return Sanction("ban", user, None, until, by)


# ----- sanctions ----------------------------------------------------------------


async def test_what_one_worker_imposes_the_other_finds_in_a_fixed_order(chat: Chat) -> None:
    now = now_ms()
    imposed = [
        mute("ubob", "rdesign", now + HOUR),
        ban("ueve", None),
        mute("ubob", None, None),
        mute("ualice", "rdesign", now + HOUR),
        ban("ubob", now + HOUR),
    ]
    for sanction in imposed:
        await chat.a.impose(sanction)

    assert await chat.b.in_force(now_ms()) == [
        ban("ubob", now + HOUR),
        ban("ueve", None),
        mute("ualice", "rdesign", now + HOUR),
        mute("ubob", None, None),  # chat-wide (no room) before a room's
        mute("ubob", "rdesign", now + HOUR),
    ]


async def test_imposing_again_replaces_the_same_kind_user_and_room_only(chat: Chat) -> None:
    now = now_ms()
    await chat.a.impose(mute("ubob", "rdesign", now + HOUR, by="uowner"))
    await chat.a.impose(mute("ubob", "rother", now + HOUR))

    await chat.b.impose(mute("ubob", "rdesign", now + 2 * HOUR, by="umod"))

    assert await chat.a.in_force(now_ms()) == [
        mute("ubob", "rdesign", now + 2 * HOUR, by="umod"),
        mute("ubob", "rother", now + HOUR),
    ]
    await chat.b.impose(mute("ubob", "rdesign", None, by="uadmin"))  # timed to for good
    await chat.b.impose(ban("ubob", now + HOUR))
    await chat.b.impose(ban("ubob", None))  # and a ban the same way
    assert await chat.a.in_force(now_ms()) == [
        ban("ubob", None),
        mute("ubob", "rdesign", None, by="uadmin"),
        mute("ubob", "rother", now + HOUR),
    ]


async def test_a_sanction_that_ends_now_or_before_lifts_the_one_in_force(chat: Chat) -> None:
    """How ``seconds: 0`` (an unmute, an unban) reaches the board: until = now."""
    chat_wide = now_ms() + HOUR
    await chat.a.impose(mute("ubob", "rdesign", None))
    await chat.a.impose(mute("ubob", None, chat_wide))
    await chat.a.impose(ban("ubob", None))

    await chat.b.impose(mute("ubob", "rdesign", now_ms()))  # seconds 0
    await chat.b.impose(ban("ubob", now_ms() - HOUR))  # already over

    assert await chat.a.in_force(now_ms()) == [mute("ubob", None, chat_wide)]
    assert await chat.a.ban_of("ubob", now_ms()) is None


async def test_lifting_one_mute_leaves_the_chat_wide_one_and_the_other_rooms(chat: Chat) -> None:
    until = now_ms() + HOUR
    await chat.a.impose(mute("ubob", None, until))
    await chat.a.impose(mute("ubob", "rdesign", until))
    await chat.a.impose(mute("ubob", "rother", until))

    await chat.b.impose(mute("ubob", "rdesign", 0))  # lift one room's
    assert await chat.a.in_force(now_ms()) == [
        mute("ubob", None, until),
        mute("ubob", "rother", until),
    ]
    await chat.b.impose(mute("ubob", None, 0))  # lift the chat-wide one
    assert await chat.a.in_force(now_ms()) == [mute("ubob", "rother", until)]


async def test_lifting_what_is_not_there_changes_nothing(chat: Chat) -> None:
    await chat.a.impose(mute("ubob", "rdesign", 0))
    await chat.a.impose(ban("ubob", 0))
    assert await chat.b.in_force(now_ms()) == []


async def test_in_force_leaves_out_what_has_ended_and_drops_it(chat: Chat) -> None:
    now = now_ms()
    await chat.a.impose(mute("ualice", None, now + 1_000))
    await chat.a.impose(mute("ubob", None, now + HOUR))
    await chat.a.impose(ban("ueve", now + 2_000))

    assert await chat.b.in_force(now + 999) == [
        ban("ueve", now + 2_000),
        mute("ualice", None, now + 1_000),
        mute("ubob", None, now + HOUR),
    ]
    # At its end a sanction is over (in force while until > now).
    assert await chat.b.in_force(now + 2_000) == [mute("ubob", None, now + HOUR)]
    # Met as ended, it is gone: even asked about an earlier moment.
    assert await chat.a.in_force(now + 999) == [mute("ubob", None, now + HOUR)]


async def test_a_timed_ban_ends_by_itself(chat: Chat) -> None:
    until = now_ms() + 300
    await chat.a.impose(ban("ueve", until))
    assert await chat.b.ban_of("ueve", now_ms()) == ban("ueve", until)

    await trio.sleep(0.4)

    assert await chat.b.ban_of("ueve", now_ms()) is None
    assert await chat.b.in_force(now_ms()) == []
    if chat.redis is not None:  # its key went with it, nobody deleting it
        assert redis_integer(chat.redis.port, "EXISTS", f"{PREFIX}sanction:ban:ueve:") == 0


async def test_ban_of_is_the_users_ban_only(chat: Chat) -> None:
    now = now_ms()
    await chat.a.impose(mute("ubob", None, None))
    await chat.a.impose(mute("ubob", "rdesign", None))
    await chat.a.impose(ban("ueve", None, by="uadmin"))
    await chat.a.impose(ban("umallory", now + HOUR, by="uother"))

    assert await chat.b.ban_of("ubob", now_ms()) is None  # muted, not banned
    assert await chat.b.ban_of("ueve", now_ms()) == ban("ueve", None, by="uadmin")
    assert await chat.b.ban_of("umallory", now_ms()) == ban("umallory", now + HOUR, by="uother")
    assert await chat.b.ban_of("umallory", now + HOUR) is None  # as of its end
    assert await chat.b.ban_of("unobody", now_ms()) is None


async def test_a_ban_has_no_room(chat: Chat) -> None:
    with pytest.raises(ValueError, match="no room"):
        await chat.a.impose(Sanction("ban", "ueve", "rdesign", None, "uadmin"))
    assert await chat.b.in_force(now_ms()) == []


# ----- admins -------------------------------------------------------------------


async def test_admins_are_set_and_unset_once(chat: Chat) -> None:
    assert await chat.a.admins() == []
    assert await chat.a.set_admin("ucarol", True) is True
    assert await chat.b.set_admin("ucarol", True) is False  # already
    assert await chat.b.set_admin("ualice", True) is True
    assert await chat.a.admins() == ["ualice", "ucarol"]  # sorted

    assert await chat.b.set_admin("ucarol", False) is True
    assert await chat.a.set_admin("ucarol", False) is False  # already not
    assert await chat.a.set_admin("unobody", False) is False
    assert await chat.b.admins() == ["ualice"]


# ----- the audit ----------------------------------------------------------------


def entry(n: int, **fields: Any) -> AuditEntry:
    """The nth of a run of mutes, with ``fields`` changed."""
    made = AuditEntry(
        actor="uadmin",
        action="mute",
        user=f"u{n}",
        room="rdesign",
        detail=json.dumps({"seconds": n}),
        ts=1_700_000_000_000 + n,
    )
    return replace(made, **fields)


async def test_the_audit_is_newest_first_in_pages(chat: Chat) -> None:
    recorded = [await (chat.a if n % 2 else chat.b).record(entry(n)) for n in range(7)]
    ids = [r.id for r in recorded]
    assert ids == sorted(ids) and len(set(ids)) == 7 and ids[0] >= 1
    assert [r.entry for r in recorded] == [entry(n) for n in range(7)]

    newest = list(reversed(recorded))
    assert await chat.b.audit(None, 100) == newest
    assert await chat.a.audit(None, 3) == newest[:3]
    assert await chat.a.audit(newest[2].id, 3) == newest[3:6]
    assert await chat.a.audit(newest[5].id, 3) == newest[6:]
    assert await chat.a.audit(ids[0], 3) == []  # nothing below the first
    assert await chat.a.audit(None, 0) == []
    assert await chat.a.audit(ids[-1] + 1_000, 2) == newest[:2]  # a bound above every id


async def test_an_audit_record_keeps_what_it_was_told(chat: Chat) -> None:
    told = [
        entry(1, action="delete", user=None, room=None, detail='{"message":1235}'),
        entry(2, actor="cli", action="grant_admin", room=None, detail=""),
        entry(3, action="role", detail='{"role":"moderator"}'),
        entry(4, action="ban", room=None, detail='{"seconds":null}'),
    ]
    for one in told:
        await chat.a.record(one)
    assert [r.entry for r in await chat.b.audit(None, 10)] == told[::-1]


async def test_two_workers_recording_at_once_get_distinct_ids(chat: Chat) -> None:
    got: list[AuditRecord] = []

    async def record(board: ModerationBoard, n: int) -> None:
        got.append(await board.record(entry(n)))

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(record, chat.a if n % 2 else chat.b, n)

    assert len({r.id for r in got}) == 20
    assert sorted(r.id for r in await chat.a.audit(None, 50)) == sorted(r.id for r in got)


# ----- SQLite: the chat's file --------------------------------------------------


async def test_sqlite_keeps_everything_across_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    store = await AsyncStore.open(path)
    board = await SqliteModeration.open(store)
    await board.impose(ban("ueve", None))
    await board.impose(mute("ubob", "rdesign", now_ms() + HOUR))
    await board.set_admin("ucarol", True)
    first = await board.record(entry(1))
    held = await board.in_force(now_ms())
    await board.aclose()
    await store.aclose()

    store = await AsyncStore.open(path)
    board = await SqliteModeration.open(store)
    try:
        assert await board.in_force(now_ms()) == held
        assert await board.ban_of("ueve", now_ms()) == ban("ueve", None)
        assert await board.admins() == ["ucarol"]
        assert await board.audit(None, 10) == [first]
        assert (await board.record(entry(2))).id > first.id
    finally:
        await board.aclose()
        await store.aclose()


async def test_a_closed_board_refuses_calls(tmp_path: Path) -> None:
    from quartchat.errors import StoreError

    store = await AsyncStore.open(tmp_path / "chat.db")
    board = await SqliteModeration.open(store)
    await board.aclose()
    try:
        with pytest.raises(StoreError):
            await board.admins()
    finally:
        await store.aclose()
