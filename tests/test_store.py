"""The SQLite log: schema, migration, dedup, visibility, paging."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
import trio
import trio.testing

from quartchat import store as store_module
from quartchat.errors import StoreError
from quartchat.models import Draft, Posted, User
from quartchat.store import READERS, SCHEMA_VERSION, AsyncStore, Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "chat.db")


def post(store: Store, sender: User, offset: str, text: str, to: User | None = None) -> int:
    (posted,) = store.insert([Draft(sender, offset, text, to)])
    assert isinstance(posted, Posted)
    return posted.message.id


def test_schema_creation_is_idempotent_and_keeps_the_epoch(tmp_path: Path) -> None:
    first = Store(tmp_path / "chat.db")
    alice, _ = first.create_user("alice")
    post(first, alice, "a1", "hello")
    first.close()
    again = Store(tmp_path / "chat.db")
    assert again.epoch == first.epoch
    assert again.last_id() == 1
    assert again.path.stat().st_size > 0


def test_a_new_file_gets_a_new_epoch(tmp_path: Path) -> None:
    assert Store(tmp_path / "a.db").epoch != Store(tmp_path / "b.db").epoch


def test_tokens_are_stored_only_as_hashes(store: Store) -> None:
    user, token = store.create_user("alice")
    assert store.user_by_token(token) == user
    assert store.user_by_token(token + "x") is None
    with store._reader() as db:
        stored = db.execute("SELECT token_hash FROM users").fetchone()[0]
    assert token not in stored


def test_a_retried_offset_returns_the_original_and_stores_nothing(store: Store) -> None:
    alice, _ = store.create_user("alice")
    bob, _ = store.create_user("bob")
    first, retry, other = store.insert(
        [
            Draft(alice, "k-1", "hi", None),
            Draft(alice, "k-1", "hi (retried)", None),
            Draft(bob, "k-1", "same offset, other user", None),
        ]
    )
    assert not first.duplicate
    assert retry.duplicate
    assert retry.message == first.message
    assert not other.duplicate
    assert store.last_id() == other.message.id
    messages, _ = store.history(alice.id, None, 10)
    assert [m.text for m in messages] == ["hi", "same offset, other user"]


def test_private_messages_are_visible_to_their_two_ends_only(store: Store) -> None:
    alice, _ = store.create_user("alice")
    bob, _ = store.create_user("bob")
    carol, _ = store.create_user("carol")
    post(store, alice, "1", "public")
    post(store, alice, "2", "for bob", to=bob)
    for viewer, expected in [
        (alice, ["public", "for bob"]),
        (bob, ["public", "for bob"]),
        (carol, ["public"]),
    ]:
        replayed, _, _ = store.replay(viewer.id, 0, 10)
        assert [m.text for m in replayed] == expected
        paged, _ = store.history(viewer.id, None, 10)
        assert [m.text for m in paged] == expected
    thread, _ = store.history(bob.id, None, 10, with_user=alice.id)
    assert [m.text for m in thread] == ["for bob"]
    assert thread[0].recipient == bob


def test_replay_after_a_cursor_and_its_limit(store: Store) -> None:
    alice, _ = store.create_user("alice")
    ids = [post(store, alice, f"o{i}", f"m{i}") for i in range(10)]
    messages, last, complete = store.replay(alice.id, ids[6], 5)
    assert [m.id for m in messages] == ids[7:]
    assert last == ids[-1]
    assert complete
    messages, _, complete = store.replay(alice.id, ids[0], 5)
    assert [m.id for m in messages] == ids[5:]  # the newest five of the nine missed
    assert not complete
    messages, _, complete = store.replay(alice.id, None, 3)
    assert [m.id for m in messages] == ids[7:]
    assert not complete  # a first visit is never "recovered"


def test_history_pages_backwards_without_gaps(store: Store) -> None:
    alice, _ = store.create_user("alice")
    ids = [post(store, alice, f"o{i}", f"m{i}") for i in range(7)]
    page, more = store.history(alice.id, None, 3)
    assert [m.id for m in page] == ids[4:] and more
    page, more = store.history(alice.id, page[0].id, 3)
    assert [m.id for m in page] == ids[1:4] and more
    page, more = store.history(alice.id, page[0].id, 3)
    assert [m.id for m in page] == ids[:1] and not more


def test_the_tutorial_database_is_migrated_with_its_messages(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " client_offset TEXT UNIQUE, content TEXT)"
    )
    conn.executemany(
        "INSERT INTO messages (client_offset, content) VALUES (?, ?)",
        [("abc-0", "first"), (None, "second")],
    )
    conn.commit()
    conn.close()

    store = Store(path)
    messages, more = store.history("anyone", None, 10)
    assert [(m.id, m.text) for m in messages] == [(1, "first"), (2, "second")]
    assert not more
    alice, _ = store.create_user("alice")
    assert post(store, alice, "n1", "after the migration") == 3
    with store._reader() as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    assert Store(path).history("anyone", None, 10)[0][-1].text == "after the migration"


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError):
        Store(path)


async def test_the_async_store_runs_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every SQLite call of the async store happens on a worker thread."""
    threads: list[threading.Thread] = []
    for name in ("create_users", "user_by_token", "insert", "last_id", "replay", "history"):
        original = getattr(Store, name)

        def spy(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            threads.append(threading.current_thread())
            return _original(*args, **kwargs)

        monkeypatch.setattr(Store, name, spy)

    store = await AsyncStore.open(tmp_path / "chat.db")
    user, token = await store.create_user("alice")
    assert await store.user_by_token(token) == user
    posted = await store.insert([Draft(user, "x", "hi", None)])
    assert await store.last_id() == posted[0].message.id
    await store.replay(user.id, None, 10)
    await store.history(user.id, None, 10, None)
    await store.aclose()
    assert len(threads) == 6
    assert threading.main_thread() not in threads


def test_pages_walk_ids_instead_of_sorting_every_visible_row(store: Store) -> None:
    """History and replay must read ids downwards and stop at the limit: an OR
    answered through indexes sorts every public row (seconds on a million).
    Each part of a page (a room, one side of the private messages) is one
    indexed range, merged without a sort, and no part scans the table."""
    alice, _ = store.create_user("alice")
    bob, _ = store.create_user("bob")
    for i in range(3):
        post(store, alice, f"o{i}", "hi")
    statements: list[str] = []
    with store._reader() as db:
        db.conn.set_trace_callback(statements.append)
    store.history(alice.id, None, 50)
    store.history(alice.id, 3, 50)
    store.history(alice.id, 3, 50, room="r-design")
    store.history(alice.id, 3, 50, with_user=bob.id)
    store.replay(alice.id, None, 50)
    store.replay(alice.id, 1, 50, rooms={"general", "r-design", "r-ops"})
    with store._reader() as db:
        db.conn.set_trace_callback(None)
        pages = [sql for sql in statements if "ORDER BY 1 DESC" in sql]
        assert len(pages) == 6
        for sql in pages:
            plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
            reads = [step for step in plan if step.startswith(("SEARCH", "SCAN"))]
            assert reads and all(" USING " in step and "INDEX" in step for step in reads), plan
            assert not any("TEMP B-TREE" in step for step in plan), plan


def test_retried_offsets_leave_no_gaps_in_the_ids(store: Store) -> None:
    alice, _ = store.create_user("alice")
    for i in range(3):
        post(store, alice, f"k{i}", "first try")
        store.insert([Draft(alice, f"k{i}", "retry", None), Draft(alice, f"k{i}", "again", None)])
    with store._reader() as db:
        ids = [row[0] for row in db.execute("SELECT id FROM messages ORDER BY id")]
    assert ids == [1, 2, 3]
    assert post(store, alice, "k3", "after the retries") == 4


def test_a_refused_draft_fails_alone_and_the_rest_of_its_batch_commits(store: Store) -> None:
    alice, _ = store.create_user("alice")
    bob, _ = store.create_user("bob")
    good, bad, gone, other = store.insert(
        [
            Draft(alice, "a1", "fine", None),
            Draft(alice, "a2", "x\ud800", None),  # not encodable: SQLite refuses the row
            Draft(User("u-gone", "ghost"), "g1", "from nobody", None),  # broken foreign key
            Draft(bob, "b1", "also fine", None),
        ]
    )
    assert isinstance(bad, StoreError) and isinstance(gone, StoreError)
    assert isinstance(good, Posted) and isinstance(other, Posted)
    assert [good.message.id, other.message.id] == [1, 2]
    messages, _ = store.history(alice.id, None, 10)
    assert [m.text for m in messages] == ["fine", "also fine"]


async def test_the_async_store_reports_sqlite_errors_as_store_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await AsyncStore.open(tmp_path / "chat.db")

    def locked(*args: Any) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(Store, "last_id", locked)
    monkeypatch.setattr(Store, "set_nick", locked)
    with pytest.raises(StoreError) as read:
        await store.last_id()
    assert isinstance(read.value.__cause__, sqlite3.OperationalError)
    with pytest.raises(StoreError):
        await store.set_nick("u1", "alice")
    await store.aclose()


async def test_close_waits_for_running_reads_then_refuses_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await AsyncStore.open(tmp_path / "chat.db")
    user, _ = await store.create_user("alice")
    gate = threading.Event()
    entered = trio.Semaphore(0)
    token = trio.lowlevel.current_trio_token()
    original = Store.history

    def slow_history(self: Store, *args: Any) -> Any:
        trio.from_thread.run_sync(entered.release, trio_token=token)
        gate.wait()
        return original(self, *args)

    monkeypatch.setattr(Store, "history", slow_history)
    pages: list[Any] = []
    closed = trio.Event()

    async def read() -> None:
        pages.append(await store.history(user.id, None, 10, None))

    async def close() -> None:
        await store.aclose()
        closed.set()

    async with trio.open_nursery() as nursery:
        for _ in range(READERS - 1):
            nursery.start_soon(read)
        for _ in range(READERS - 1):
            await entered.acquire()  # every read is inside SQLite's thread
        nursery.start_soon(close)
        await trio.testing.wait_all_tasks_blocked()
        assert not closed.is_set()  # the reads still run
        gate.set()
    assert pages == [([], False)] * (READERS - 1)
    with pytest.raises(StoreError):
        await store.last_id()
    with pytest.raises(StoreError):
        await store.create_user("bob")


def test_pruning_deletes_only_old_silent_users_who_are_not_kept(store: Store) -> None:
    talker, _ = store.create_user("talker")
    reader, _ = store.create_user("reader")  # got a private message
    online, _ = store.create_user("online")
    _, silent_token = store.create_user("silent")
    young, _ = store.create_user("young")
    post(store, talker, "o1", "psst", to=reader)
    with store._writer.atomic():
        store._writer.execute("UPDATE users SET created = 1000 WHERE id != ?", [young.id])
    assert store.prune_silent_users(2000, keep=[online.id]) == 1
    assert store.user_by_token(silent_token) is None
    for kept in (talker, reader, online, young):
        assert store.get_user(kept.id) == kept


def test_unread_counts_edits_and_deletes_read_indexes_only(store: Store) -> None:
    """An unread count reads one index alone (kind and deleted are in it), and
    an edit or a delete finds its rows by key: none scans the messages, so
    their cost does not grow with the chat's history."""
    alice, _ = store.create_user("alice")
    bob, _ = store.create_user("bob")
    room = "r-design"
    (sent,) = store.insert([Draft(alice, "o1", "@bob hi", None, room=room, mentions=(bob.id,))])
    assert isinstance(sent, Posted)
    statements: list[str] = []
    with store._reader() as reader:  # the pool's one reader, which unread uses
        for db in (store._writer, reader):
            db.conn.set_trace_callback(statements.append)
    store.unread(bob.id, {room: 0}, {alice.id: 0})
    edit = Draft(alice, "o2", "@bob hi!", None, room=room, mentions=(bob.id,), target=1)
    (edited,) = store.insert([edit])
    assert isinstance(edited, Posted)
    assert store.delete(sent.message.id, bob) is not None
    for db in (store._writer, reader):
        db.conn.set_trace_callback(None)
    queries = [
        sql
        for sql in statements
        if sql.lstrip().startswith(("SELECT", "UPDATE", "DELETE")) and "messages" in sql
    ]
    assert sum("COUNT(*)" in sql for sql in queries) == 2, queries  # room and direct
    assert len(queries) >= 7, queries
    with store._reader() as db:
        for sql in queries:
            plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
            reads = [step for step in plan if step.startswith(("SEARCH", "SCAN"))]
            assert all(step.startswith("SEARCH") or "subquery" in step for step in reads), plan
            if "COUNT(*)" in sql and "FROM messages" in sql:
                assert any("COVERING INDEX" in step for step in reads), plan


def version_4_file(path: Path, room: str) -> None:
    """A store as schema 4 left it (the code's own steps 1 to 4), with a
    message in ``room`` that mentions bob (``u-b``) and a private one to him."""
    db = sqlite_utils.Database(path)
    for step in (
        store_module._create_v1,
        store_module._create_v2,
        store_module._create_v3,
        store_module._create_v4,
    ):
        step(db)
    db.execute("INSERT INTO meta (key, value) VALUES ('epoch', 'e4')")
    db.execute(
        "INSERT INTO users (id, nick, token_hash, created) VALUES"
        " ('u-a', 'alice', 'h-a', 1), ('u-b', 'bob', 'h-b', 2)"
    )
    db.execute(
        "INSERT INTO messages (sender, nick, recipient, recipient_nick, text, ts, client_offset,"
        " room, mentions) VALUES ('u-a', 'alice', NULL, NULL, '@bob old', 10, 'o1', ?, ?),"
        " ('u-a', 'alice', 'u-b', 'bob', 'old psst', 11, 'o2', NULL, NULL)",
        [room, '["u-b"]'],
    )
    db.execute("INSERT INTO mentions (user_id, room, message_id) VALUES ('u-b', ?, 1)", [room])
    db.execute("PRAGMA user_version = 4")
    db.conn.commit()
    db.close()


def test_a_version_4_store_keeps_its_messages_and_takes_edits_and_deletes(
    tmp_path: Path,
) -> None:
    path, room = tmp_path / "old.db", "r-design"
    version_4_file(path, room)
    alice, bob = User("u-a", "alice"), User("u-b", "bob")
    store = Store(path)
    try:
        assert store.epoch == "e4"
        old = store.get(1)
        assert old is not None
        assert (old.text, old.room, old.mentions, old.edited_ts, old.deleted) == (
            "@bob old",
            room,
            ("u-b",),
            None,
            False,
        )
        assert store.unread(bob.id, {room: 0}, {alice.id: 0}) == ({room: (1, 1)}, {alice.id: 1})
        (edit,) = store.insert([Draft(alice, "o3", "old, edited", None, room=room, target=1)])
        assert isinstance(edit, Posted) and edit.message.id == 3
        assert store.delete(2, alice) is not None
        assert store.unread(bob.id, {room: 0}, {alice.id: 0}) == ({room: (1, 0)}, {alice.id: 0})
        page, _ = store.history(bob.id, None, 10, alice.id)
        assert [(m.id, m.deleted, m.text) for m in page] == [(2, True, "")]
        with store._reader() as db:
            for index in ("messages_by_room", "messages_private_pairs"):
                columns = [row[2] for row in db.execute(f"PRAGMA index_info({index})")]
                assert columns[-2:] == ["kind", "deleted"], (index, columns)
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    Store(path).close()  # opening it again changes nothing
