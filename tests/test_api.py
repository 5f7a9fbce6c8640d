"""The server API (issue 22, Identity): ``POST /api/messages`` stores and
delivers as a ``send`` does (limits, dedup, rooms, privacy), as the user a
JWT with the same ``sub`` is; refuses without the key, storing nothing;
reads a bounded body only (in size and in time), over raw HTTP on both
backends."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio
from test_jwt import SECRET, claims, hs256, login
from test_request_bodies import exchange, status_and_headers
from test_rooms import create_room

import quartchat.api
from conftest import Clients, RunningServer, StartServer
from quartchat.api import MAX_BODY
from quartchat.config import Settings
from quartchat.errors import ConfigError, StoreError

KEY = "k" * 16 + "0123456789abcdef"


async def post(
    server: RunningServer,
    body: dict[str, Any] | bytes,
    key: str | None = KEY,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, dict[str, str], Any]:
    """One raw HTTP request to the API: the status, the headers (names
    lower-cased) and the JSON answer."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {
        "Host": urlsplit(server.base_url).netloc,
        "Content-Type": "application/json",
        "Content-Length": str(len(data)),
        "Connection": "close",
        **({} if key is None else {"Authorization": f"Bearer {key}"}),
        **(headers or {}),
    }
    head = f"{method} /api/messages HTTP/1.1\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in sent.items()) + "\r\n"
    answer = await exchange(server, head.encode() + data)
    status, fields = status_and_headers(answer)
    return status, fields, json.loads(answer.partition(b"\r\n\r\n")[2])


def message(text: str, offset: str = "o1", room: str = "general", **author: Any) -> dict[str, Any]:
    return {
        "room": room,
        "text": text,
        "client_offset": offset,
        "as": author or {"id": "acct-bot", "name": "Build bot"},
    }


