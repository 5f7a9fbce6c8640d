"""The presence board's contract, held by the in-process board and by Redis.

Each test sees two workers, ``a`` and ``b``. In-process they are one board
(one process is one worker); with Redis they are two boards, each with its
own connection pool, on one ``redis-server``: what holds across them holds
across hosts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trio

from quartchat.backends.base import PresenceBoard
from quartchat.backends.local_presence import LocalPresence
from quartchat.backends.redis_client import redis_client
from quartchat.backends.redis_presence import RedisPresence
from quartchat.errors import Unavailable
from quartchat.models import User
from redis_server import RedisServer

PREFIX = "test:"
#: Longer than any test here: no live worker is ever taken for dead, however
#: loaded the machine (the reaper's first round comes only after one TTL).
TTL = 60.0
#: The TTL of the tests about heartbeats: they wait about two of these.
SHORT_TTL = 0.6
#: No test waits this long unless something is broken.
PATIENCE = 15

ALICE, BOB, CAROL = User("u-alice", "alice"), User("u-bob", "bob"), User("u-carol", "carol")


@dataclass
class Workers:
    a: PresenceBoard
    b: PresenceBoard


@pytest.fixture(params=["local", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def workers(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[Workers]:
    if backend == "local":
        board = LocalPresence()
        await board.run()
        yield Workers(board, board)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    async with (
        redis_client(server.url) as redis_a,
        redis_client(server.url) as redis_b,
        trio.open_nursery() as nursery,
    ):
        a = RedisPresence(redis_a, PREFIX, worker_id="a", heartbeat_ttl=TTL)
        b = RedisPresence(redis_b, PREFIX, worker_id="b", heartbeat_ttl=TTL)
        await nursery.start(a.run)
        await nursery.start(b.run)
        yield Workers(a, b)
        nursery.cancel_scope.cancel()


async def test_a_user_with_connections_on_two_workers_is_online_once(workers: Workers) -> None:
    a, b = workers.a, workers.b
    assert await a.connect("a.1", ALICE) == (ALICE, True)  # the join
    assert await b.connect("b.1", ALICE) == (ALICE, False)  # no second join
    assert await a.online() == [ALICE]
    assert await b.online() == [ALICE]
    assert await a.disconnect("a.1", ALICE.id) is False  # b.1 is still open
    assert await a.depart_if_idle(ALICE.id) is None
    assert await b.get(ALICE.id) == ALICE
    assert await b.disconnect("b.1", ALICE.id) is True  # the last one
    assert await a.get(ALICE.id) == ALICE  # still online until departed
    assert await b.depart_if_idle(ALICE.id) == ALICE  # the leave
    assert await a.online() == []
    assert await a.get(ALICE.id) is None
    assert await b.is_free("alice", None)


async def test_reconnecting_before_departure_is_no_new_join(workers: Workers) -> None:
    await workers.a.connect("a.1", ALICE)
    assert await workers.a.disconnect("a.1", ALICE.id) is True
    assert await workers.b.connect("b.7", ALICE) == (ALICE, False)
    assert await workers.a.depart_if_idle(ALICE.id) is None  # back in time: no leave
    assert await workers.b.online() == [ALICE]


async def test_forgetting_a_connection_twice_counts_once(workers: Workers) -> None:
    await workers.a.connect("a.1", ALICE)
    await workers.a.connect("a.2", ALICE)
    assert await workers.a.disconnect("a.1", ALICE.id) is False
    assert await workers.a.disconnect("a.1", ALICE.id) is False
    assert await workers.a.get(ALICE.id) == ALICE
    assert await workers.a.disconnect("a.2", ALICE.id) is True


async def test_exactly_one_concurrent_departure_gets_the_user(workers: Workers) -> None:
    await workers.a.connect("a.1", ALICE)
    await workers.a.disconnect("a.1", ALICE.id)
    results: list[User | None] = []

    async def depart(board: PresenceBoard) -> None:
        results.append(await board.depart_if_idle(ALICE.id))

    async with trio.open_nursery() as nursery:
        for board in (workers.a, workers.b, workers.a, workers.b):
            nursery.start_soon(depart, board)
    assert sorted(results, key=str) == sorted([ALICE, None, None, None], key=str)


async def test_a_taken_nick_gives_a_new_user_the_first_free_variant(workers: Workers) -> None:
    await workers.a.connect("a.1", ALICE)
    await workers.a.connect("a.2", User("u-x", "Alice-2"))
    shouty, first = await workers.b.connect("b.1", User("u-shouty", "ALICE"))
    assert (shouty, first) == (User("u-shouty", "ALICE-3"), True)
    assert not await workers.b.is_free("alice", "u-shouty")
    assert await workers.b.is_free("alice", ALICE.id)  # one's own nick is free to one
    long_nick = "n" * 32
    await workers.a.connect("a.3", User("u-long1", long_nick))
    long2, _ = await workers.b.connect("b.2", User("u-long2", long_nick))
    assert long2.nick == "n" * 30 + "-2"


async def test_two_workers_claiming_one_nick_at_once_give_it_to_exactly_one(
    workers: Workers,
) -> None:
    claimants = [User(f"u-{n}", "sam") for n in range(8)]
    got: list[User] = []

    async def claim(board: PresenceBoard, number: int, user: User) -> None:
        online, _ = await board.connect(f"c.{number}", user)
        got.append(online)

    async with trio.open_nursery() as nursery:
        for number, user in enumerate(claimants):
            nursery.start_soon(claim, (workers.a, workers.b)[number % 2], number, user)
    nicks = sorted(user.nick.casefold() for user in got)
    assert nicks.count("sam") == 1
    assert len(set(nicks)) == len(claimants)  # every variant unique too


async def test_rename_takes_a_free_nick_and_frees_the_old_one(workers: Workers) -> None:
    await workers.a.connect("a.1", ALICE)
    await workers.b.connect("b.1", BOB)
    assert await workers.b.rename(BOB.id, "ALICE") is None  # held by alice, on a
    assert await workers.b.rename(BOB.id, "robert") == BOB  # the old record
    assert await workers.a.get(BOB.id) == User(BOB.id, "robert")
    assert await workers.a.is_free("bob", ALICE.id)
    assert await workers.a.rename(ALICE.id, "Bob") == ALICE
    assert await workers.b.rename(ALICE.id, "ALICE") == User(ALICE.id, "Bob")  # own old nick


async def test_a_look_alike_of_a_held_nick_is_taken_on_every_worker(workers: Workers) -> None:
    """Nicks clash by every key of ``nick_keys``: case, TS #39 look-alikes."""
    await workers.a.connect("a.1", ALICE)
    await workers.b.connect("b.1", BOB)
    for look_alike in ["\u0430lice", "aIice", "ALICE", "alice\u2800"]:
        assert not await workers.b.is_free(look_alike, BOB.id)
        assert await workers.b.rename(BOB.id, look_alike) is None
    spoofer, _ = await workers.b.connect("b.2", User("u-spoof", "aIice"))
    assert spoofer.nick == "aIice-2"
    assert await workers.a.rename(ALICE.id, "Alice") == ALICE  # one's own look-alike
    await workers.a.disconnect("a.1", ALICE.id)
    assert await workers.b.depart_if_idle(ALICE.id) == User(ALICE.id, "Alice")
    assert await workers.b.rename(BOB.id, "aIice") == BOB  # every key freed


