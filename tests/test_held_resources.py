"""What one client can make a real ``quartchat`` process hold (issue 19):
not memory past the frame limit (:mod:`quartchat.patches.frame_limit`), not
a socket it stopped reading (:mod:`quartchat.patches.stalled_writer`)."""

from __future__ import annotations

import contextlib
import json
import math
import socket
import struct
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio
from trio_websocket import ConnectionClosed

from chatclient import ChatClient
from served import PATIENCE, QUARTCHAT, Served, Servers

#: The most an attacker sends before the test gives up on the server closing:
#: far past hypercorn's 64 KiB limit and the kernel's buffers on both sides.
ATTACK_BYTES = 64 * 2**20
#: How much the server may grow while it is attacked (one frame's worth of
#: buffers, and room for the allocator's own moods); unguarded, it grew by
#: about as much as the attacker sent.
RSS_SLACK_BYTES = 8 * 2**20
#: Seconds the stalled client's socket may take nothing before the test's
#: server drops it (``QUARTCHAT_WRITE_STALL``), and the slack on top of it.
WRITE_STALL = 2.0
STALL_SLACK = 20.0
#: The stalled client's receive buffer: small, so the server's writes fill it soon.
STALLED_RCVBUF = 4096
_TCP_ESTABLISHED = 1


def port_of(served: Served) -> int:
    port = urlsplit(served.base_url).port
    assert port is not None
    return port


def rss_bytes(pid: int) -> int:
    """The resident set of process ``pid`` (``VmRSS``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def client_frame(opcode: int, payload: bytes, *, final: bool = True) -> bytes:
    """A masked client frame (mask key 0, so the payload goes as it is)."""
    first = (0x80 if final else 0) | opcode
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, size)
    return header + b"\0\0\0\0" + payload


def hello_frame(nick: str) -> bytes:
    hello = {"type": "hello", "token": None, "nick": nick, "last_id": None, "epoch": None}
    return client_frame(0x1, json.dumps(hello).encode())


async def open_websocket(port: int, stream: trio.SocketStream | None = None) -> trio.SocketStream:
    """A raw WebSocket to ``/ws``, past its 101 and not a byte further."""
    if stream is None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: bKdPyn3u98cTfZJSh4TNeQ==\r\n\r\n" % port
    )
    answer = b""
    while not answer.endswith(b"\r\n\r\n"):
        answer += await stream.receive_some(1)
    assert answer.startswith(b"HTTP/1.1 101 "), answer
    return stream


def endless_frame() -> tuple[bytes, bytes]:
    """The start of a text frame announcing 2**62 bytes, and what follows."""
    return b"\x81\xff" + struct.pack("!Q", 1 << 62) + b"\0\0\0\0", b"a" * 65536


def endless_fragments() -> tuple[bytes, bytes]:
    """A text message started, then continuation frames that never finish it."""
    return client_frame(0x1, b"a" * 1000, final=False), client_frame(
        0x0, b"a" * 16000, final=False
    ) * 4


ATTACKS: dict[str, tuple[bool, Callable[[], tuple[bytes, bytes]]]] = {
    "one endless frame after hello": (True, endless_frame),
    "one endless frame without hello": (False, endless_frame),
    "endless fragments after hello": (True, endless_fragments),
    "endless fragments without hello": (False, endless_fragments),
}


async def attack(port: int, hello: bool, frames: Callable[[], tuple[bytes, bytes]]) -> int:
    """Send an over-limit message until the server closes the connection;
    the bytes it took. Fails if it took :data:`ATTACK_BYTES`, or kept
    taking for :data:`PATIENCE` seconds."""
    stream = await open_websocket(port)
    start, more = frames()
    sent = 0
    with trio.move_on_after(PATIENCE):
        async with stream:
            try:
                if hello:
                    await stream.send_all(hello_frame("attacker"))
                await stream.send_all(start)
                while sent < ATTACK_BYTES:
                    await stream.send_all(more)
                    sent += len(more)
            except trio.BrokenResourceError:
                return sent  # closed by the server: reset, or a broken pipe
    raise AssertionError(f"the server took {sent} bytes of one message and stayed open")


@pytest.mark.parametrize("hello, frames", ATTACKS.values(), ids=ATTACKS.keys())
async def test_a_message_over_the_limit_closes_tcp_and_costs_no_memory(
    servers: Servers, nursery: trio.Nursery, hello: bool, frames: Callable[[], tuple[bytes, bytes]]
) -> None:
    served = await servers.start(QUARTCHAT)
    (pid,) = served.serving_pids()
    bystander, _ = await ChatClient.join(nursery, served.ws_url, nick="bystander")
    await bystander.say("before", "warming up")  # the first session's allocations
    before = rss_bytes(pid)

    sent = await attack(port_of(served), hello, frames)

    grown = rss_bytes(pid) - before
    assert grown <= RSS_SLACK_BYTES, f"grew {grown} bytes while taking {sent}"
    ack = await bystander.say("after", "unharmed")
    assert ack["type"] == "ack"
    assert served.text.count("closed a connection at a message over 65536 bytes") == 1
    await bystander.aclose()


def tcp_state(stream: trio.SocketStream) -> int:
    """The kernel's TCP state of ``stream`` (``tcpi_state``: 1 is ESTABLISHED)."""
    info = stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return info[0]


