"""One contract for the log of record, run against the SQLite and the Redis log.

Whatever backend runs, a user relies on the same things: a retried send is
stored once, ids only grow, a reconnect gets exactly what it missed, private
messages reach their two ends only, and every worker's tail sees every
message once, in id order. Redis-only tests cover what only a shared,
separately running backend can do: several writers, outages, retention.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from pathlib import Path

import pytest
import trio
import trio.lowlevel

from old_schemas import INSERT_MESSAGES, SCHEMA_1
from quartchat import store as sqlite_store
from quartchat.backends import redis_log as redis_log_module
from quartchat.backends import sqlite_log
from quartchat.backends.base import (
    Bucket,
    Committed,
    LogEntry,
    MemberChange,
    MessageLog,
    RateLimited,
    Replay,
    RoomUnread,
    Unread,
)
from quartchat.backends.redis_client import redis_client
from quartchat.backends.redis_log import RedisLog
from quartchat.backends.sqlite_log import SqliteLog
from quartchat.errors import StoreError, Unavailable
from quartchat.migrate import copy_to_redis
from quartchat.models import GENERAL, Draft, Message, Posted, Room, RoomKind, User
from quartchat.store import Store, now_ms
from redis_server import RedisServer

#: Seconds any one wait in these tests may take before the test fails
#: (a bound against hanging, not a speed requirement).
PATIENCE = 20

OpenLog = Callable[..., Awaitable[MessageLog]]


@pytest.fixture(params=["sqlite", "redis"])
async def open_log(
    request: pytest.FixtureRequest, tmp_path: Path, nursery: trio.Nursery
) -> AsyncIterator[OpenLog]:
    """Opens logs of the backend under test, each started with ``nursery.start``;
    all logs of one test share one database (one SQLite file, one Redis)."""
    opened: list[MessageLog] = []
    url = request.getfixturevalue("redis_url") if request.param == "redis" else ""

    async def open_one(**options: int) -> MessageLog:
        log: MessageLog
        if request.param == "redis":
            log = RedisLog(url, prefix="test:", max_messages=options.get("max_messages", 0))
        else:
            log = await SqliteLog.open(tmp_path / "chat.db")
        await nursery.start(log.run)
        opened.append(log)
        return log

    yield open_one
    for log in opened:
        await log.aclose()


@pytest.fixture
async def log(open_log: OpenLog) -> MessageLog:
    return await open_log()


@pytest.fixture
async def redis_log(
    redis_server: RedisServer, nursery: trio.Nursery
) -> AsyncIterator[Callable[..., Awaitable[RedisLog]]]:
    """Opens Redis logs (workers) on this test's own Redis."""
    opened: list[RedisLog] = []

    async def open_one(**options: int) -> RedisLog:
        log = RedisLog(redis_server.url, prefix="test:", **options)
        await nursery.start(log.run)
        opened.append(log)
        return log

    yield open_one
    for log in opened:
        await log.aclose()


async def users(log: MessageLog, *nicks: str) -> list[User]:
    return [(await log.create_user(nick))[0] for nick in nicks]


_offsets = itertools.count()


def stored(results: list[Posted | StoreError | RateLimited]) -> list[Posted]:
    assert all(isinstance(r, Posted) for r in results), results
    return [r for r in results if isinstance(r, Posted)]


async def say(
    log: MessageLog,
    sender: User,
    text: str,
    to: User | None = None,
    *,
    room: str | None = None,
    mentions: tuple[str, ...] = (),
) -> Message:
    draft = Draft(
        sender, f"o{next(_offsets)}", text, to, origin="w.1", room=room, mentions=mentions
    )
    [posted] = stored(await log.append([draft]))
    return posted.message


async def take(tail: AsyncIterator[list[LogEntry]], count: int) -> list[LogEntry]:
    """The next ``count`` entries from a tail (fails if it ever gives more)."""
    got: list[LogEntry] = []
    with trio.fail_after(PATIENCE):
        while len(got) < count:
            got += await anext(tail)
    assert len(got) == count, "the tail gave more than was committed"
    return got


def texts(messages: list[Message]) -> list[str]:
    return [m.text for m in messages]


# ----- appending ----------------------------------------------------------


async def test_a_batch_stores_each_draft_once_with_dense_increasing_ids(log: MessageLog) -> None:
    alice, bob = await users(log, "alice", "bob")
    first, retry, other = stored(
        await log.append(
            [
                Draft(alice, "k-1", "hi", None, origin="w.1"),
                Draft(alice, "k-1", "hi (retried in the same batch)", None, origin="w.1"),
                Draft(bob, "k-1", "same offset, other sender", None, origin="w.2"),
            ]
        )
    )
    assert (first.duplicate, retry.duplicate, other.duplicate) == (False, True, False)
    assert retry.message == first.message
    assert other.message.id == first.message.id + 1
    [again] = stored(await log.append([Draft(alice, "k-1", "retried later", None)]))
    assert again.duplicate and again.message == first.message
    later = await say(log, bob, "later")
    assert later.id == other.message.id + 1
    assert await log.last_id() == later.id
    history, more = await log.history(alice.id, None, 10, None)
    assert texts(history) == ["hi", "same offset, other sender", "later"]
    assert not more