async def test_two_renames_to_one_nick_at_once_give_it_to_exactly_one(
    workers: Workers,
) -> None:
    users = [User(f"u-{n}", f"user{n}") for n in range(6)]
    for number, user in enumerate(users):
        await (workers.a, workers.b)[number % 2].connect(f"c.{number}", user)
    results: list[User | None] = []

    async def rename(board: PresenceBoard, user: User) -> None:
        results.append(await board.rename(user.id, "winner"))

    async with trio.open_nursery() as nursery:
        for number, user in enumerate(users):
            nursery.start_soon(rename, (workers.a, workers.b)[number % 2], user)
    assert sum(result is not None for result in results) == 1
    assert [user.nick for user in await workers.a.online()].count("winner") == 1


# ----- Redis: workers that die, and Redis going away -------------------------------


async def next_departures(board: PresenceBoard) -> list[User]:
    return await next_batch(board.departed())


async def next_batch(reports: AsyncIterator[list[User]]) -> list[User]:
    with trio.fail_after(PATIENCE):
        async for users in reports:
            return users
    raise AssertionError("the reports ended")


@asynccontextmanager
async def short_lived_workers(
    server: RedisServer,
) -> AsyncIterator[tuple[RedisPresence, RedisPresence, trio.Nursery]]:
    """Boards of workers ``a`` and ``b`` on one Redis, with heartbeats of
    SHORT_TTL, not yet running; and a nursery to run them in."""
    async with (
        redis_client(server.url) as redis_a,
        redis_client(server.url) as redis_b,
        trio.open_nursery() as nursery,
    ):
        a = RedisPresence(redis_a, PREFIX, worker_id="a", heartbeat_ttl=SHORT_TTL)
        b = RedisPresence(redis_b, PREFIX, worker_id="b", heartbeat_ttl=SHORT_TTL)
        yield a, b, nursery
        nursery.cancel_scope.cancel()


