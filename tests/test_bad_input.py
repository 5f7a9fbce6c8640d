"""Bad input gets an error frame or a close code: never a crash, never a
stored row, never harm to the other clients."""

from __future__ import annotations

import json

import pytest

from conftest import Clients, RunningServer, StartServer
from quartchat.errors import MESSAGE_TOO_BIG

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
