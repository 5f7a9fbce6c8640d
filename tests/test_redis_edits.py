"""Edits and deletes on the Redis log: what only a shared, separately running
Redis can get wrong (the contract both backends keep is test_edits_contract).

A user who deletes a message relies on its text being gone from the chat's
Redis, not hidden: no key (no stream entry, not even a deleted one) may hold
it once the delete returns, nor the text of any edit of it. Workers share
one Redis: an edit or a delete made through one reaches every worker's tail,
and a retried edit is stored once whichever worker it reaches. Data written
before texts moved out of the log Stream still reads, edits and deletes.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from pathlib import Path

import coredis
import pytest
import trio

from quartchat.backends.base import Committed, EditRefused, LogEntry
from quartchat.backends.redis_amend import TEXT_BUCKET
from quartchat.backends.redis_client import redis_client
from quartchat.backends.redis_log import RedisLog
from quartchat.backends.redis_old_texts import MOVE_BATCH
from quartchat.migrate import copy_to_redis
from quartchat.models import GENERAL, Draft, Kind, Message, Posted, User
from quartchat.store import Store
from redis_server import RedisServer

PATIENCE = 20
PREFIX = "test:"
DESIGN = "r-design"

OpenLog = Callable[..., Awaitable[RedisLog]]


@pytest.fixture
async def open_log(redis_server: RedisServer, nursery: trio.Nursery) -> AsyncIterator[OpenLog]:
    """Opens Redis logs (workers) on this test's own Redis."""
    opened: list[RedisLog] = []

    async def open_one(**options: int) -> RedisLog:
        log = RedisLog(redis_server.url, prefix=PREFIX, **options)
        await nursery.start(log.run)
        opened.append(log)
        return log

    yield open_one
    for log in opened:
        await log.aclose()


async def send(log: RedisLog, draft: Draft) -> Message:
    [posted] = await log.append([draft])
    assert isinstance(posted, Posted) and not posted.duplicate, posted
    return posted.message


def edit_of(target: Message, text: str, offset: str) -> Draft:
    return Draft(
        target.sender, offset, text, target.recipient, origin="w.2", room=target.room,
        target=target.id,
    )  # fmt: skip


async def keys_holding(url: str, *needles: str) -> dict[str, list[str]]:
    """Which of ``needles`` each key of the chat's prefix holds, byte for byte,
    in its serialized value (``DUMP``: every byte the key's value keeps,
    stream entries flagged as deleted included). Redis is told not to
    compress what it dumps, so a text it holds shows as itself."""
    found: dict[str, list[str]] = {}
    async with coredis.Redis.from_url(url, decode_responses=False) as redis:
        await redis.config_set({"rdbcompression": "no"})
        async for key in redis.scan_iter(match=PREFIX + "*"):
            raw = await redis.dump(key)
            held = [needle for needle in needles if raw and needle.encode() in raw]
            if held:
                found[key.decode()] = held
    return found


async def a_busy_log_with_a_marked_message(
    log: RedisLog, alice: User, bob: User, marker: str, edited: str, *, to: User | None = None
) -> Message:
    """Hundreds of messages of several sizes around one whose text holds
    ``marker``, edited to hold ``edited`` too, so the log Stream spans many
    nodes and the hashes are large, as in a chat that has run a while."""
    for i in range(300):
        await send(log, Draft(bob, f"b{i}", "x" * (i * 37 % 300 + 1), None, room=DESIGN))
    room = None if to else DESIGN
    marked = await send(log, Draft(alice, "marked", f"{marker} the text", to, room=room))
    await send(log, edit_of(marked, f"{marker} {edited} the new text", "edit-1"))
    for i in range(300):
        await send(log, Draft(bob, f"a{i}", "y" * (i * 53 % 300 + 1), None, room=DESIGN))
    return marked


