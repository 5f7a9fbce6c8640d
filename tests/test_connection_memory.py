"""A connection hypercorn served is freed as soon as it closes, not at the
next full garbage collection (:mod:`quartchat.patches.hypercorn_faults`): a full
collection walks every live object and stalls every client while it runs
(2.6 s with 10,000 connections open)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import trio
import trio.testing
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.trio.tcp_server import TCPServer

import quartchat  # noqa: F401  (importing the package applies the guards)
from conftest import answer_lifespan


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app: ``ok`` to every request, and a lifespan that starts."""
    if scope["type"] == "lifespan":
        return await answer_lifespan(receive, send)
    await receive()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


async def get(port: int) -> bytes:
    """One request on a connection of its own, which the server then closes."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: chat\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := await stream.receive_some():
            answer += chunk
    return answer


@contextmanager
def no_garbage_collection() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def test_closed_connections_are_freed_without_a_garbage_collection() -> None:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    with no_garbage_collection():
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(serve, hello_app, config))
            port = int(binds[0].rsplit(":", 1)[1])
            for _ in range(5):
                assert (await get(port)).startswith(b"HTTP/1.1 200")
            await trio.testing.wait_all_tasks_blocked()  # the server's side is over too
            # Only reference counting ran: what is left would wait for a collection.
            assert not [obj for obj in gc.get_objects() if isinstance(obj, TCPServer)]
            nursery.cancel_scope.cancel()
