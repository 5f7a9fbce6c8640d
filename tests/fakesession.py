"""Sessions on a real hub and store, spoken to through a fake transport.

So a test controls the socket exactly (a client that never reads, one that
leaves at a chosen moment) without a network in between.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from quartchat.backends import open_backends
from quartchat.config import Settings
from quartchat.errors import PeerGone
from quartchat.hub import Hub
from quartchat.session import Session


class FakeTransport:
    """Frames in through a channel; frames out into a list, or nowhere."""

    def __init__(self, *, stalled: bool = False) -> None:
        self.stalled = stalled
        self.sent: list[dict[str, Any]] = []
        #: The objects of each frame, frame by frame.
        self.frames: list[list[dict[str, Any]]] = []
        self.close_code: int | None = None
        self.closed = trio.Event()
        #: Set once a send has started that will never return.
        self.stuck = trio.Event()
        self._to_server, self._inbox = trio.open_memory_channel[str](100)

    async def client_says(self, **frame: Any) -> None:
        await self._to_server.send(json.dumps(frame))

    def arrive_together(self, *raw: str) -> None:
        """Frames that reach the server at once (one TCP read), in order:
        the session finds the later ones already waiting when it takes the first."""
        for data in raw:
            self._to_server.send_nowait(data)

    async def receive(self) -> str:
        try:
            return await self._inbox.receive()
        except trio.EndOfChannel:
            raise PeerGone from None

    def receive_nowait(self) -> str | None:
        try:
            return self._inbox.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return None

    async def send(self, data: str) -> None:
        if self.stalled:
            self.stuck.set()
            await trio.sleep_forever()
        frame = [json.loads(line) for line in data.split("\n")]
        self.frames.append(frame)
        self.sent.extend(frame)

    async def close(self, code: int, reason: str) -> None:
        self.close_code = code
        self.closed.set()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [frame for frame in self.sent if frame["type"] == kind]


@asynccontextmanager
async def running_hub(settings: Settings) -> AsyncIterator[Hub]:
    """A hub with its tasks running on a fresh store; closed at the end."""
    hub = Hub(settings, await open_backends(settings))
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        yield hub
        nursery.cancel_scope.cancel()
    await hub.aclose()


async def open_session(
    nursery: trio.Nursery,
    hub: Hub,
    nick: str | None,
    *,
    stalled: bool = False,
    token: str | None = None,
    last_id: int | None = None,
) -> FakeTransport:
    """Start a session and say ``hello``; the welcome arrives later."""
    transport = FakeTransport(stalled=stalled)
    nursery.start_soon(Session(hub, transport).serve)
    await transport.client_says(type="hello", token=token, nick=nick, last_id=last_id, epoch=None)
    return transport


async def wait_for(predicate: Callable[[], object]) -> None:
    # Polling, because progress also comes from the store's worker threads,
    # which no Trio event reports.
    with trio.fail_after(5):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.01)