@pytest.mark.parametrize("private", [False, True], ids=["in a room", "private"])
async def test_after_a_delete_no_key_holds_the_text_nor_its_edits_text(
    redis_server: RedisServer, open_log: OpenLog, private: bool
) -> None:
    log = await open_log()
    alice, bob = User("u-alice", "alice"), User("u-bob", "bob")
    marker, edited = secrets.token_hex(16), secrets.token_hex(16)
    marked = await a_busy_log_with_a_marked_message(
        log, alice, bob, marker, edited, to=bob if private else None
    )
    # The control: before the delete, the search finds both texts (so a
    # search that finds nothing afterwards means they are gone).
    before = await keys_holding(redis_server.url, marker, edited)
    assert before and {n for held in before.values() for n in held} == {marker, edited}

    assert await log.delete(marked.id, alice) is not None
    assert await keys_holding(redis_server.url, marker, edited) == {}
    now = await log.get(marked.id)
    assert now is not None and (now.deleted, now.text) == (True, "")


async def test_edits_and_deletes_through_one_worker_reach_every_workers_tail(
    open_log: OpenLog,
) -> None:
    one, two = await open_log(), await open_log()
    alice, bob = User("u-alice", "alice"), User("u-bob", "bob")
    start = await one.last_id()
    async with aclosing(one.tail(start)) as tail_one, aclosing(two.tail(start)) as tail_two:
        sent = await send(one, Draft(alice, "s1", "helo", None, origin="1.1", room=DESIGN))
        private = await send(one, Draft(alice, "s2", "psst", bob, origin="1.1"))
        for tail in (tail_one, tail_two):
            entries = await take(tail, 2)
            assert [(c.message, c.origin) for c in entries] == [(sent, "1.1"), (private, "1.1")]
        edited = await send(two, edit_of(sent, "hello", "e1"))
        deleted = await two.delete(private.id, bob, origin="2.5")
        assert deleted is not None
        for tail in (tail_one, tail_two):
            entries = await take(tail, 2)
            assert [(c.message, c.origin) for c in entries] == [(edited, "w.2"), (deleted, "2.5")]
    # A tail that reads a message only after its delete (one far behind)
    # has no text to hand out: it reads deleted.
    async with aclosing(two.tail(start)) as late:
        entries = await take(late, 4)
    assert [(c.message.id, c.message.deleted, c.message.text) for c in entries[:2]] == [
        (sent.id, False, "helo"),
        (private.id, True, ""),
    ]
    assert edited.kind is Kind.EDIT and (edited.room, edited.text) == (DESIGN, "hello")
    assert deleted.kind is Kind.DELETE and (deleted.recipient, deleted.by) == (bob, bob)


async def take(tail: AsyncIterator[list[LogEntry]], count: int) -> list[Committed]:
    got: list[LogEntry] = []
    with trio.fail_after(PATIENCE):
        while len(got) < count:
            got += await anext(tail)
    assert len(got) == count and all(isinstance(e, Committed) for e in got), got
    return [e for e in got if isinstance(e, Committed)]


async def test_a_retried_edit_is_stored_once_whichever_worker_it_reaches(
    open_log: OpenLog,
) -> None:
    one, two = await open_log(), await open_log()
    alice = User("u-alice", "alice")
    sent = await send(one, Draft(alice, "s1", "typo", None))
    draft = edit_of(sent, "no typo", "edit-1")
    async with trio.open_nursery() as nursery:  # both at once, as two tabs would
        results: list[object] = []

        async def through(log: RedisLog) -> None:
            results.extend(await log.append([draft]))

        nursery.start_soon(through, one)
        nursery.start_soon(through, two)
    posted = [r for r in results if isinstance(r, Posted)]
    assert len(posted) == 2 and sorted(p.duplicate for p in posted) == [False, True]
    assert posted[0].message == posted[1].message
    [later] = await two.append([edit_of(sent, "something else", "edit-1")])
    assert isinstance(later, Posted) and later.duplicate and later.message == posted[0].message
    assert await one.last_id() == posted[0].message.id
    now = await two.get(sent.id)
    assert now is not None and now.text == "no typo"


