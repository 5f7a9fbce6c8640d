"""A deleted message's text leaves the disk (the embedded SQLite store).

A user who deletes a message relies on its text being gone, not hidden: a
copy of ``chat.db`` and its WAL taken a few seconds later must not hold it,
nor the text of any edit of it. The store overwrites the texts where they
lay (``secure_delete``) and the log folds the WAL into the file and cuts it
to nothing soon after (a TRUNCATE checkpoint), waiting out a reader that
holds an older snapshot.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from pathlib import Path

import trio

from quartchat.backends.sqlite_log import SqliteLog
from quartchat.models import Draft, Message, Posted, User

#: What the log promises: the text is gone from the files within this.
PROMISED_SECONDS = 5.0


async def on_disk(path: Path, *needles: str) -> list[str]:
    """Which of ``needles`` the database file or its WAL holds, byte for byte."""
    found = set()
    for name in (path.name, path.name + "-wal"):
        file = trio.Path(path.with_name(name))
        if not await file.exists():
            continue
        data = await file.read_bytes()
        found |= {needle for needle in needles if needle.encode() in data}
    return sorted(found)


async def send(log: SqliteLog, draft: Draft) -> Message:
    [posted] = await log.append([draft])
    assert isinstance(posted, Posted), posted
    return posted.message


async def a_busy_chat_with_a_marked_message(
    log: SqliteLog, author: User, marker: str, edited: str
) -> Message:
    """A few hundred messages of all sizes around one with ``marker`` in its
    text, then edited to say ``edited`` too (so both are on disk until the
    delete: the marker in the message's text and the edit's), so the texts
    spread over many pages, some on overflow pages, as in a chat that has
    run a while."""
    for i in range(300):
        await send(log, Draft(author, f"before-{i}", "x" * (i * 37 % 2500 + 1), None))
    marked = await send(log, Draft(author, "marked", f"{marker} " + "y" * 3000, None))
    new_text = f"{marker} {edited} " + "z" * 100
    await send(log, Draft(author, "edit", new_text, None, target=marked.id))
    for i in range(300):
        await send(log, Draft(author, f"after-{i}", "w" * (i * 53 % 2500 + 1), None))
    return marked


async def wait_until_gone(path: Path, *needles: str) -> float:
    """Seconds until no needle is on disk (fails past the promise, with
    what was still there)."""
    start = trio.current_time()
    while still := await on_disk(path, *needles):
        elapsed = trio.current_time() - start
        assert elapsed < PROMISED_SECONDS, f"still on disk after {elapsed:.1f} s: {still}"
        await trio.sleep(0.05)
    return trio.current_time() - start


async def test_a_deleted_text_and_its_edits_leave_the_database_and_its_wal(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    path = tmp_path / "chat.db"
    log = await SqliteLog.open(path)
    await nursery.start(log.run)
    author, _ = await log.create_user("author")
    moderator, _ = await log.create_user("moderator")
    marker, edited = f"marker-{secrets.token_hex(8)}", f"edited-{secrets.token_hex(8)}"
    marked = await a_busy_chat_with_a_marked_message(log, author, marker, edited)
    assert await on_disk(path, marker, edited) == sorted([marker, edited])  # the test can fail

    assert await log.delete(marked.id, moderator) is not None
    await wait_until_gone(path, marker, edited)

    # Only the text went: the rest of the chat is whole.
    history, _ = await log.history(author.id, None, 1000, None)
    assert len(history) == 601 and [m.id for m in history if m.deleted] == [marked.id]
    assert history[-1].text.startswith("w")
    await log.aclose()


async def test_a_reader_on_an_older_snapshot_delays_the_fold_but_not_past_the_promise(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    """The checkpoint cannot finish while a reader still reads the file as it
    was before the delete; the log tries again until it can, never blocking
    the event loop meanwhile (the ticker below keeps ticking)."""
    path = tmp_path / "chat.db"
    log = await SqliteLog.open(path)
    await nursery.start(log.run)
    author, _ = await log.create_user("author")
    marker, edited = f"marker-{secrets.token_hex(8)}", f"edited-{secrets.token_hex(8)}"
    marked = await a_busy_chat_with_a_marked_message(log, author, marker, edited)
    holding = trio.Event()
    held_for = 1.5

    def hold_a_snapshot(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN")
        conn.execute("SELECT COUNT(*) FROM messages").fetchall()
        trio.from_thread.run_sync(holding.set)
        time.sleep(held_for)  # a slow reader: the snapshot predates the delete
        conn.execute("COMMIT")

    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.sleep(0.01)

    async with trio.open_nursery() as readers:
        readers.start_soon(log.store.read, hold_a_snapshot)
        readers.start_soon(tick)
        await holding.wait()
        assert await log.delete(marked.id, author) is not None
        took = await wait_until_gone(path, marker, edited)
        readers.cancel_scope.cancel()
    assert took >= held_for - 0.5  # it did have to wait for the reader
    assert ticks > 50  # the loop ran all along
    await log.aclose()
