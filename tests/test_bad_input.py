"""Bad input gets an error frame or a close code: never a crash, never a
stored row, never harm to the other clients."""

from __future__ import annotations

import json
from typing import NoReturn

import pytest

from conftest import Clients, RunningServer, StartServer
from quartchat.errors import MESSAGE_TOO_BIG, NO_HELLO, StoreError

BAD_FRAMES = [
    ("{oops", "bad_json"),
    ("[" * 5000 + "]" * 5000, "bad_json"),
    ("[]", "bad_request"),
    (json.dumps({"no": "type"}), "bad_request"),
    (json.dumps({"type": "dance"}), "bad_request"),
    (
        json.dumps({"type": "send", "client_offset": "ok", "text": ["hi"], "to": None}),
        "bad_request",
    ),
    (json.dumps({"type": "send", "client_offset": "o k", "text": "hi", "to": None}), "bad_offset"),
    (json.dumps({"type": "send", "client_offset": "ok", "text": "   ", "to": None}), "empty"),
    (
        json.dumps(
            {"type": "send", "client_offset": "ok", "text": "\u200b\u200d\u200f", "to": None}
        ),
        "empty",
    ),
    (
        json.dumps({"type": "send", "client_offset": "ok", "text": "x" * 2001, "to": None}),
        "too_long",
    ),
    (json.dumps({"type": "send", "client_offset": "ok", "text": "hi", "to": 7}), "bad_request"),
    (json.dumps({"type": "history", "before_id": "ten"}), "bad_request"),
    (json.dumps({"type": "typing", "active": 1, "to": None}), "bad_request"),
    (json.dumps({"type": "hello", "token": None, "nick": None, "last_id": None}), "bad_request"),
]