async def write_old_format(url: str) -> None:
    """Entries as the log wrote them before texts moved out of the Stream
    (field ``t``): a message in general, one in a room mentioning bob, and
    a private one, with their indexes and dedup entries."""
    async with redis_client(url) as redis:
        base = {"r": "", "rn": "", "o": "", "mt": ""}
        entries = [
            {**base, "s": "u-a", "n": "alice", "t": "old general", "ts": "10", "c": "o1",
             "rm": GENERAL},
            {**base, "s": "u-a", "n": "alice", "t": "old @bob", "ts": "11", "c": "o2",
             "rm": DESIGN, "mt": '["u-b"]'},
            {**base, "s": "u-b", "n": "bob", "r": "u-a", "rn": "alice", "t": "old psst",
             "ts": "12", "c": "o3", "rm": ""},
        ]  # fmt: skip
        for i, fields in enumerate(entries, 1):
            await redis.xadd(f"{PREFIX}log", fields, identifier=f"{i}-0")
        await redis.xadd(f"{PREFIX}pub", {"s": "u-a"}, identifier="1-0")
        await redis.xadd(f"{PREFIX}pub:{DESIGN}", {"s": "u-a"}, identifier="2-0")
        await redis.zadd(f"{PREFIX}mention:u-b:{DESIGN}", {"2": 2})
        for key in ("dm:u-a", "dm:u-b", "dm:u-a:u-b"):
            await redis.zadd(PREFIX + key, {"3": 3})
        await redis.hset(f"{PREFIX}dedup:u-a", {"o1": "1", "o2": "2"})
        await redis.hset(f"{PREFIX}dedup:u-b", {"o3": "3"})
        await redis.set(f"{PREFIX}last_id", "3")


async def test_entries_written_before_texts_moved_read_edit_and_delete(
    redis_server: RedisServer, open_log: OpenLog
) -> None:
    await write_old_format(redis_server.url)
    log = await open_log()
    alice, bob = User("u-a", "alice"), User("u-b", "bob")
    general = Message(1, alice, None, "old general", 10, GENERAL)
    in_design = Message(2, alice, None, "old @bob", 11, DESIGN, (bob.id,))
    private = Message(3, bob, alice, "old psst", 12)
    replay = await log.read_after(bob.id, 0, 10, {GENERAL, DESIGN})
    assert replay.messages == [general, in_design, private]
    assert [await log.get(i) for i in (1, 2, 3)] == [general, in_design, private]
    [retry] = await log.append([Draft(alice, "o2", "retried", None, room=DESIGN)])
    assert isinstance(retry, Posted) and retry.duplicate and retry.message == in_design
    async with aclosing(log.tail(0)) as tail:
        assert [c.message for c in await take(tail, 3)] == [general, in_design, private]

    # Edited: the new text and mentions; bob is no longer mentioned.
    edited = await send(log, Draft(alice, "e1", "new text", None, room=DESIGN, target=2))
    now = await log.get(2)
    assert now is not None and (now.text, now.edited_ts, now.mentions) == (
        "new text",
        edited.ts,
        (),
    )
    unread = await log.unread(bob.id, {DESIGN: 0}, {})
    assert unread.rooms[DESIGN].mentions == 0 and unread.rooms[DESIGN].unread == 1
    [refused] = await log.append([Draft(alice, "e2", "not mine", alice, target=3)])
    assert isinstance(refused, EditRefused)

    # Deleted: reads deleted; the edit's text is wiped from every key.
    assert await log.delete(2, bob) is not None
    assert await log.delete(3, bob) is not None
    gone = await log.get(2)
    assert gone is not None and (gone.deleted, gone.text) == (True, "")
    async with aclosing(log.tail(0)) as tail:  # a tail that reads them only now
        late = [c.message for c in await take(tail, 6)]
    assert [(m.id, m.deleted, m.text) for m in late[:3]] == [
        (1, False, "old general"),
        (2, True, ""),
        (3, True, ""),
    ]
    assert await keys_holding(redis_server.url, "new text") == {}
    history, _ = await log.history(alice.id, None, 10, bob.id)
    assert [(m.id, m.deleted, m.text) for m in history] == [(3, True, "")]
    assert (await log.unread(alice.id, {}, {bob.id: 0})).direct == {bob.id: 0}