async def run_stoppable(nursery: trio.Nursery, board: RedisPresence) -> trio.CancelScope:
    """Run ``board``; cancelling the scope returned stops its heartbeats and
    nothing else, as when its worker dies or stalls."""
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            await board.run(task_status=task_status)

    await nursery.start(run)
    return scope


async def test_a_dead_workers_users_are_reported_departed_once_by_a_survivor(
    redis_server: RedisServer,
) -> None:
    async with short_lived_workers(redis_server) as (a, b, nursery):
        await nursery.start(b.run)
        a_beats = await run_stoppable(nursery, a)
        await a.connect("a.1", ALICE)  # only on a: goes with it
        await a.connect("a.2", BOB)  # also on b: stays
        await b.connect("b.1", BOB)
        await a.connect("a.3", CAROL)  # had left a, within her grace period
        await a.disconnect("a.3", CAROL.id)
        a_beats.cancel()  # a dies: no goodbye, no more heartbeats

        departed = await next_departures(b)
        assert sorted(departed, key=lambda user: user.id) == [ALICE, CAROL]
        assert await b.online() == [BOB]
        assert await b.is_free("alice", None)
        assert await b.disconnect("b.1", BOB.id) is True  # a's connection no longer counts
        with trio.move_on_after(3 * SHORT_TTL):
            await next_departures(b)
            raise AssertionError("a departure was reported twice")
        nursery.cancel_scope.cancel()


async def test_redis_away_is_unavailable_and_presence_recovers(
    redis_server: RedisServer,
) -> None:
    async with redis_client(redis_server.url) as redis, trio.open_nursery() as nursery:
        board = RedisPresence(redis, PREFIX, worker_id="a", heartbeat_ttl=SHORT_TTL)
        await nursery.start(board.run)
        await board.connect("a.1", ALICE)
        await board.connect("a.2", BOB)
        assert await board.disconnect("a.2", BOB.id) is True  # bob's grace begins
        redis_server.stop()
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: board.connect("a.3", CAROL),
            lambda: board.disconnect("a.1", ALICE.id),
            lambda: board.depart_if_idle(BOB.id),  # bob's grace ends
            lambda: board.online(),
            lambda: board.rename(ALICE.id, "al"),
        ]
        for call in calls:
            with pytest.raises(Unavailable):
                await call()
        await trio.sleep(SHORT_TTL)  # heartbeats fail too, and must go on
        redis_server.start()

        # alice's disconnect and bob's departure could not be stored; the board
        # finishes them itself and reports both gone, so the hub can still
        # announce their leave.
        departed: list[User] = []
        while len(departed) < 2:
            departed += await next_departures(board)
        assert sorted(departed, key=lambda user: user.id) == [ALICE, BOB]
        assert await board.online() == []
        assert await board.connect("a.4", CAROL) == (CAROL, True)
        nursery.cancel_scope.cancel()