async def test_a_draft_that_cannot_be_stored_fails_alone(log: MessageLog) -> None:
    [alice] = await users(log, "alice")
    before, bad, after = await log.append(
        [
            Draft(alice, "b1", "fine", None),
            Draft(alice, "b2", "half a pair \ud800", None),
            Draft(alice, "b3", "also fine", None),
        ]
    )
    assert isinstance(bad, StoreError)
    assert isinstance(before, Posted) and isinstance(after, Posted)
    assert after.message.id == before.message.id + 1
    assert texts((await log.read_after(alice.id, 0, 10)).messages) == ["fine", "also fine"]


async def test_a_draft_whose_send_bucket_is_spent_is_rate_limited_and_stores_nothing(
    log: MessageLog,
) -> None:
    """The send limit is spent in the append itself: a draft with an empty
    bucket is refused alone; drafts without a bucket, or with another, are
    stored in the same batch; a retry (a duplicate) spends a token too."""
    alice, bob = await users(log, "alice", "bob")
    limit = Bucket(f"send:{alice.id}", 0.001, 2)  # no refill within the test
    drafts = [Draft(alice, f"r{i}", f"try {i}", None) for i in range(3)]
    drafts.insert(2, Draft(bob, "b", "bob, unlimited", None))
    first, second, unlimited, third = await log.append(drafts, [limit, limit, None, limit])
    assert isinstance(first, Posted) and isinstance(second, Posted)
    assert isinstance(unlimited, Posted) and isinstance(third, RateLimited)
    assert await log.last_id() == unlimited.message.id
    [retry] = await log.append([drafts[0]], [limit])  # spent: even a retry waits
    assert isinstance(retry, RateLimited)
    [other] = await log.append([Draft(bob, "b2", "own bucket", None)], [Bucket("send:bob", 1, 1)])
    assert isinstance(other, Posted) and not other.duplicate
    history, _ = await log.history(alice.id, None, 10, None)
    assert texts(history) == ["try 0", "try 1", "bob, unlimited", "own bucket"]


async def test_an_appended_message_keeps_its_sender_recipient_and_time(log: MessageLog) -> None:
    alice, bob = await users(log, "alice", "bob")
    sent = await say(log, alice, "psst", to=bob)
    [read] = (await log.read_after(bob.id, 0, 10)).messages
    assert read == sent
    assert (read.sender, read.recipient, read.text) == (alice, bob, "psst")
    assert read.ts > 0


# ----- replay and history -------------------------------------------------


async def test_read_after_gives_what_a_cursor_missed_with_the_snapshot(log: MessageLog) -> None:
    [alice] = await users(log, "alice")
    ids = [(await say(log, alice, f"m{i}")).id for i in range(5)]
    replay = await log.read_after(alice.id, ids[1], 10)
    assert [m.id for m in replay.messages] == ids[2:]
    assert (replay.last_id, replay.complete) == (ids[-1], True)
    gap = await log.read_after(alice.id, ids[0], 2)
    assert [m.id for m in gap.messages] == ids[3:]  # the newest, not the oldest
    assert not gap.complete
    first_visit = await log.read_after(alice.id, None, 3)
    assert [m.id for m in first_visit.messages] == ids[2:]
    assert not first_visit.complete  # no cursor: nothing to be complete about
    caught_up = await log.read_after(alice.id, ids[-1], 10)
    assert (caught_up.messages, caught_up.last_id, caught_up.complete) == ([], ids[-1], True)


async def test_an_empty_log_has_last_id_zero(log: MessageLog) -> None:
    [alice] = await users(log, "alice")
    assert await log.last_id() == 0
    replay = await log.read_after(alice.id, None, 10)
    assert (replay.messages, replay.last_id) == ([], 0)
    assert await log.history(alice.id, None, 10, None) == ([], False)


async def test_history_pages_backwards_without_overlap(log: MessageLog) -> None:
    [alice] = await users(log, "alice")
    ids = [(await say(log, alice, f"m{i}")).id for i in range(7)]
    page, more = await log.history(alice.id, None, 3, None)
    assert ([m.id for m in page], more) == (ids[4:], True)
    page, more = await log.history(alice.id, page[0].id, 3, None)
    assert ([m.id for m in page], more) == (ids[1:4], True)
    page, more = await log.history(alice.id, page[0].id, 3, None)
    assert ([m.id for m in page], more) == (ids[:1], False)
    assert await log.history(alice.id, ids[0], 3, None) == ([], False)