async def test_old_texts_leave_the_log_stream_once_so_deleting_one_wipes_it(
    redis_server: RedisServer, open_log: OpenLog
) -> None:
    """A log written before texts moved out gets them moved when a worker
    starts, while it serves: then deleting an old message leaves no key
    holding its text, and every message reads as it did."""
    count = 3 * MOVE_BATCH + 50  # several of the move's steps
    first_marker, second_marker = secrets.token_hex(16), secrets.token_hex(16)
    texts = {i: f"old {i} " + "x" * (i % 40) for i in range(1, count + 1)}
    early, late = count - 5, 5  # deleted before the move reaches it (likely), and after
    texts[early] = f"{first_marker} deleted early"
    texts[late] = f"{second_marker} deleted late"
    async with redis_client(redis_server.url) as redis:
        for i, text in texts.items():
            fields = {"s": "u-a", "n": "alice", "r": "", "rn": "", "t": text, "ts": str(i),
                      "o": "", "c": f"o{i}", "rm": GENERAL, "mt": ""}  # fmt: skip
            await redis.xadd(f"{PREFIX}log", fields, identifier=f"{i}-0")
            await redis.xadd(f"{PREFIX}pub", {"s": "u-a"}, identifier=f"{i}-0")
        await redis.set(f"{PREFIX}last_id", str(count))
    assert set(await keys_holding(redis_server.url, first_marker, second_marker)) == {
        f"{PREFIX}log"
    }

    one, two = await open_log(), await open_log()  # each starts moving
    alice = User("u-a", "alice")
    assert await one.delete(early, alice) is not None
    new = await send(two, Draft(alice, "new", "a new message", None))
    with trio.fail_after(PATIENCE):
        while await moving(redis_server.url):  # noqa: ASYNC110 (another process's state)
            await trio.sleep(0.01)
    assert await two.delete(late, alice) is not None
    assert await keys_holding(redis_server.url, first_marker, second_marker) == {}

    replay = await one.read_after(alice.id, 0, count + 10)
    expected = [(i, texts[i]) for i in texts if i not in (early, late)]
    assert [(m.id, m.text) for m in replay.messages if not m.deleted and m.id <= count] == expected
    assert [(m.id, m.kind) for m in replay.messages[-3:]] == [
        (new.id - 1, Kind.DELETE),
        (new.id, Kind.MESSAGE),
        (new.id + 1, Kind.DELETE),
    ]
    async with aclosing(two.tail(count - 2)) as tail:
        followed = [c.message for c in await take(tail, 5)]
    assert [(m.id, m.text) for m in followed[:2]] == expected[-2:]
    assert followed[3] == new


async def moving(url: str) -> bool:
    """Whether old texts are still in the log Stream (or being moved)."""
    async with redis_client(url) as redis:
        if await redis.exists([f"{PREFIX}moving"]):
            return True
        first = await redis.xrange(f"{PREFIX}log", count=1)
        return bool(first) and "t" in first[0].field_values


async def test_a_tail_far_behind_or_across_a_gap_in_the_ids_reads_every_text(
    redis_server: RedisServer, open_log: OpenLog
) -> None:
    """A tail asks for the texts of the ids it expects next along with its
    read; entries past those (a big batch) or after a gap in the ids (a
    migration from a store with one) are read too."""
    log = await open_log()
    alice = User("u-alice", "alice")
    sent = [await send(log, Draft(alice, f"o{i}", f"text {i}", None)) for i in range(40)]
    async with redis_client(redis_server.url) as redis:
        await redis.set(f"{PREFIX}last_id", "100")  # the next id leaves a gap
    after_gap = await send(log, Draft(alice, "gap", "after the gap", None))
    assert after_gap.id == 101
    async with aclosing(log.tail(0)) as tail:
        assert [c.message for c in await take(tail, 41)] == [*sent, after_gap]
    async with aclosing(log.tail(38)) as tail:
        assert [c.message for c in await take(tail, 3)] == [*sent[38:], after_gap]