async def stalled_client(port: int) -> trio.SocketStream:
    """Says hello as ``stalled`` on a socket with a small receive buffer,
    then reads nothing more."""
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
    await sock.connect(("127.0.0.1", port))
    stream = await open_websocket(port, trio.SocketStream(sock))
    await stream.send_all(hello_frame("stalled"))
    return stream


async def talk_until_reset(talker: ChatClient, stalled: trio.SocketStream) -> int:
    """2000-character messages from ``talker``, each acked before the next,
    until ``stalled``'s connection is no longer established; how many."""
    sent = 0
    while tcp_state(stalled) == _TCP_ESTABLISHED:
        await talker.send(type="send", client_offset=f"t{sent}", text="x" * 2000, to=None)
        while (answer := await talker.recv())["type"] != "ack":
            assert answer["type"] in ("message", "presence"), answer  # its own come back too
        sent += 1
        if sent % 100 == 0:
            await trio.sleep(0.1)  # the socket reset meanwhile: no need to send more
    return sent


async def read_all(client: ChatClient, into: trio.MemorySendChannel[dict[str, Any]]) -> None:
    """Read ``client``'s frames as they come (a client that stops reading is
    what this file is about), and pass them on, until it is closed."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await into.send(await client.recv(within=math.inf))


async def presence_of(nick: str, frames: trio.MemoryReceiveChannel[dict[str, Any]]) -> Any:
    """The next ``presence`` about ``nick`` among ``frames``, past messages
    and others' presence."""
    with trio.fail_after(PATIENCE):
        while True:
            frame = await frames.receive()
            if frame["type"] == "presence" and frame["user"]["nick"] == nick:
                return frame
            assert frame["type"] in ("message", "presence"), frame


async def test_a_client_that_stops_reading_is_reset_and_leaves(
    servers: Servers, nursery: trio.Nursery
) -> None:
    env = {
        "QUARTCHAT_WRITE_STALL": str(WRITE_STALL),
        "QUARTCHAT_LEAVE_GRACE": "0",
        "QUARTCHAT_SEND_RATE": "10000",
        "QUARTCHAT_SEND_BURST": "10000",
        "QUARTCHAT_FRAME_RATE": "10000",
        "QUARTCHAT_FRAME_BURST": "10000",
    }
    served = await servers.start(QUARTCHAT, env=env)
    watcher, _ = await ChatClient.join(nursery, served.ws_url, nick="watcher")
    seen, watched = trio.open_memory_channel[dict[str, Any]](math.inf)
    nursery.start_soon(read_all, watcher, seen)
    talker, _ = await ChatClient.join(nursery, served.ws_url, nick="talker")
    stalled = await stalled_client(port_of(served))
    joined = await presence_of("stalled", watched)
    assert joined["event"] == "join"

    with trio.fail_after(WRITE_STALL + STALL_SLACK):
        await talk_until_reset(talker, stalled)
    # The watcher, which read everything, saw the stalled user leave.
    left = await presence_of("stalled", watched)
    assert (left["event"], left["user"]) == ("leave", joined["user"])
    # And the chat goes on for everyone else.
    ack = await talker.say("after", "still here")
    with trio.fail_after(PATIENCE):
        while (message := await watched.receive())["id"] != ack["id"]:
            assert message["type"] == "message"
    assert message["text"] == "still here"
    assert served.text.count("dropped a connection whose socket took nothing for 2 s") == 1
    for client in (watcher, talker):
        await client.aclose()
    await stalled.aclose()