async def test_private_messages_reach_their_two_ends_only(log: MessageLog) -> None:
    alice, bob, carol = await users(log, "alice", "bob", "carol")
    await say(log, alice, "public 1")
    await say(log, alice, "alice to bob", to=bob)
    await say(log, bob, "bob to alice", to=alice)
    await say(log, carol, "public 2")
    await say(log, alice, "alice to carol", to=carol)
    await say(log, alice, "alice to herself", to=alice)
    expected = {
        alice: [
            *("public 1", "alice to bob", "bob to alice", "public 2", "alice to carol"),
            "alice to herself",
        ],
        bob: ["public 1", "alice to bob", "bob to alice", "public 2"],
        carol: ["public 1", "public 2", "alice to carol"],
    }
    for viewer, visible in expected.items():
        assert texts((await log.read_after(viewer.id, 0, 100)).messages) == visible
        assert texts((await log.read_after(viewer.id, None, 100)).messages) == visible
        assert texts((await log.history(viewer.id, None, 100, None))[0]) == visible
        # paging one at a time sees the same, newest first
        seen: list[str] = []
        before = None
        while True:
            page, more = await log.history(viewer.id, before, 1, None)
            seen = texts(page) + seen
            if not more:
                break
            before = page[0].id
        assert seen == visible


async def test_with_user_pages_one_private_conversation(log: MessageLog) -> None:
    alice, bob, carol = await users(log, "alice", "bob", "carol")
    await say(log, alice, "a->b 1", to=bob)
    await say(log, alice, "public")
    await say(log, carol, "c->b", to=bob)
    await say(log, bob, "b->a", to=alice)
    await say(log, alice, "a->b 2", to=bob)
    page, more = await log.history(bob.id, None, 2, alice.id)
    assert (texts(page), more) == (["b->a", "a->b 2"], True)
    page, more = await log.history(bob.id, page[0].id, 2, alice.id)
    assert (texts(page), more) == (["a->b 1"], False)
    assert texts((await log.history(alice.id, None, 10, bob.id))[0]) == ["a->b 1", "b->a", "a->b 2"]
    # carol asking for the alice-bob conversation gets her own (empty) one with alice
    assert await log.history(carol.id, None, 10, alice.id) == ([], False)


# ----- tail ---------------------------------------------------------------


async def test_the_tail_hands_out_every_commit_once_in_id_order_with_its_origin(
    log: MessageLog,
) -> None:
    alice, bob = await users(log, "alice", "bob")
    before = await say(log, alice, "before the tail")
    async with aclosing(log.tail(before.id)) as tail:
        posted = stored(
            await log.append(
                [
                    Draft(alice, "t1", "one", None, origin="w.7"),
                    Draft(alice, "t1", "one (retry)", None, origin="w.7"),
                    Draft(bob, "t2", "two", alice, origin="w.8"),
                ]
            )
        )
        three = await say(log, bob, "three")
        got = await take(tail, 3)
    assert [c.message for c in got] == [posted[0].message, posted[2].message, three]
    assert [c.origin for c in got] == ["w.7", "w.8", "w.1"]


async def test_a_tail_from_an_old_cursor_first_gets_what_it_missed(log: MessageLog) -> None:
    [alice] = await users(log, "alice")
    ids = [(await say(log, alice, f"m{i}")).id for i in range(4)]
    async with aclosing(log.tail(ids[0])) as tail:
        assert [c.message.id for c in await take(tail, 3)] == ids[1:]
        newer = await say(log, alice, "newer")
        assert [c.message for c in await take(tail, 1)] == [newer]


async def test_closing_the_log_ends_a_waiting_tail(log: MessageLog, nursery: trio.Nursery) -> None:
    ended = trio.Event()

    async def follow() -> None:
        async for _ in log.tail(await log.last_id()):
            raise AssertionError("nothing was committed")
        ended.set()

    nursery.start_soon(follow)
    await trio.sleep(0.2)  # the tail is waiting for a commit
    with trio.fail_after(PATIENCE):
        await log.aclose()
        await ended.wait()


async def test_a_sqlite_tail_that_falls_behind_the_ring_rereads_the_store(
    tmp_path: Path, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_log, "RING_SIZE", 3)
    log = await SqliteLog.open(tmp_path / "chat.db")
    await nursery.start(log.run)
    [alice] = await users(log, "alice")
    async with aclosing(log.tail(0)) as tail:
        first = await say(log, alice, "first")
        assert [c.message for c in await take(tail, 1)] == [first]
        sent = [await say(log, alice, f"m{i}") for i in range(10)]  # the tail sleeps meanwhile
        assert [c.message for c in await take(tail, 10)] == sent
        last = await say(log, alice, "last")
        assert [c.message for c in await take(tail, 1)] == [last]
    await log.aclose()


# ----- identities ---------------------------------------------------------


