"""One slow client is cut with 4008 and never slows the others.

Driven through the real hub and store with fake transports (the
``Transport`` interface a session speaks through), so "slow" is exact: the
slow client's socket never accepts a byte.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from quartchat.broker import LocalBroker
from quartchat.config import Settings
from quartchat.errors import TOO_SLOW, PeerGone
from quartchat.hub import Hub
from quartchat.session import Session
from quartchat.store import AsyncStore


class FakeTransport:
    """Frames in through a channel; frames out into a list, or nowhere."""

    def __init__(self, *, stalled: bool = False) -> None:
        self.stalled = stalled
        self.sent: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.closed = trio.Event()
        self._to_server, self._inbox = trio.open_memory_channel[str](100)

    async def client_says(self, **frame: Any) -> None:
        await self._to_server.send(json.dumps(frame))

    async def receive(self) -> str:
        try:
            return await self._inbox.receive()
        except trio.EndOfChannel:
            raise PeerGone from None

    async def send(self, data: str) -> None:
        if self.stalled:
            await trio.sleep_forever()
        self.sent.extend(json.loads(line) for line in data.split("\n"))

    async def close(self, code: int, reason: str) -> None:
        self.close_code = code
        self.closed.set()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [frame for frame in self.sent if frame["type"] == kind]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    settings = Settings(db_path=tmp_path / "chat.db", queue_size=8, send_burst=1000)
    store = await AsyncStore.open(settings.db_path)
    hub = Hub(settings, store, LocalBroker())
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        yield hub
        nursery.cancel_scope.cancel()
    await store.aclose()


async def open_session(nursery: trio.Nursery, hub: Hub, nick: str, **kw: bool) -> FakeTransport:
    transport = FakeTransport(**kw)
    nursery.start_soon(Session(hub, transport).serve)
    await transport.client_says(type="hello", token=None, nick=nick, last_id=None, epoch=None)
    return transport


async def wait_for(predicate: Any) -> None:
    # Polling, because progress also comes from the store's worker threads,
    # which no Trio event reports.
    with trio.fail_after(5):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_a_stalled_client_is_cut_and_the_rest_keep_receiving(hub: Hub) -> None:
    async with trio.open_nursery() as nursery:
        fast = await open_session(nursery, hub, "fast")
        slow = await open_session(nursery, hub, "slow", stalled=True)
        sender = await open_session(nursery, hub, "sender")
        await wait_for(lambda: fast.of_type("welcome") and sender.of_type("welcome"))

        for i in range(40):
            await sender.client_says(type="send", client_offset=f"m{i}", text=f"n{i}", to=None)
        await wait_for(lambda: len(sender.of_type("ack")) == 40)
        await wait_for(lambda: len(fast.of_type("message")) == 40)

        with trio.fail_after(5):
            await slow.closed.wait()
        assert slow.close_code == TOO_SLOW
        # The cut client's user left; the others saw it go.
        await wait_for(lambda: any(f.get("event") == "leave" for f in fast.of_type("presence")))
        ids = [frame["id"] for frame in fast.of_type("message")]
        assert ids == sorted(set(ids))
        nursery.cancel_scope.cancel()


async def test_an_overflowing_queue_does_not_block_the_publisher(hub: Hub) -> None:
    """Publishing to a full queue returns at once: the broker never awaits."""
    async with trio.open_nursery() as nursery:
        slow = await open_session(nursery, hub, "slow", stalled=True)
        sender = await open_session(nursery, hub, "sender")
        await wait_for(lambda: sender.of_type("welcome"))
        with trio.fail_after(5):
            for i in range(30):
                await sender.client_says(type="send", client_offset=f"m{i}", text="x", to=None)
            await wait_for(lambda: len(sender.of_type("ack")) == 30)
        await slow.closed.wait()
        assert slow.close_code == TOO_SLOW
        nursery.cancel_scope.cancel()
