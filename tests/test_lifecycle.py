"""Start-up and shutdown of the real server commands, as an operator sees them."""

from __future__ import annotations

import shutil
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from chatclient import ChatClient
from quartchat.store import Store
from served import HYPERCORN, Servers


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Servers]:
    async with trio.open_nursery() as nursery:
        pool = Servers(nursery, tmp_path)
        try:
            yield pool
        finally:
            await pool.kill_all()
            nursery.cancel_scope.cancel()


def stored_ids(db_file: Path, tmp_path: Path) -> list[int]:
    """Message ids in a copy of ``db_file`` made without its -wal and -shm
    files, the way a backup that copies just the database sees it."""
    backup = tmp_path / "backup"
    backup.mkdir(exist_ok=True)
    shutil.copy(db_file, backup / db_file.name)
    with sqlite3.connect(backup / db_file.name) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM messages ORDER BY id")]


async def test_after_a_stop_the_database_file_alone_holds_every_acked_message(
    servers: Servers, tmp_path: Path, nursery: trio.Nursery
) -> None:
    server = await servers.start(HYPERCORN)
    client, _ = await ChatClient.join(nursery, server.ws_url)
    acked = await client.say_many(["one", "two", "three"])

    assert await server.stop(signal.SIGTERM) == 0
    await client.aclose()
    assert stored_ids(servers.db_path, tmp_path) == acked


async def test_the_log_says_where_it_runs_once(servers: Servers) -> None:
    server = await servers.start(HYPERCORN)
    await server.stop(signal.SIGTERM)
    assert server.text.count("Running on") == 1, server.text


def test_opening_an_up_to_date_database_writes_nothing_to_it(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    Store(path).close()
    written = path.stat().st_mtime_ns

    store = Store(path)
    store.close()

    assert path.stat().st_mtime_ns == written