async def test_users_are_found_by_token_and_id_and_keep_a_new_nick(log: MessageLog) -> None:
    alice, token = await log.create_user("alice")
    assert await log.user_by_token(token) == alice
    assert await log.user_by_token(token + "x") is None
    assert await log.get_user(alice.id) == alice
    assert await log.get_user("u-nobody") is None
    await log.set_nick(alice.id, "alicia")
    assert await log.get_user(alice.id) == User(alice.id, "alicia")
    await log.set_nick("u-nobody", "ghost")
    assert await log.get_user("u-nobody") is None


async def test_pruning_deletes_only_silent_offline_identities(log: MessageLog) -> None:
    sender, receiver, online = await users(log, "sender", "receiver", "online")
    silent, token = await log.create_user("silent")
    await say(log, sender, "hi", to=receiver)
    created_before = now_ms() + 1000  # every user above is old enough

    assert await log.prune_silent_users(created_before, keep=[online.id]) == 1

    assert await log.get_user(silent.id) is None
    assert await log.user_by_token(token) is None
    for user in (sender, receiver, online):
        assert await log.get_user(user.id) == user
    assert await log.prune_silent_users(created_before, keep=[online.id]) == 0
    assert await log.prune_silent_users(0, keep=[]) == 0  # none created before 1970


async def test_a_reopened_log_keeps_its_epoch_messages_and_users(open_log: OpenLog) -> None:
    first = await open_log()
    alice, token = await first.create_user("alice")
    sent = await say(first, alice, "kept")
    await first.aclose()
    again = await open_log()
    assert again.epoch == first.epoch != ""
    assert await again.user_by_token(token) == alice
    assert (await again.read_after(alice.id, 0, 10)).messages == [sent]


# ----- Redis: several workers, outages, retention -------------------------


async def test_two_workers_appending_at_once_share_one_order(
    redis_log: Callable[..., Awaitable[RedisLog]],
) -> None:
    one, two = await redis_log(), await redis_log()
    [alice] = await users(one, "alice")
    count = 60

    async def send_from(log: RedisLog, worker: str) -> None:
        for i in range(count):
            await log.append([Draft(alice, f"{worker}-{i}", f"{worker} {i}", None, origin=worker)])

    async with aclosing(one.tail(0)) as tail_one, aclosing(two.tail(0)) as tail_two:
        async with trio.open_nursery() as senders:
            senders.start_soon(send_from, one, "a")
            senders.start_soon(send_from, two, "b")
        seen_one, seen_two = await take(tail_one, 2 * count), await take(tail_two, 2 * count)
    assert seen_one == seen_two
    assert [c.message.id for c in seen_one] == list(range(1, 2 * count + 1))
    for worker in ("a", "b"):  # each worker's own sends in the order it sent them
        mine = [c.message.text for c in seen_one if c.origin == worker]
        assert mine == [f"{worker} {i}" for i in range(count)]
    history, _ = await one.history(alice.id, None, 2 * count, None)
    assert [m.id for m in history] == list(range(1, 2 * count + 1))


async def test_a_send_bucket_spent_through_two_workers_at_once_is_one_burst(
    redis_log: Callable[..., Awaitable[RedisLog]],
) -> None:
    """The limit the append spends is one bucket in Redis, not one per
    worker: a user's burst does not multiply with the workers."""
    one, two = await redis_log(), await redis_log()
    [alice] = await users(one, "alice")
    limit, burst = Bucket(f"send:{alice.id}", 0.001, 6), 6
    results: list[object] = []

    async def send(log: RedisLog, offset: str) -> None:
        results.extend(await log.append([Draft(alice, offset, offset, None)], [limit]))

    async with trio.open_nursery() as senders:
        for i in range(3 * burst):
            senders.start_soon(send, (one, two)[i % 2], f"o{i}")
    assert sum(isinstance(r, Posted) for r in results) == burst
    assert sum(isinstance(r, RateLimited) for r in results) == 2 * burst
    assert await two.last_id() == burst


async def test_a_tail_resumes_after_a_redis_restart_losing_and_repeating_nothing(
    redis_server: RedisServer, redis_log: Callable[..., Awaitable[RedisLog]]
) -> None:
    log = await redis_log()
    [alice] = await users(log, "alice")
    got: list[Committed] = []

    async def follow(tail: AsyncIterator[list[Committed]]) -> None:
        got.extend(await take(tail, 6))

    async with aclosing(log.tail(0)) as tail, trio.open_nursery() as nursery:
        nursery.start_soon(follow, tail)
        before = [await say(log, alice, f"before {i}") for i in range(3)]
        await trio.to_thread.run_sync(redis_server.stop)  # the tail's blocked read fails
        await trio.sleep(1)  # and it keeps trying meanwhile
        await trio.to_thread.run_sync(redis_server.start)
        after = [await say(log, alice, f"after {i}") for i in range(3)]
    assert [c.message for c in got] == before + after
    assert (await log.read_after(alice.id, 0, 10)).messages == before + after