async def test_retention_frees_texts_states_and_entry_indexes_with_their_entries(
    redis_server: RedisServer, open_log: OpenLog
) -> None:
    log = await open_log(max_messages=50)
    alice, bob = User("u-alice", "alice"), User("u-bob", "bob")
    for i in range(600):
        to = bob if i % 4 == 0 else None
        sent = await send(log, Draft(alice, f"o{i}", f"m{i}", to, room=None if to else DESIGN))
        if i % 3 == 0:
            await send(log, edit_of(sent, f"m{i} edited", f"e{i}"))
        if i % 5 == 0:
            assert await log.delete(sent.id, alice) is not None
    async with redis_client(redis_server.url) as redis:
        kept = {int(str(e.identifier).split("-")[0]) for e in await redis.xrange(f"{PREFIX}log")}
        assert 50 <= len(kept) < 200
        texts = set()
        async for key in redis.scan_iter(match=f"{PREFIX}text:*"):
            first = int(str(key).rsplit(":", 1)[1]) * TEXT_BUCKET
            assert first + TEXT_BUCKET > min(kept)  # a List of trimmed texts alone is gone
            held = await redis.lrange(key, 0, -1)
            texts |= {first + i for i, text in enumerate(held) if text}
        states = {int(str(k)) for k in await redis.hkeys(f"{PREFIX}amend")}
        indexed: set[int] = set()
        for key in (f"amends:{DESIGN}", "dmamends:u-alice", "dmamends:u-bob"):
            indexed |= {int(str(i)) for i in await redis.zrange(PREFIX + key, 0, -1)}
    assert texts and texts <= kept
    assert states and states <= kept
    assert indexed and indexed <= kept
    assert min(indexed) < min(kept) + 10  # only what was trimmed went


async def test_quartchat_migrate_carries_edits_and_deletes_as_sqlite_holds_them(
    tmp_path: Path, redis_server: RedisServer, open_log: OpenLog
) -> None:
    path = tmp_path / "chat.db"
    store = Store(path)
    alice, _ = store.create_user("alice")
    bob, _ = store.create_user("bob")

    def one(draft: Draft) -> Message:
        [posted] = store.insert([draft])
        assert isinstance(posted, Posted), posted
        return posted.message

    typo = one(Draft(alice, "o1", "helo @bob", None, room=DESIGN, mentions=(bob.id,)))
    one(edit_of(typo, "hello @bob", "o2"))
    regret = one(Draft(alice, "o3", "regrettable", bob))
    one(edit_of(regret, "still regrettable", "o4"))
    assert store.delete(regret.id, alice) is not None
    one(Draft(bob, "o5", "kept", None))
    sqlite_views = {
        viewer.id: store.replay(viewer.id, 0, 20, [GENERAL, DESIGN]) for viewer in (alice, bob)
    }
    sqlite_gets = [store.get(i) for i in range(1, store.last_id() + 2)]
    store.close()

    await copy_to_redis(path, redis_server.url, PREFIX)
    log = await open_log()
    for viewer, (messages, last_id, _) in sqlite_views.items():
        replay = await log.read_after(viewer, 0, 20, {GENERAL, DESIGN})
        assert (replay.messages, replay.last_id) == (messages, last_id)
    assert [await log.get(i) for i in range(1, len(sqlite_gets) + 1)] == sqlite_gets
    assert await keys_holding(redis_server.url, "regrettable") == {}
    # The migrated log goes on: the edited message edits again, a retry is known.
    [retry] = await log.append([edit_of(typo, "ignored", "o2")])
    assert isinstance(retry, Posted) and retry.duplicate
    again = await send(log, edit_of(typo, "hello again", "o6"))
    assert (await log.get(typo.id)) == Message(
        typo.id, alice, None, "hello again", typo.ts, DESIGN, (), edited_ts=again.ts
    )
    await copy_to_redis(path, redis_server.url, PREFIX)  # again: adds nothing
    assert await log.last_id() == again.id