@pytest.mark.parametrize(("raw", "code"), BAD_FRAMES)
async def test_a_bad_frame_gets_an_error_and_stores_nothing(
    server: RunningServer, clients: Clients, raw: str, code: str
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await alice.send_raw(raw)
    error = await alice.expect("error")
    assert error["code"] == code
    assert error["message"]
    assert server.count() == 0
    # The socket stays open and everyone is still served.
    ack = await alice.say("after", "still works")
    assert (await bob.expect("message"))["id"] == ack["id"]


async def test_an_error_about_a_send_names_its_offset(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    await alice.send(type="send", client_offset="k3j-17", text="x" * 2001, to=None)
    assert await alice.expect("error") == {
        "type": "error",
        "code": "too_long",
        "message": "text over 2000 characters",
        "client_offset": "k3j-17",
    }


async def test_a_frame_over_64_kib_closes_with_1009(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await alice.send(type="send", client_offset="big", text="x" * (64 * 1024), to=None)
    assert await alice.close_code() == MESSAGE_TOO_BIG
    assert server.count() == 0
    await bob.say("b", "unharmed")


async def test_the_app_enforces_64_kib_even_if_hypercorn_allows_more(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server(hypercorn={"websocket_max_message_size": 1 << 20})
    alice, _ = await clients.join(server, nick="alice")
    await alice.send(type="send", client_offset="big", text="é" * 40_000, to=None)
    assert await alice.close_code() == MESSAGE_TOO_BIG
    assert server.count() == 0


async def test_an_unknown_recipient_is_refused(server: RunningServer, clients: Clients) -> None:
    alice, _ = await clients.join(server, nick="alice")
    await alice.send(type="send", client_offset="dm", text="psst", to="u-nobody")
    error = await alice.expect("error")
    assert (error["code"], error["client_offset"]) == ("unknown_user", "dm")
    assert server.count() == 0


#: Frames that carry a lone surrogate (JSON ``\ud800``, not a Unicode scalar
#: value) in one string field each, and the error each gets.
SURROGATE_FIELDS = [
    ({"type": "nick", "nick": "x\ud800"}, "bad_nick"),
    ({"type": "send", "client_offset": "s1", "text": "hi\ud800", "to": None}, "bad_request"),
    ({"type": "send", "client_offset": "s2", "text": "hi", "to": "u\udc00"}, "bad_request"),
    ({"type": "typing", "active": True, "to": "\ud800"}, "bad_request"),
    ({"type": "history", "before_id": None, "limit": 5, "with": "\udfff"}, "bad_request"),
    ({"type": "hello", "token": "\ud800", "nick": None, "last_id": None}, "bad_request"),
    ({"type": "hello", "token": None, "nick": None, "epoch": "\ud800"}, "bad_request"),
    ({"type": "\ud800"}, "bad_request"),
    ({"type": "send", "client_offset": "\ud800", "text": "hi", "to": None}, "bad_offset"),
]


@pytest.mark.parametrize(("fields", "code"), SURROGATE_FIELDS)
async def test_a_lone_surrogate_in_any_field_is_refused_and_harms_nobody(
    server: RunningServer, clients: Clients, fields: dict[str, object], code: str
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await alice.send_raw(json.dumps(fields))
    error = await alice.expect("error")
    assert error["code"] == code
    offset = fields.get("client_offset")
    assert error.get("client_offset") == (offset if offset != "\ud800" else None)
    assert server.count() == 0
    # Nothing unencodable reached anyone: both sockets still work both ways.
    ack = await alice.say("after", "still works")
    assert (await bob.expect("message"))["id"] == ack["id"]
    ack = await bob.say("reply", "me too")
    assert (await alice.expect("message"))["id"] == ack["id"]


async def test_a_hello_with_a_lone_surrogate_nick_gets_bad_nick_after_welcome(
    server: RunningServer, clients: Clients
) -> None:
    bob, _ = await clients.join(server, nick="bob")
    alice = await clients.connect(server)
    await alice.send(type="hello", token=None, nick="x\ud800", last_id=None, epoch=None)
    alice.welcome = await alice.expect("welcome")
    assert alice.user["nick"].startswith("guest-")
    assert (await alice.expect("error"))["code"] == "bad_nick"
    joined = await bob.expect("presence", ignore=frozenset({"typing"}))
    assert joined["user"] == alice.user
    ack = await bob.say("b", "hello guest")
    assert (await alice.expect("message"))["id"] == ack["id"]


@pytest.mark.parametrize("field", ["token", "epoch"])
async def test_a_first_hello_with_a_lone_surrogate_closes_with_4001(
    server: RunningServer, clients: Clients, field: str
) -> None:
    bob, _ = await clients.join(server, nick="bob")
    alice = await clients.connect(server)
    hello = {"type": "hello", "token": None, "nick": "alice", "last_id": None, "epoch": None}
    await alice.send_raw(json.dumps({**hello, field: "\ud800"}))
    assert await alice.close_code() == NO_HELLO
    await bob.say("b", "unharmed")


OUT_OF_RANGE = [
    {"type": "history", "before_id": 2**63, "limit": 10},
    {"type": "history", "before_id": -1, "limit": 10},
    {"type": "history", "before_id": 10**30, "limit": 10},
    {"type": "history", "before_id": None, "limit": 2**63},
    {"type": "history", "before_id": None, "limit": -5},
    {"type": "history", "before_id": None, "limit": 0},
]


@pytest.mark.parametrize("fields", OUT_OF_RANGE)
async def test_numbers_outside_64_bits_or_below_their_floor_are_bad_requests(
    server: RunningServer, clients: Clients, fields: dict[str, object]
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    await alice.send_raw(json.dumps(fields))
    assert (await alice.expect("error"))["code"] == "bad_request"
    await alice.say("after", "still works")


@pytest.mark.parametrize("last_id", [2**63, 10**30, -1])
async def test_a_hello_cursor_outside_64_bits_closes_with_4001(
    server: RunningServer, clients: Clients, last_id: int
) -> None:
    alice = await clients.connect(server)
    await alice.send(type="hello", token=None, nick="alice", last_id=last_id, epoch=None)
    assert await alice.close_code() == NO_HELLO


async def test_the_largest_64_bit_cursor_is_accepted(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice", last_id=2**63 - 1)
    assert alice.welcome["recovered"]
    await alice.send(type="history", before_id=2**63 - 1, limit=2**63 - 1)
    assert (await alice.expect("history"))["messages"] == []


@pytest.mark.embedded_only  # makes the SQLite store fail
async def test_store_failures_are_not_strikes(
    start_server: StartServer, clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client retrying through a disk-full keeps its socket: the fault is ours."""
    server = await start_server(send_burst=100)
    alice, _ = await clients.join(server, nick="alice")

    async def disk_full(drafts: object) -> NoReturn:
        raise StoreError("database or disk is full")

    monkeypatch.setattr(server.hub.log.store, "insert", disk_full)
    for attempt in range(3 * server.settings.strikes):
        await alice.send(type="send", client_offset="retry", text=f"try {attempt}", to=None)
        error = await alice.expect("error")
        assert (error["code"], error["client_offset"]) == ("internal", "retry")
    monkeypatch.undo()
    assert (await alice.say("retry", "at last"))["id"] > 0


async def test_multi_byte_utf8_over_64_kib_closes_with_1009(
    start_server: StartServer, clients: Clients
) -> None:
    """The limit is on bytes: 40,000 "é" are 80,000 UTF-8 bytes in 40,000 characters."""
    server = await start_server(hypercorn={"websocket_max_message_size": 1 << 20})
    alice, _ = await clients.join(server, nick="alice")
    frame = {"type": "send", "client_offset": "big", "text": "é" * 40_000, "to": None}
    raw = json.dumps(frame, ensure_ascii=False)
    assert len(raw) < 64 * 1024 < len(raw.encode())
    await alice.send_raw(raw)
    assert await alice.close_code() == MESSAGE_TOO_BIG
    assert server.count() == 0


async def test_every_reader_gets_the_text_trimmed(server: RunningServer, clients: Clients) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await alice.say("t", "\n\n  hello\n  world  \n\n")
    assert (await bob.expect("message"))["text"] == "hello\n  world"
    await bob.send(type="history", before_id=None, limit=10)
    assert [m["text"] for m in (await bob.expect("history"))["messages"]] == ["hello\n  world"]