async def test_while_redis_is_down_calls_fail_as_unavailable_and_store_nothing(
    redis_server: RedisServer, redis_log: Callable[..., Awaitable[RedisLog]]
) -> None:
    log = await redis_log()
    [alice] = await users(log, "alice")
    kept = await say(log, alice, "kept")
    redis_server.stop()
    with pytest.raises(Unavailable):
        await say(log, alice, "lost")
    with pytest.raises(Unavailable):
        await log.read_after(alice.id, 0, 10)
    with pytest.raises(Unavailable):
        await log.history(alice.id, None, 10, None)
    with pytest.raises(Unavailable):
        await log.create_user("bob")
    redis_server.start()
    assert (await log.read_after(alice.id, 0, 10)).messages == [kept]
    assert (await say(log, alice, "back")).id == kept.id + 1


async def test_a_trimmed_log_says_older_cursors_are_incomplete_and_history_ends(
    redis_server: RedisServer, redis_log: Callable[..., Awaitable[RedisLog]]
) -> None:
    log = await redis_log(max_messages=50)
    alice, bob = await users(log, "alice", "bob")
    for start in range(0, 400, 40):
        await log.append(
            [
                Draft(alice, f"o{i}", f"m{i}", bob if i % 5 == 0 else None)
                for i in range(start, start + 40)
            ]
        )
    everything, more = await log.history(alice.id, None, 500, None)
    assert not more
    assert 50 <= len(everything) < 150  # trimmed in steps of 100 past the bound
    oldest = everything[0].id
    assert [m.id for m in everything] == list(range(oldest, 401))
    thread, more = await log.history(bob.id, None, 500, alice.id)
    assert [m.id for m in thread] == [i + 1 for i in range(400) if i % 5 == 0 and i + 1 >= oldest]
    assert not more
    stale = await log.read_after(alice.id, 1, 500)
    assert not stale.complete
    assert [m.id for m in stale.messages] == [m.id for m in everything]
    fresh = await log.read_after(alice.id, 390, 500)
    assert fresh.complete and len(fresh.messages) == 10
    # What a trimmed message cost is freed too: its dedup entry and indexes.
    async with redis_client(redis_server.url) as redis:
        assert await redis.hlen(f"test:dedup:{alice.id}") == len(everything)
        assert await redis.xlen("test:pub") == len(everything) - len(thread)
        assert await redis.zcard(f"test:dm:{bob.id}") == len(thread)


# ----- rooms --------------------------------------------------------------

DESIGN, OPS, MUSIC = "r-design", "r-ops", "r-music"


async def test_a_message_keeps_its_room_and_its_mentions_as_given(log: MessageLog) -> None:
    """Mentions are stored as given (the sender, an unknown id: the hub's
    business); the room comes back from replay, history, the tail and a retry."""
    alice, bob = await users(log, "alice", "bob")
    async with aclosing(log.tail(0)) as tail:
        sent = await say(log, alice, "@bob look", room=DESIGN, mentions=(bob.id, alice.id, "u-x"))
        public = await say(log, bob, "hi all")
        private = await say(log, bob, "psst", to=alice)
        followed = [c.message for c in await take(tail, 3)]
    assert (sent.room, sent.mentions) == (DESIGN, (bob.id, alice.id, "u-x"))
    assert (public.room, public.mentions) == (GENERAL, ())
    assert (private.room, private.mentions) == (None, ())
    assert followed == [sent, public, private]
    replay = await log.read_after(alice.id, 0, 10, {GENERAL, DESIGN})
    assert replay.messages == [sent, public, private]
    assert (await log.history(bob.id, None, 10, None, DESIGN))[0] == [sent]
    retry = Draft(alice, "retry-me", "once", None, room=DESIGN, mentions=(bob.id,))
    [first] = stored(await log.append([retry]))
    [again] = stored(await log.append([retry]))
    assert again.duplicate and again.message == first.message
    assert (again.message.room, again.message.mentions) == (DESIGN, (bob.id,))


