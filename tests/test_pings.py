"""The server pings every WebSocket once per ``websocket_ping_interval`` from
one timer per worker (quartchat.patches.ping_wheel), and hypercorn's ``read_timeout``
drops a peer that stops answering."""

from __future__ import annotations

import gc
import itertools
import json
from typing import Any

import pytest
import trio
from trio.testing import MockClock
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Ping,
    Request,
    TextMessage,
)

from conftest import StartServer
from quartchat.patches import ping_wheel
from quartchat.patches.direct_send import DirectSend
from quartchat.patches.ping_wheel import PingWheel

pytestmark = pytest.mark.embedded_only

INTERVAL = 0.3
READ_TIMEOUT = 1.5


class RawPeer:
    """A WebSocket client that answers pings only when told to."""

    def __init__(self, stream: trio.SocketStream, answers_pings: bool) -> None:
        self.stream = stream
        self.answers_pings = answers_pings
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.pings = 0
        self.texts: list[str] = []
        self.ended = False
        self._sending = trio.Lock()

    @classmethod
    async def open(cls, url: str, answers_pings: bool) -> RawPeer:
        host_port = url.removeprefix("ws://").split("/", 1)[0]
        host, port = host_port.rsplit(":", 1)
        peer = cls(await trio.open_tcp_stream(host, int(port)), answers_pings)
        await peer.send(Request(host=host_port, target="/ws"))
        while not any(isinstance(e, AcceptConnection) for e in await peer.read()):
            pass
        await peer.say({"type": "hello"})
        return peer

    async def send(self, event: Event) -> None:
        async with self._sending:
            await self.stream.send_all(self.ws.send(event))

    async def say(self, frame: dict[str, Any]) -> None:
        await self.send(TextMessage(json.dumps(frame)))

    def messages(self) -> int:
        return sum(text.count('"type":"message"') for text in self.texts)

    async def read(self) -> list[Event]:
        """One read's events; pings answered if this peer answers them."""
        data = await self.stream.receive_some()
        if not data:
            self.ended = True
            return []
        self.ws.receive_data(data)
        events = list(self.ws.events())
        for event in events:
            if isinstance(event, Ping):
                self.pings += 1
                if self.answers_pings:
                    await self.send(event.response())
            elif isinstance(event, TextMessage):
                self.texts.append(event.data)
            elif isinstance(event, CloseConnection):
                self.ended = True
        return events

    async def read_until_ended(self) -> None:
        while not self.ended:
            await self.read()


@pytest.mark.parametrize("path", ["direct", "hypercorn"])
async def test_a_silent_peer_is_dropped_and_one_that_answers_pings_stays(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """Either way a ping can go: straight to the socket, or hypercorn's way
    (TLS, or a socket some other writer holds)."""
    if path == "hypercorn":
        monkeypatch.setattr(DirectSend, "of_stream", classmethod(lambda cls, stream: None))
    server = await start_server(
        hypercorn={"websocket_ping_interval": INTERVAL, "read_timeout": READ_TIMEOUT}
    )
    answering = await RawPeer.open(server.ws_url, answers_pings=True)
    silent = await RawPeer.open(server.ws_url, answers_pings=False)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(answering.read_until_ended)
        with trio.fail_after(READ_TIMEOUT + 5):
            await silent.read_until_ended()
        # Long after the silent one went, the answering one is still served.
        await trio.sleep(READ_TIMEOUT)
        assert not answering.ended
        nursery.cancel_scope.cancel()
    assert silent.pings >= 1  # pinged, and dropped for not answering
    assert answering.pings >= 3  # pinged again and again, and kept by answering
    assert answering.texts[0].startswith('{"type":"welcome"')
    await answering.stream.aclose()
    await silent.stream.aclose()


async def test_pings_and_chat_frames_arrive_whole_together(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pings written straight to the socket while the chat writes frames to it
    too: every frame parses (wsproto would fail on a torn one) and every
    message comes."""
    direct_pings = 0
    write = DirectSend.write

    async def counting(self: DirectSend, frame: bytes) -> bool:
        nonlocal direct_pings
        written = await write(self, frame)
        direct_pings += written and frame == ping_wheel.PING_FRAME
        return written

    monkeypatch.setattr(DirectSend, "write", counting)
    server = await start_server(
        hypercorn={"websocket_ping_interval": 0.01},
        send_rate=1000.0,
        send_burst=1000,
        frame_rate=1000.0,
        frame_burst=1000,
    )
    listener = await RawPeer.open(server.ws_url, answers_pings=True)
    talker = await RawPeer.open(server.ws_url, answers_pings=True)

    async def talk() -> None:
        for i in range(200):
            await talker.say({"type": "send", "client_offset": f"c{i}", "text": f"message {i}"})
            await trio.sleep(0.002)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(talker.read_until_ended)
        nursery.start_soon(talk)
        with trio.fail_after(10):
            while listener.messages() < 200 and not listener.ended:
                await listener.read()
        nursery.cancel_scope.cancel()
    assert listener.messages() == 200
    assert listener.pings > 10
    assert direct_pings > 10
    for peer in (listener, talker):
        assert not peer.ended
        await peer.stream.aclose()


# ----- the wheel itself, on trio's virtual clock -----------------------------


class FakeTaskGroup:
    def __init__(self, pinged: list[tuple[float, Any]], over: bool = False) -> None:
        self.pinged = pinged
        self.over = over

    def spawn(self, func: Any, stream: Any) -> None:
        assert func is ping_wheel.ping
        if self.over:
            raise RuntimeError("Nursery is closed to new arrivals")
        self.pinged.append((trio.current_time(), stream))


class FakeStream:
    """What the wheel uses of hypercorn's WSStream."""

    def __init__(self, pinged: list[tuple[float, Any]], over: bool = False) -> None:
        self.closed = False
        self.task_group = FakeTaskGroup(pinged, over)


async def test_each_connection_is_pinged_once_per_interval(autojump_clock: MockClock) -> None:
    pinged: list[tuple[float, Any]] = []
    wheel = PingWheel.of_this_run(20.0)
    assert PingWheel.of_this_run(20.0) is wheel  # one per run and interval
    streams: list[Any] = []
    added_at: dict[Any, float] = {}
    for _ in range(50):
        stream = FakeStream(pinged)
        streams.append(stream)
        wheel.add(stream)
        added_at[stream] = trio.current_time()
        await trio.sleep(0.37)
    await trio.sleep(100)
    for stream in streams:
        times = [at for at, pinged_stream in pinged if pinged_stream is stream]
        first = times[0] - added_at[stream]
        assert 20.0 - wheel.tick <= first <= 20.0 + 1e-6
        assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [20.0] * (len(times) - 1)
        assert len(times) >= 4


async def test_connections_that_are_over_leave_the_wheel(autojump_clock: MockClock) -> None:
    pinged: list[tuple[float, Any]] = []
    wheel = PingWheel.of_this_run(5.0)
    closed, task_group_gone, freed, open_ = (
        FakeStream(pinged),
        FakeStream(pinged, over=True),
        FakeStream(pinged),
        FakeStream(pinged),
    )
    for stream in (closed, task_group_gone, freed, open_):
        wheel.add(stream)
    assert len(wheel) == 4
    closed.closed = True
    del freed
    gc.collect()
    assert len(wheel) == 3  # held weakly: a freed connection is gone at once
    await trio.sleep(12)
    assert len(wheel) == 1
    assert {id(stream) for _, stream in pinged} == {id(open_)}
    assert len(pinged) == 2
