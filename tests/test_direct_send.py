"""Frames written straight to hypercorn's socket arrive as whole frames, in
order, beside the frames hypercorn writes itself (pongs, closes), whether the
socket takes them at once or only in part."""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
import trio
from hypercorn.trio import serve
from trio_websocket import ConnectionClosed, open_websocket_url
from wsproto.frame_protocol import FrameProtocol

from conftest import Clients, RunningServer, answer_lifespan, hypercorn_config
from quartchat.patches import direct_send
from quartchat.patches.direct_send import DirectSend, text_frame

#: Larger than a socket's send buffer here (up to 4 MiB: net.ipv4.tcp_wmem),
#: so the socket takes it only in part.
HUGE = 32 * 1024 * 1024

#: Runs on the server's socket, given its direct sender and ASGI send and receive.
Handler = Callable[[DirectSend, Any, Any], Awaitable[None]]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_text_frame_is_what_wsproto_would_send(size: int) -> None:
    text = ("é" * size)[: size // 2] + "x" * (size - size // 2)
    expected = FrameProtocol(client=False, extensions=[]).send_data(text, True)
    assert text_frame(text.encode()) == expected


@pytest.fixture
async def serve_handler() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Serve a bare ASGI app on hypercorn whose socket runs ``handler`` with a
    direct sender; the URL of each started server is returned."""
    async with trio.open_nursery() as nursery:
        shutdown = trio.Event()

        async def start(handler: Handler) -> str:
            async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
                if scope["type"] == "lifespan":
                    return await answer_lifespan(receive, send)
                await receive()  # websocket.connect
                await send({"type": "websocket.accept"})
                direct = DirectSend.attach(send)
                assert direct is not None, "hypercorn's objects moved: see direct_send"
                await handler(direct, send, receive)
                await trio.sleep_forever()  # the client ends the connection

            config = hypercorn_config()
            binds = await nursery.start(
                functools.partial(serve, app, config, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]
            )
            return binds[0].replace("http://", "ws://")  # type: ignore[no-any-return]

        yield start
        shutdown.set()


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(bytes asked, bytes written) of each direct write, as they happen."""
    recorded: list[tuple[int, int]] = []

    def write(fd: int, data: bytes) -> int:
        written = os.write(fd, data)
        recorded.append((len(data), written))
        return written

    monkeypatch.setattr(direct_send, "os", SimpleNamespace(write=write))
    return recorded


async def settled(direct: DirectSend, receive: Any) -> None:
    """Wait until whatever hypercorn wrote at the accept is long out: the
    client answers a frame."""
    await direct.send("ready")
    await receive()


async def test_frames_arrive_whole_and_in_order(
    serve_handler: Callable[[Handler], Awaitable[str]], writes: list[tuple[int, int]]
) -> None:
    texts = [f"{i}:" + "ü" * (i * 997 % 70_000) for i in range(60)]

    async def handler(direct: DirectSend, _: Any, receive: Any) -> None:
        await settled(direct, receive)
        for text in texts:
            await direct.send(text)

    url = await serve_handler(handler)
    async with open_websocket_url(url) as ws:
        assert await ws.get_message() == "ready"
        await ws.send_message("go")
        assert [await ws.get_message() for _ in texts] == texts
    assert len(writes) >= len(texts)  # went straight to the socket


async def test_a_partial_write_finishes_before_anyone_elses_frame(
    serve_handler: Callable[[Handler], Awaitable[str]], writes: list[tuple[int, int]]
) -> None:
    """A huge frame the socket takes only in part holds the connection's send
    lock until its last byte: other tasks' frames, and hypercorn's pong, wait
    their turn and come after it whole."""
    huge = "h" * HUGE
    small = [f"small {i}" for i in range(20)]

    async def handler(direct: DirectSend, _: Any, receive: Any) -> None:
        await settled(direct, receive)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(direct.send, huge)
            await trio.lowlevel.checkpoint()  # the huge frame has begun
            for text in small:
                nursery.start_soon(direct.send, text)

    url = await serve_handler(handler)
    async with open_websocket_url(url, max_message_size=2 * HUGE) as ws:
        assert await ws.get_message() == "ready"
        await ws.send_message("go")
        await trio.sleep(0.3)  # let the server's socket fill up
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                # Answered by hypercorn once the huge frame is out, between whole frames.
                nursery.start_soon(ws.ping, b"are you there")
                got = [await ws.get_message() for _ in range(1 + len(small))]
    assert got[0] == huge
    assert sorted(got[1:]) == sorted(small)
    asked, written = writes[-1]
    assert asked > HUGE > written  # the huge frame went out in part, the rest by hypercorn


async def test_after_a_close_nothing_more_is_written(
    serve_handler: Callable[[Handler], Awaitable[str]],
) -> None:
    async def handler(direct: DirectSend, send: Any, _: Any) -> None:
        await direct.send("before")
        await send({"type": "websocket.close", "code": 4321, "reason": "done"})
        await direct.send("after")  # through ASGI, which hypercorn now ignores

    url = await serve_handler(handler)
    async with open_websocket_url(url) as ws:
        assert await ws.get_message() == "before"
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
        await ws._stream.aclose()  # trio-websocket leaves it open when the server closed
    assert closed.value.reason is not None
    assert closed.value.reason.code == 4321


async def test_the_chat_sends_its_frames_directly(
    server: RunningServer, clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    original = DirectSend.send

    async def counting(self: DirectSend, text: str) -> None:
        sent.append(text)
        await original(self, text)

    monkeypatch.setattr(DirectSend, "send", counting)
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await alice.say("a1", "hello")
    assert (await bob.expect("message"))["text"] == "hello"
    assert any('"hello"' in frame for frame in sent)