async def test_a_post_is_acked_stored_once_and_delivered_live(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server(api_key=KEY)
    alice, _ = await clients.join(server, nick="alice")
    status, headers, answer = await post(server, message("deploy 41 done"))
    assert status == 200, answer
    assert set(answer) == {"id", "ts"}
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    live = await alice.expect("message")
    assert (live["id"], live["ts"], live["text"]) == (answer["id"], answer["ts"], "deploy 41 done")
    assert live["from"]["nick"] == "Build bot"
    assert server.count() == 1
    # A retry (the backend never saw the answer) is the same message.
    status, _, again = await post(server, message("deploy 41 done"))
    assert (status, again) == (200, answer)
    assert server.count() == 1
    assert await alice.quiet(0.3) == []


async def test_the_name_names_a_new_user_only(start_server: StartServer, clients: Clients) -> None:
    server = await start_server(api_key=KEY)
    alice, _ = await clients.join(server, nick="alice")
    await post(server, message("one", "o1", id="acct-2", name="\uff26irst"))
    first = await alice.expect("message")
    assert first["from"]["nick"] == "First"  # the nick rules: NFKC
    await post(server, message("two", "o2", id="acct-2", name="second"))
    assert (await alice.expect("message"))["from"] == first["from"]
    assert (await post(server, message("three", "o3", id="acct-3")))[0] == 200
    assert (await alice.expect("message"))["from"]["nick"].startswith("user-")
    assert server.count("users") == 3  # alice and two accounts


async def test_as_is_the_user_a_jwt_with_that_sub_is(
    start_server: StartServer, clients: Clients
) -> None:
    """On Redis the post goes to one worker, the JWT's socket to the other."""
    server = await start_server(api_key=KEY, jwt_secret=SECRET)
    _, welcome = await login(server, clients, hs256(claims(name="dora")))
    client, _ = await login(server, clients, hs256(claims(name="dora")))
    status, _, answer = await post(server, message("from the backend", id="acct-1", name="zed"))
    assert status == 200
    live = await client.expect("message")
    assert live["from"] == welcome["user"]  # the same id, and the nick online now
    assert server.count("users") == 1
    # Dedup is per user, whichever way they sent: the socket's offset o1 is taken.
    await client.send(type="send", client_offset="o1", text="other", to=None)
    assert (await client.expect("ack"))["id"] == answer["id"]


async def test_rooms_and_privacy_hold(start_server: StartServer, clients: Clients) -> None:
    server = await start_server(api_key=KEY)
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    secret = await create_room(alice, "secret", "private")
    public = await create_room(alice, "lobby", "public", ref="c2")
    bot = await server.hub.backends.identities.user_for_subject("acct-bot", "bot")
    await alice.send(type="room_invite", room=secret["id"], user=bot.id, ref="i1")
    assert (await alice.expect("member"))["ref"] == "i1"

    status, _, answer = await post(server, message("in the room", room=secret["id"]))
    assert status == 200, answer
    live = await alice.expect("message")
    assert (live["id"], live["room"]) == (answer["id"], secret["id"])
    assert await bob.quiet(0.5) == []

    other = {"id": "acct-other", "name": "other"}
    for room, code, expected in (
        (secret["id"], 404, "unknown_room"),  # private: as if it did not exist
        (public["id"], 403, "not_member"),
        ("r-nowhere", 404, "unknown_room"),
    ):
        status, _, refused = await post(server, message("let me in", "x", room=room, **other))
        assert (status, refused["error"]) == (code, expected)
    assert server.count() == 1


WRONG_KEYS = {
    "no header": None,
    "no key": "Bearer ",
    "a key cut short": f"Bearer {KEY[:-1]}",
    "a key too long": f"Bearer {KEY}x",
    "another scheme": f"Basic {KEY}",
}


@pytest.mark.parametrize("authorization", WRONG_KEYS.values(), ids=WRONG_KEYS.keys())
async def test_without_the_key_nothing_is_stored(
    start_server: StartServer, authorization: str | None
) -> None:
    server = await start_server(api_key=KEY)
    headers = {} if authorization is None else {"Authorization": authorization}
    status, fields, answer = await post(server, message("spam"), key=None, headers=headers)
    assert (status, answer["error"]) == (401, "unauthorized")
    assert fields["connection"] == "close"
    assert "bearer" in fields["www-authenticate"].lower()
    assert server.count() == 0
    assert server.count("users") == 0


async def test_without_a_key_set_there_is_no_api(start_server: StartServer) -> None:
    server = await start_server()
    status, _, answer = await post(server, message("hello?"))
    assert (status, answer["error"]) == (404, "not_found")
    status, _, _ = await post(server, b"")
    assert status == 404
    assert server.count() == 0


async def test_only_post(start_server: StartServer) -> None:
    server = await start_server(api_key=KEY)
    status, fields, _ = await post(server, b"", method="GET")
    assert (status, fields["allow"]) == (405, "POST")


BAD_BODIES: dict[str, tuple[bytes, str]] = {
    "not json": (b"{text: hi", "bad_json"),
    "not UTF-8": (b'{"text": "\xff"}', "bad_json"),
    "a list": (b"[]", "bad_request"),
    "no text": (json.dumps({**message("x"), "text": None}).encode(), "bad_request"),
    "a number for text": (
        json.dumps(message("x")).replace('"x"', "1e999").encode(),
        "bad_request",
    ),
    "a huge integer": (
        json.dumps(message("x")).replace('"x"', "9" * 5000).encode(),
        "bad_json",
    ),
    "a lone surrogate": (
        json.dumps(message("x")).replace('"x"', '"a\\ud800b"').encode(),
        "bad_request",
    ),
    "blank text": (json.dumps(message(" \n ")).encode(), "empty"),
    "text too long": (json.dumps(message("x" * 2001)).encode(), "too_long"),
    "a bad offset": (json.dumps(message("x", "no spaces")).encode(), "bad_offset"),
    "no as": (json.dumps({**message("x"), "as": None}).encode(), "bad_request"),
    "as without id": (json.dumps(message("x", name="n")).encode(), "bad_request"),
    "an id too long": (json.dumps(message("x", id="a" * 256)).encode(), "bad_request"),
    "a bad name": (json.dumps(message("x", id="a", name="\x07")).encode(), "bad_nick"),
    "a private message": (json.dumps({**message("x"), "to": "u1"}).encode(), "bad_request"),
    "deeply nested": (b'{"text": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "bad_json"),
}


@pytest.mark.parametrize("body,code", BAD_BODIES.values(), ids=BAD_BODIES.keys())
async def test_a_bad_body_is_a_400_and_stores_nothing(
    start_server: StartServer, body: bytes, code: str
) -> None:
    server = await start_server(api_key=KEY)
    status, _, answer = await post(server, body)
    assert (status, answer["error"]) == (400, code), answer
    assert isinstance(answer["message"], str)
    assert server.count() == 0


async def test_the_send_limit_is_a_429_with_retry_after(start_server: StartServer) -> None:
    server = await start_server(api_key=KEY, send_rate=0.5, send_burst=2)
    for offset in ("a", "b"):
        assert (await post(server, message("ok", offset)))[0] == 200
    status, headers, answer = await post(server, message("too many", "c"))
    assert (status, answer["error"], headers["retry-after"]) == (429, "rate_limited", "2")
    assert server.count() == 2


async def test_a_store_that_fails_is_a_503(start_server: StartServer) -> None:
    server = await start_server(api_key=KEY)

    async def failing(*_: object) -> StoreError:
        return StoreError("disk full")

    server.hub.posting.post_as = failing  # type: ignore[method-assign]
    status, headers, answer = await post(server, message("lost"))
    assert (status, answer["error"], headers["retry-after"]) == (503, "unavailable", "1")


def raw_head(server: RunningServer, *lines: str) -> bytes:
    sent = [
        "POST /api/messages HTTP/1.1",
        f"Host: {urlsplit(server.base_url).netloc}",
        f"Authorization: Bearer {KEY}",
        *lines,
    ]
    return ("\r\n".join(sent) + "\r\n\r\n").encode()


async def test_an_oversized_body_is_a_413_and_is_not_read(start_server: StartServer) -> None:
    server = await start_server(api_key=KEY)
    for head in (
        # Announced: refused before a byte of it is read.
        raw_head(server, "Content-Length: 1000000000") + b"x",
        # Chunked: refused as soon as it grows past the limit.
        raw_head(server, "Transfer-Encoding: chunked")
        + b"%x\r\n" % (MAX_BODY + 1)
        + b"x" * (MAX_BODY + 1)
        + b"\r\n",
    ):
        status, headers = status_and_headers(await exchange(server, head))
        assert (status, headers["connection"]) == (413, "close")
    # At the limit, it is read (and judged on what it holds).
    body = json.dumps(message("x")).encode()
    body += b" " * (MAX_BODY - len(body))
    assert (await post(server, body))[0] == 200


async def test_a_slow_body_is_cut(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quartchat.api, "BODY_SECONDS", 0.5)
    server = await start_server(api_key=KEY)
    with trio.fail_after(5):
        answer = await exchange(server, raw_head(server, "Content-Length: 100") + b"{")
    status, headers = status_and_headers(answer)
    assert (status, headers["connection"]) == (408, "close")
    assert server.count() == 0


async def test_bodies_elsewhere_are_still_refused(start_server: StartServer) -> None:
    server = await start_server(api_key=KEY)
    head = b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello"
    status, headers = status_and_headers(await exchange(server, head))
    assert (status, headers["connection"]) == (413, "close")


def test_the_key_is_a_setting_kept_out_of_sight() -> None:
    settings = Settings.from_env({"QUARTCHAT_API_KEY": KEY})
    assert settings.api_key == KEY
    assert KEY not in repr(settings)
    for bad in ("short", "k" * 31, "k" * 20 + " " + "k" * 20):
        with pytest.raises(ConfigError) as caught:
            Settings.from_env({"QUARTCHAT_API_KEY": bad})
        message = str(caught.value)
        assert "QUARTCHAT_API_KEY" in message and bad not in message and "\n" not in message
