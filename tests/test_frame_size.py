"""Server frames are bounded in bytes: joining queued objects never makes a
frame a client capping frames at 64 KiB (as the server caps its own) must
refuse, however long the messages in a replay are."""

from __future__ import annotations

import json

import trio
from trio_websocket import connect_websocket_url

from conftest import Clients, StartServer
from quartchat.writer import MAX_FRAME_BYTES, coalesce


def test_groups_stay_within_the_byte_limit_in_order() -> None:
    lines = ["a" * 30, "é" * 20, "b" * 10, "€" * 5]  # 30, 40, 10 and 15 bytes
    groups = list(coalesce(lines, limit=75))
    assert groups == [["a" * 30, "é" * 20], ["b" * 10, "€" * 5]]
    for group in groups:
        assert len("\n".join(group).encode()) <= 75


def test_a_line_over_the_limit_goes_alone() -> None:
    lines = ["x" * 10, "y" * 100, "z" * 10]
    assert list(coalesce(lines, limit=50)) == [["x" * 10], ["y" * 100], ["z" * 10]]


def test_nothing_to_send_makes_no_frame() -> None:
    assert list(coalesce([])) == []


async def test_a_replay_of_long_messages_fits_a_client_capped_at_64_kib(
    start_server: StartServer, clients: Clients, nursery: trio.Nursery
) -> None:
    server = await start_server(send_rate=100.0, send_burst=100)
    alice, _ = await clients.join(server, nick="alice")
    text = "é" * 2000  # 4000 bytes as UTF-8, sent raw (not \\u-escaped)
    ids = await alice.say_many([text] * 40)  # ~160 KB of replay

    ws = await connect_websocket_url(nursery, server.next_ws_url(), max_message_size=65536)
    hello = {"type": "hello", "token": None, "nick": "bob", "last_id": 0, "epoch": None}
    await ws.send_message(json.dumps(hello))
    await ws.send_message(json.dumps({"type": "ping"}))
    replayed: list[int] = []
    frames = 0
    with trio.fail_after(10):
        while True:
            frame = await ws.get_message()
            assert isinstance(frame, str)
            assert len(frame.encode()) <= MAX_FRAME_BYTES
            frames += 1
            objects = [json.loads(line) for line in frame.split("\n")]
            replayed += [o["id"] for o in objects if o["type"] == "message"]
            if any(o["type"] == "pong" for o in objects):
                break
    await ws.aclose()
    assert replayed == ids
    assert frames > 2  # the replay did not fit one frame