async def test_replay_across_rooms_is_exactly_what_the_viewer_sees_in_id_order_while_others_write(
    log: MessageLog,
) -> None:
    """A viewer in three rooms gets every message of those rooms and their
    private messages after the cursor, in id order, with nothing of the
    rooms they are not in, while other rooms' messages keep coming."""
    viewer, friend, stranger = await users(log, "viewer", "friend", "stranger")
    mine = {GENERAL, DESIGN, OPS}
    before = await say(log, friend, "before the cursor", room=DESIGN)
    cursor = before.id
    visible: list[Message] = []
    writing = True

    async def other_rooms() -> None:
        for i in itertools.count():
            if not writing:
                return
            drafts = [
                Draft(stranger, f"noise-{i}-{r}", f"noise {i}", None, room=f"r-other-{r}")
                for r in range(5)
            ]
            drafts.append(Draft(stranger, f"noise-dm-{i}", "not for viewer", friend))
            stored(await log.append(drafts))
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_rooms)
        for i in range(30):
            room = sorted(mine)[i % 3]
            visible.append(await say(log, friend, f"{room} {i}", room=room))
            if i % 4 == 0:
                visible.append(await say(log, friend, f"to viewer {i}", to=viewer))
            if i % 7 == 0:
                visible.append(await say(log, viewer, f"from viewer {i}", to=stranger))
            if i % 10 == 0:
                visible.append(await say(log, viewer, f"to self {i}", to=viewer))
            replay = await log.read_after(viewer.id, cursor, 1000, mine)
            assert replay.messages == visible
            assert replay.complete and replay.last_id >= visible[-1].id
            newest = await log.read_after(viewer.id, None, 5, mine)
            assert newest.messages == [before, *visible][-5:]
        writing = False
    assert await log.last_id() > 2 * len(visible)  # the noise did interleave
    paged = await log.read_after(viewer.id, cursor, 7, mine)
    assert paged.messages == visible[-7:] and not paged.complete


async def test_history_pages_one_room_or_one_conversation_and_never_another_room(
    log: MessageLog,
) -> None:
    alice, bob, carol = await users(log, "alice", "bob", "carol")
    design = [await say(log, alice, f"design {i}", room=DESIGN) for i in range(5)]
    await say(log, carol, "ops only", room=OPS)
    general = await say(log, bob, "general")
    to_bob = await say(log, alice, "a->b", to=bob)
    await say(log, carol, "c->b", to=bob)
    design.append(await say(log, bob, "design 5", room=DESIGN))
    page, more = await log.history(bob.id, None, 4, None, DESIGN)
    assert (page, more) == (design[2:], True)
    page, more = await log.history(bob.id, page[0].id, 4, None, DESIGN)
    assert (page, more) == (design[:2], False)
    assert await log.history(alice.id, None, 10, bob.id) == ([to_bob], False)
    # No room and no partner: general and the viewer's private messages, as in version 1.
    assert await log.history(alice.id, None, 10, None) == ([general, to_bob], False)
    replay = await log.read_after(alice.id, 0, 100)
    assert replay.messages == [general, to_bob]
    assert await log.history(alice.id, None, 10, None, MUSIC) == ([], False)
    with pytest.raises(ValueError):
        await log.history(alice.id, None, 10, bob.id, DESIGN)


async def test_unread_counts_messages_from_others_after_each_marker_and_mentions(
    log: MessageLog,
) -> None:
    me, ann, ben = await users(log, "me", "ann", "ben")
    read_general = (await say(log, ann, "read already")).id
    await say(log, ann, "new 1")
    await say(log, me, "mine: not unread", mentions=(me.id,))
    await say(log, ben, "@me hi", mentions=(me.id, ann.id))
    read_design = (await say(log, ann, "design read", room=DESIGN, mentions=(me.id,))).id
    await say(log, ann, "@me @me design", room=DESIGN, mentions=(me.id, me.id))
    await say(log, ben, "design plain", room=DESIGN)
    await say(log, ann, "elsewhere @me", room=OPS, mentions=(me.id,))
    read_ann = (await say(log, ann, "dm read", to=me)).id
    await say(log, ann, "dm 1", to=me)
    await say(log, ann, "dm 2", to=me)
    await say(log, me, "my answer", to=ann)
    await say(log, ben, "ben's", to=me)
    unread = await log.unread(
        me.id, {GENERAL: read_general, DESIGN: read_design, MUSIC: 0}, {ann.id: read_ann, me.id: 0}
    )
    assert unread == Unread(
        {GENERAL: RoomUnread(2, 1), DESIGN: RoomUnread(2, 1), MUSIC: RoomUnread(0, 0)},
        {ann.id: 2, me.id: 0},
    )
    everything = await log.unread(me.id, {GENERAL: 0, OPS: 0}, {ben.id: 0})
    assert everything == Unread({GENERAL: RoomUnread(3, 1), OPS: RoomUnread(1, 1)}, {ben.id: 1})
    assert await log.unread(ann.id, {DESIGN: 0}, {me.id: 0}) == Unread(
        {DESIGN: RoomUnread(1, 0)}, {me.id: 1}
    )


