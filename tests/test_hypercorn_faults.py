"""Faults in hypercorn that one client can trigger, held off by
:mod:`quartchat.patches.hypercorn_faults`: tried on the real ``hypercorn`` command,
a process of its own, so a fault that ends it shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trio
from trio_websocket import connect_websocket_url

from chatclient import ChatClient
from served import HYPERCORN, PATIENCE, Served, Servers


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """``hypercorn --config hypercorn.toml quartchat:app`` on a free port with
    a temp database, killed at the end."""
    async with trio.open_nursery() as nursery:
        servers = Servers(nursery, tmp_path)
        try:
            yield await servers.start(HYPERCORN)
        finally:
            await servers.kill_all()
            nursery.cancel_scope.cancel()


def port_of(served: Served) -> int:
    port = urlsplit(served.base_url).port
    assert port is not None
    return port


def upgrade(port: int, extra: bytes = b"") -> bytes:
    """A WebSocket upgrade request for /ws, up to (not including) its blank line."""
    return (
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: bKdPyn3u98cTfZJSh4TNeQ==\r\n%s" % (port, extra)
    )


#: Packets that made hypercorn 0.18.0 exit (the first is pgjones/hypercorn
#: #225): bytes before the 101 race hypercorn's 400 against the app's accept.
KILLING_PACKETS = {
    "bytes behind the upgrade": lambda port: upgrade(port) + b"\r\nxyz",
    "an upgrade with a body": lambda port: upgrade(port, b"Content-Length: 3\r\n\r\nxyz"),
    "a refused origin with bytes behind": lambda port: (
        upgrade(port, b"Origin: http://elsewhere.example\r\n") + b"\r\nxyz"
    ),
    "two upgrades in one packet": lambda port: upgrade(port) + b"\r\n" + upgrade(port) + b"\r\n",
    "an upgrade pipelined behind a request": lambda port: (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + upgrade(port) + b"\r\nxyz"
    ),
}


async def http_status(port: int, path: str) -> bytes:
    """The status line of ``GET path`` on a fresh connection."""
    with trio.fail_after(PATIENCE):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
            answer = b""
            while b"\r\n" not in answer and (chunk := await stream.receive_some()):
                answer += chunk
    return answer.split(b"\r\n")[0]


async def send_and_wait_for_close(port: int, packet: bytes) -> None:
    """Send ``packet``, then read until the server closes this connection."""
    with trio.fail_after(PATIENCE):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(packet)
            try:
                while await stream.receive_some():
                    pass
            except trio.BrokenResourceError:
                pass  # reset: closed as well


async def chat_works(nursery: trio.Nursery, url: str, speaker: ChatClient | None = None) -> None:
    """A message from ``speaker`` (or a new client) reaches a new listener."""
    listener, _ = await ChatClient.join(nursery, url, nick="listener")
    if speaker is None:
        speaker, _ = await ChatClient.join(nursery, url, nick="speaker")
    ack = await speaker.say("after-fault", "still here")
    message = await listener.expect("message")
    assert (message["id"], message["text"]) == (ack["id"], "still here")
    for client in (listener, speaker):
        await client.aclose()


@pytest.mark.parametrize("packet", KILLING_PACKETS.values(), ids=KILLING_PACKETS.keys())
async def test_one_packet_ends_only_its_own_connection(
    served: Served, nursery: trio.Nursery, packet: object
) -> None:
    assert callable(packet)
    port = port_of(served)
    await send_and_wait_for_close(port, packet(port))
    assert await http_status(port, "/healthz") == b"HTTP/1.1 200 "
    assert served.process.returncode is None
    await chat_works(nursery, served.ws_url)


async def test_a_browser_offering_deflate_gets_plain_frames_and_chats(
    served: Served, nursery: trio.Nursery
) -> None:
    offer = [(b"Sec-WebSocket-Extensions", b"permessage-deflate; client_max_window_bits")]
    with trio.fail_after(PATIENCE):
        ws = await connect_websocket_url(nursery, served.ws_url, extra_headers=offer)
    assert "sec-websocket-extensions" not in {
        name.decode().lower() for name, _ in ws.handshake_headers
    }
    browser = ChatClient(ws)
    await browser.hello(nick="browser")
    await chat_works(nursery, served.ws_url, speaker=browser)
