"""When the store fails, the client hears it as the server's fault.

A session on a real hub whose store is made to fail (the synchronous store's
method raises what SQLite raises on a full disk or a held lock): during
``hello`` that is close 1011; on a frame it is an ``error`` ``internal``,
nothing acked, and the socket stays open for the retry.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from fakesession import open_session, running_hub, wait_for
from quartchat.config import Settings
from quartchat.errors import INTERNAL_ERROR
from quartchat.hub import Hub
from quartchat.store import Store


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async with running_hub(Settings(db_path=tmp_path / "chat.db")) as hub:
        yield hub


def disk_full(*args: Any) -> None:
    raise sqlite3.OperationalError("database or disk is full")


async def test_a_store_error_during_hello_closes_with_1011(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Store, "create_users", disk_full)
    async with trio.open_nursery() as nursery:
        client = await open_session(nursery, hub, "alice")
        with trio.fail_after(5):
            await client.closed.wait()
    assert client.close_code == INTERNAL_ERROR
    assert client.of_type("welcome") == []


@pytest.mark.parametrize("failing", ["insert", "get_user"])
async def test_a_store_error_on_send_is_internal_and_the_socket_stays_open(
    hub: Hub, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    bob, _ = await hub.log.create_user("bob")  # offline: his id is looked up
    async with trio.open_nursery() as nursery:
        client = await open_session(nursery, hub, "alice")
        await wait_for(lambda: client.of_type("welcome"))
        with monkeypatch.context() as patch:
            patch.setattr(Store, failing, disk_full)
            await client.client_says(type="send", client_offset="k1", text="hi", to=bob.id)
            await wait_for(lambda: client.of_type("error"))
        assert client.of_type("error") == [
            {
                "type": "error",
                "code": "internal",
                "message": "the server could not reach its store; retry",
                "client_offset": "k1",
            }
        ]
        assert client.of_type("ack") == []
        assert await hub.log.last_id() == 0

        await client.client_says(type="send", client_offset="k1", text="hi", to=bob.id)
        await wait_for(lambda: client.of_type("ack"))
        assert not client.closed.is_set()
        nursery.cancel_scope.cancel()


async def test_a_client_leaving_during_its_nick_write_leaves_store_and_presence_agreeing(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nick asked for in ``hello`` is announced at once and stored after:
    the client leaving while that write waits for a busy writer must not
    leave the old nick stored under the one everyone was told."""
    alice, token = await hub.log.create_user("alice")
    bob, _ = await hub.log.create_user("bob")
    gate = threading.Event()
    original = Store.set_nick

    def set_nick(self: Store, user_id: str, nick: str) -> None:
        if user_id == bob.id:
            gate.wait()  # holds the writer
        original(self, user_id, nick)

    monkeypatch.setattr(Store, "set_nick", set_nick)
    async with trio.open_nursery() as nursery:
        watcher = await open_session(nursery, hub, "watcher")
        await wait_for(lambda: watcher.of_type("welcome"))
        nursery.start_soon(hub.log.set_nick, bob.id, "bobby")
        async with trio.open_nursery() as alice_connection:
            await open_session(alice_connection, hub, "alicia", token=token)
            await wait_for(lambda: any(f["event"] == "join" for f in watcher.of_type("presence")))
            await trio.testing.wait_all_tasks_blocked()  # her nick write waits for the writer
            alice_connection.cancel_scope.cancel()  # she leaves
            gate.set()
        joined = [f for f in watcher.of_type("presence") if f["event"] == "join"]
        assert [f["user"] for f in joined] == [{"id": alice.id, "nick": "alicia"}]
        stored = await hub.log.get_user(alice.id)
        assert stored is not None and stored.nick == "alicia"
        nursery.cancel_scope.cancel()