async def test_unread_counts_stop_at_the_cap(
    log: MessageLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "UNREAD_CAP", 3)
    monkeypatch.setattr(redis_log_module, "UNREAD_CAP", 3)
    me, ann = await users(log, "me", "ann")
    for i in range(5):
        await say(log, ann, f"@me {i}", room=DESIGN, mentions=(me.id,))
        await say(log, ann, f"dm {i}", to=me)
    assert await log.unread(me.id, {DESIGN: 0}, {ann.id: 0}) == Unread(
        {DESIGN: RoomUnread(3, 3)}, {ann.id: 3}
    )
    # A room's count reads at most 4 x the cap messages past the marker, the
    # reader's own included: 12 of mine, then others', count none.
    mark = await log.last_id()
    for i in range(12):
        await say(log, me, f"mine {i}", room=OPS)
    await say(log, ann, "after mine", room=OPS)
    assert await log.unread(me.id, {OPS: mark}, {}) == Unread({OPS: RoomUnread(0, 0)}, {})
    assert await log.unread(me.id, {OPS: mark + 1}, {}) == Unread({OPS: RoomUnread(1, 0)}, {})


#: Schema 2 as quartchat wrote it before messages had rooms: schema 1's
#: tables (as they were), then the rooms tables of the code's own step 2.
V1_STATEMENTS = [
    *SCHEMA_1,
    INSERT_MESSAGES + "('u-a', 'alice', NULL, NULL, 'hello', 10, 'o1'),"
    " ('u-b', 'bob', 'u-a', 'alice', 'psst', 11, 'o2'),"
    " ('u-b', 'bob', NULL, NULL, 'hello again', 12, 'o3')",
]


def version_2_file(path: Path) -> Path:
    conn = sqlite3.connect(path)
    for statement in V1_STATEMENTS:
        conn.execute(statement)
    for statement in sqlite_store._V2_TABLES:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    return path


