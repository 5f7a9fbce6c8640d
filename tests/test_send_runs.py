"""Sends that arrive together are stored together, and answered as if one
by one: each send gets its own ack or error, in the order it was sent, and
a frame of another kind is handled only after the sends before it.

A session posts the sends already waiting behind the one it took (a client
that does not wait for each ack, like the page after a reconnect) in one
call, so they share commits. The fake transport delivers frames "at once"
exactly, as one TCP read would; the last tests check the same over real
sockets, and that Quart-Trio's queue is the one the session looks into.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from quart_trio import QuartTrio
from quart_trio.asgi import TrioASGIWebsocketConnection

from conftest import Clients, StartServer
from fakesession import FakeTransport, open_session, running_hub, wait_for
from quartchat.app import ASGI_SEND_KEY, QuartTransport
from quartchat.config import Settings
from quartchat.errors import MESSAGE_TOO_BIG
from quartchat.hub import Hub

COMMITS = "quartchat_commit_batch_size_count"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    settings = Settings(db_path=tmp_path / "chat.db", send_burst=5, send_rate=0.01)
    async with running_hub(settings) as hub:
        yield hub


def send(offset: str, text: str | None = None, to: str | None = None) -> str:
    return json.dumps({"type": "send", "client_offset": offset, "text": text or offset, "to": to})


def answers(client: FakeTransport) -> list[tuple[str, Any]]:
    """The acks and errors a client got, in order, by offset (errors with their code)."""
    return [
        ("ack", frame["client_offset"])
        if frame["type"] == "ack"
        else ("error", frame.get("client_offset"), frame["code"])
        for frame in client.sent
        if frame["type"] in ("ack", "error")
    ]


def commits(hub: Hub) -> float:
    value = hub.metrics.registry.get_sample_value(COMMITS)
    return 0.0 if value is None else value


async def welcomed(nursery: trio.Nursery, hub: Hub, *nicks: str) -> list[FakeTransport]:
    clients = [await open_session(nursery, hub, nick) for nick in nicks]
    await wait_for(lambda: all(c.of_type("welcome") for c in clients))
    return clients


async def test_sends_arriving_together_share_commits_and_are_answered_in_order(
    hub: Hub,
) -> None:
    async with trio.open_nursery() as nursery:
        alice, bob = await welcomed(nursery, hub, "alice", "bob")
        before = commits(hub)
        alice.arrive_together(
            send("m0"),
            send("m1"),
            send("m2"),
            json.dumps({"type": "send", "client_offset": "bad"}),  # no text: bad_request
            send("m3"),
            send("m4"),
        )
        await wait_for(lambda: len(answers(alice)) == 6)

        assert answers(alice) == [
            ("ack", "m0"),
            ("ack", "m1"),
            ("ack", "m2"),
            ("error", "bad", "bad_request"),
            ("ack", "m3"),
            ("ack", "m4"),
        ]
        # One commit for the three before the bad frame, one for the two after
        # (one each when every send waited for its own).
        assert commits(hub) - before == 2
        ids = [frame["id"] for frame in alice.of_type("ack")]
        assert ids == sorted(ids)
        await wait_for(lambda: len(bob.of_type("message")) == 5)
        assert [m["id"] for m in bob.of_type("message")] == ids
        nursery.cancel_scope.cancel()


async def test_each_send_of_a_run_fails_alone(hub: Hub) -> None:
    """The send limit (a burst of 5 here) is spent in order: the sixth of a
    run is refused and the first five stored; a private message to nobody
    fails without its neighbours."""
    async with trio.open_nursery() as nursery:
        alice, bob = await welcomed(nursery, hub, "alice", "bob")
        alice.arrive_together(
            send("m0"),
            send("m1", to="nobody"),
            *(send(f"m{i}") for i in range(2, 8)),
        )
        await wait_for(lambda: len(answers(alice)) == 8)

        assert answers(alice) == [
            ("ack", "m0"),
            ("error", "m1", "unknown_user"),
            ("ack", "m2"),
            ("ack", "m3"),
            ("ack", "m4"),
            ("ack", "m5"),
            ("error", "m6", "rate_limited"),
            ("error", "m7", "rate_limited"),
        ]
        await wait_for(lambda: len(bob.of_type("message")) == 5)
        assert [m["text"] for m in bob.of_type("message")] == ["m0", "m2", "m3", "m4", "m5"]
        nursery.cancel_scope.cancel()


async def test_sends_before_a_frame_that_closes_the_socket_are_still_stored(hub: Hub) -> None:
    async with trio.open_nursery() as nursery:
        alice, bob = await welcomed(nursery, hub, "alice", "bob")
        alice.arrive_together(send("m0"), send("m1"), "x" * (hub.settings.max_frame_bytes + 1))
        with trio.fail_after(5):
            await alice.closed.wait()
        assert alice.close_code == MESSAGE_TOO_BIG
        await wait_for(lambda: len(bob.of_type("message")) == 2)
        assert [m["text"] for m in bob.of_type("message")] == ["m0", "m1"]
        nursery.cancel_scope.cancel()


async def test_quart_trio_queue_is_read_without_waiting() -> None:
    """The transport takes frames Quart-Trio has already queued for the
    socket, and answers None (never waits) when there are none."""
    scope: dict[str, Any] = {
        "type": "websocket",
        "path": "/ws",
        "query_string": b"",
        "scheme": "ws",
        "headers": [],
        ASGI_SEND_KEY: None,
    }
    connection = TrioASGIWebsocketConnection(QuartTrio(__name__), scope)  # type: ignore[arg-type]
    transport = QuartTransport(connection._create_websocket_from_scope(None))  # type: ignore[arg-type]
    assert transport.receive_nowait() is None
    connection.send_channel.send_nowait("one")
    connection.send_channel.send_nowait("two")
    assert transport.receive_nowait() == "one"
    assert transport.receive_nowait() == "two"
    assert transport.receive_nowait() is None


async def test_a_client_that_does_not_wait_for_acks_gets_them_all_in_order(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server(send_burst=100)
    sender, _ = await clients.join(server, nick="alice")
    reader, _ = await clients.join(server, nick="bob")
    for i in range(40):
        await sender.send(type="send", client_offset=f"m{i}", text=f"n{i}", to=None)
    acks = [await sender.expect("ack") for _ in range(40)]
    assert [a["client_offset"] for a in acks] == [f"m{i}" for i in range(40)]
    ids = [a["id"] for a in acks]
    assert ids == sorted(set(ids))
    got = [await reader.expect("message") for _ in range(40)]
    assert [(m["id"], m["text"]) for m in got] == [(a["id"], f"n{i}") for i, a in enumerate(acks)]