async def test_a_worker_late_with_its_heartbeat_never_takes_its_own_users_offline(
    redis_server: RedisServer,
) -> None:
    async with redis_client(redis_server.url) as redis:
        board = RedisPresence(redis, PREFIX, worker_id="a", heartbeat_ttl=SHORT_TTL)
        await board.connect("a.1", ALICE)
        await redis.zadd(f"{PREFIX}presence:workers", {"a": 0})  # its deadline long past
        await board._liveness.reap_dead_workers()  # a is reaping, so a is alive
        assert await board.online() == [ALICE]


async def test_the_encoded_online_list_follows_joins_leaves_and_renames(
    workers: Workers,
) -> None:
    """What a welcome lists (``listed``) is ``online``, encoded, after every change."""
    a, b = workers.a, workers.b

    async def same() -> None:
        listed = json.loads((await b.listed()).json)
        assert sorted(listed, key=lambda u: u["id"]) == sorted(
            ({"id": u.id, "nick": u.nick} for u in await a.online()), key=lambda u: u["id"]
        )

    await same()
    await a.connect("a.1", ALICE)
    await b.connect("b.1", BOB)
    await same()
    assert await a.rename(BOB.id, "bobby") == BOB
    await same()
    await a.connect("a.2", CAROL)
    await b.disconnect("b.1", BOB.id)
    await a.depart_if_idle(BOB.id)
    await same()
    assert {u["nick"] for u in json.loads((await a.listed()).json)} == {"alice", "carol"}


async def test_each_worker_hears_how_many_connections_the_others_serve(
    redis_server: RedisServer,
) -> None:
    """What the flush pacer shares its frame budget with: the other live
    workers' connections, as of the last heartbeat, and not a dead one's."""
    async with short_lived_workers(redis_server) as (a, b, nursery):
        await nursery.start(a.run)
        b_beats = await run_stoppable(nursery, b)
        await a.connect("a.1", ALICE)
        for conn in ("b.1", "b.2", "b.3"):
            await b.connect(conn, BOB)

        async def until(board: RedisPresence, count: int) -> None:
            with trio.fail_after(PATIENCE):
                while board.connections_elsewhere() != count:  # noqa: ASYNC110
                    await trio.sleep(SHORT_TTL / 8)

        await until(a, 3)
        await until(b, 1)
        await b.disconnect("b.3", BOB.id)
        await until(a, 2)
        b_beats.cancel()  # b dies: once its heartbeat expires it counts no more
        await until(a, 0)
        nursery.cancel_scope.cancel()


async def test_one_process_has_no_connections_elsewhere() -> None:
    board = LocalPresence()
    await board.connect("a.1", ALICE)
    assert board.connections_elsewhere() == 0


async def test_a_worker_taken_for_dead_counts_its_connections_again_when_heard(
    redis_server: RedisServer,
) -> None:
    """A worker stalled past its TTL (not dead) has its users taken offline by
    a survivor, with a leave; once its heartbeat is heard again its open
    connections count again and their users are reported as returned, so the
    hub can announce them (and nobody is shown offline while connected)."""
    async with short_lived_workers(redis_server) as (a, b, nursery):
        await nursery.start(b.run)
        a_beats = await run_stoppable(nursery, a)
        await a.connect("a.1", ALICE)
        await a.connect("a.2", BOB)
        await a.rename(BOB.id, "robert")
        await a.connect("a.3", CAROL)
        a_beats.cancel()  # a stalls: no heartbeats for longer than its TTL
        departed = await next_departures(b)
        assert sorted(user.id for user in departed) == [ALICE.id, BOB.id, CAROL.id]
        assert await b.online() == []
        assert await a.disconnect("a.3", CAROL.id) is False  # closed while a was away

        await nursery.start(a.run)  # a is heard from again
        users = await next_batch(a.returned())
        back = [ALICE, User(BOB.id, "robert")]
        assert sorted(users, key=lambda user: user.id) == back
        assert sorted(await b.online(), key=lambda user: user.id) == back
        assert not await b.is_free("robert", None)
        assert await a.disconnect("a.1", ALICE.id) is True  # counted once, not twice
        nursery.cancel_scope.cancel()