async def test_a_version_2_store_files_its_public_messages_in_general(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    path = version_2_file(tmp_path / "old.db")
    log = await SqliteLog.open(path)
    await nursery.start(log.run)
    alice, bob = User("u-a", "alice"), User("u-b", "bob")
    hello = Message(1, alice, None, "hello", 10, GENERAL)
    psst = Message(2, bob, alice, "psst", 11, None)
    again = Message(3, bob, None, "hello again", 12, GENERAL)
    try:
        assert (await log.read_after("u-a", 0, 10)).messages == [hello, psst, again]
        assert await log.history("u-b", None, 10, None, GENERAL) == ([hello, again], False)
        assert await log.read_after("u-a", 0, 10, {DESIGN}) == Replay([psst], 3, True)
        assert await log.unread("u-a", {GENERAL: 0}, {"u-b": 0}) == Unread(
            {GENERAL: RoomUnread(1, 0)}, {"u-b": 1}
        )
        new = await say(log, alice, "@bob in design", room=DESIGN, mentions=("u-b",))
        assert new.id == 4
        assert await log.unread("u-b", {DESIGN: 0}, {}) == Unread({DESIGN: RoomUnread(1, 1)}, {})
    finally:
        await log.aclose()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, room FROM messages ORDER BY id").fetchall()
        assert rows == [(1, GENERAL), (2, None), (3, GENERAL), (4, DESIGN)]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_store.SCHEMA_VERSION
    Store(path).close()  # opening it again changes nothing
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages WHERE room IS NULL").fetchone() == (1,)


async def test_redis_data_written_before_rooms_reads_as_general(
    redis_server: RedisServer, redis_log: Callable[..., Awaitable[RedisLog]]
) -> None:
    """Entries as the log wrote them before rooms (no room, no mentions, a
    public index entry without its sender) are general's, and new messages
    of general and other rooms join them."""
    async with redis_client(redis_server.url) as redis:
        await redis.xadd(
            "test:log",
            {
                "s": "u-a",
                "n": "alice",
                "r": "",
                "rn": "",
                "t": "old",
                "ts": "10",
                "o": "",
                "c": "o1",
            },
            identifier="1-0",
        )
        await redis.xadd("test:pub", {"m": ""}, identifier="1-0")
        await redis.xadd(
            "test:log",
            {"s": "u-b", "n": "bob", "r": "u-a", "rn": "alice", "t": "dm", "ts": "11", "o": "",
             "c": "o2"},
            identifier="2-0",
        )  # fmt: skip
        for key in ("test:dm:u-a", "test:dm:u-b", "test:dm:u-a:u-b"):
            await redis.zadd(key, {"2": 2})
        await redis.hset("test:dedup:u-a", {"o1": "1"})
        await redis.set("test:last_id", "2")
    log = await redis_log()
    alice, bob = User("u-a", "alice"), User("u-b", "bob")
    old, dm = Message(1, alice, None, "old", 10, GENERAL), Message(2, bob, alice, "dm", 11)
    assert (await log.read_after(alice.id, 0, 10)).messages == [old, dm]
    [retry] = stored(await log.append([Draft(alice, "o1", "old, retried", None)]))
    assert retry.duplicate and retry.message == old
    new = await say(log, bob, "new in general")
    elsewhere = await say(log, bob, "design", room=DESIGN)
    assert (await log.read_after(alice.id, 0, 10)).messages == [old, dm, new]
    assert await log.history(alice.id, None, 10, None, GENERAL) == ([old, new], False)
    assert await log.history(alice.id, None, 10, None, DESIGN) == ([elsewhere], False)
    assert await log.unread(bob.id, {GENERAL: 0}, {}) == Unread({GENERAL: RoomUnread(1, 0)}, {})


async def test_quartchat_migrate_carries_rooms_and_mentions_to_redis(
    tmp_path: Path, redis_server: RedisServer, redis_log: Callable[..., Awaitable[RedisLog]]
) -> None:
    path = tmp_path / "chat.db"
    store = Store(path)
    alice, _ = store.create_user("alice")
    bob, _ = store.create_user("bob")
    posted = store.insert(
        [
            Draft(alice, "o1", "general", None),
            Draft(alice, "o2", "@bob design", None, room=DESIGN, mentions=(bob.id,)),
            Draft(bob, "o3", "dm", alice, mentions=(alice.id,)),
        ]
    )
    sent = [p.message for p in posted if isinstance(p, Posted)]
    store.close()
    await copy_to_redis(path, redis_server.url, "test:")
    log = await redis_log()
    replay = await log.read_after(bob.id, 0, 10, {GENERAL, DESIGN})
    assert replay.messages == sent
    assert [(m.room, m.mentions) for m in replay.messages] == [
        (GENERAL, ()),
        (DESIGN, (bob.id,)),
        (None, (alice.id,)),
    ]
    assert await log.history(bob.id, None, 10, None, DESIGN) == ([sent[1]], False)
    assert await log.unread(bob.id, {DESIGN: 0}, {}) == Unread({DESIGN: RoomUnread(1, 1)}, {})
    await copy_to_redis(path, redis_server.url, "test:")  # again: adds nothing
    assert (await log.read_after(bob.id, 0, 10, {GENERAL, DESIGN})).messages == sent


async def test_retention_drops_room_indexes_and_mentions_with_their_messages(
    redis_server: RedisServer, redis_log: Callable[..., Awaitable[RedisLog]]
) -> None:
    log = await redis_log(max_messages=50)
    alice, bob = await users(log, "alice", "bob")
    for start in range(0, 300, 50):
        await log.append(
            [
                Draft(alice, f"o{i}", f"m{i}", None, room=(DESIGN, OPS, GENERAL)[i % 3],
                      mentions=(bob.id,))
                for i in range(start, start + 50)
            ]
        )  # fmt: skip
    kept, _ = await log.history(bob.id, None, 500, None, DESIGN)
    oldest = kept[0].id
    async with redis_client(redis_server.url) as redis:
        for room in (DESIGN, OPS):
            entries = await redis.xrange(f"test:pub:{room}")
            assert int(str(entries[0].identifier).split("-")[0]) >= oldest - 3
            mentions = await redis.zrange(f"test:mention:{bob.id}:{room}", 0, 0)
            assert int(str(mentions[0])) >= oldest - 3
        assert await redis.xlen("test:pub") + await redis.xlen("test:pub:r-design") + (
            await redis.xlen("test:pub:r-ops")
        ) == await redis.xlen("test:log")


# ----- membership changes on the tail -----------------------------------------


async def test_a_membership_change_is_tailed_at_its_place_among_the_messages(
    log: MessageLog,
) -> None:
    """A change noted between two messages comes out between them, with the
    newest id before it as its place, on a tail started before any of them;
    no replay or history holds it (it is not a message)."""
    alice, bob = await users(log, "alice", "bob")
    room = Room("r1", "design", RoomKind.PUBLIC, "")
    async with aclosing(log.tail(await log.last_id())) as tail:
        first = await say(log, alice, "before")
        noted = await log.note_change(MemberChange("kick", room, bob, alice, origin="w.1", ref="k"))
        assert noted.after_id == first.id
        second = await say(log, alice, "after")
        entries = await take(tail, 3)
    assert [type(e) for e in entries] == [Committed, MemberChange, Committed]
    assert isinstance(entries[0], Committed) and entries[0].message.id == first.id
    assert entries[1] == noted
    assert isinstance(entries[2], Committed) and entries[2].message.id == second.id
    replay = await log.read_after(bob.id, 0, 10)
    assert [m.id for m in replay.messages] == [first.id, second.id]


async def test_changes_noted_back_to_back_keep_their_order(log: MessageLog) -> None:
    alice, bob = await users(log, "alice", "bob")
    room = Room("r1", "design", RoomKind.PRIVATE, "topic ✓")
    async with aclosing(log.tail(await log.last_id())) as tail:
        await log.note_change(MemberChange("invite", room, bob, alice))
        await log.note_change(MemberChange("kick", room, bob, alice))
        await log.note_change(MemberChange("join", room, bob, bob))
        entries = await take(tail, 3)
    assert [e.event for e in entries if isinstance(e, MemberChange)] == ["invite", "kick", "join"]
    assert all(isinstance(e, MemberChange) and e.room == room for e in entries)
