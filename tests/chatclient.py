"""A protocol-v1 test client over trio-websocket: frames in, dicts out."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, connect_websocket_url

#: Frames the tests usually do not care about unless they ask for them.
NOISE = frozenset({"presence", "typing"})


class ChatClient:
    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self._lines: deque[dict[str, Any]] = deque()
        self.welcome: dict[str, Any] = {}

    @classmethod
    async def connect(
        cls, nursery: trio.Nursery, url: str, *, origin: str | None = None
    ) -> ChatClient:
        headers = [(b"Origin", origin.encode())] if origin else None
        ws = await connect_websocket_url(
            nursery, url, extra_headers=headers, max_message_size=4 * 1024 * 1024
        )
        return cls(ws)

    @classmethod
    async def join(
        cls, nursery: trio.Nursery, url: str, **hello: Any
    ) -> tuple[ChatClient, list[dict[str, Any]]]:
        """Connect, say hello, and return the client with its replayed messages."""
        client = await cls.connect(nursery, url)
        replay = await client.hello(**hello)
        return client, replay

    @property
    def user(self) -> dict[str, str]:
        return dict(self.welcome["user"])

    async def send(self, **frame: Any) -> None:
        await self.ws.send_message(json.dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send_message(data)

    async def hello(
        self,
        token: str | None = None,
        nick: str | None = None,
        last_id: int | None = None,
        epoch: str | None = None,
    ) -> list[dict[str, Any]]:
        """Send ``hello``; keep the welcome; return the messages that follow it
        (everything up to the ``pong`` of a ping sent right after)."""
        await self.send(type="hello", token=token, nick=nick, last_id=last_id, epoch=epoch)
        self.welcome = await self.recv()
        assert self.welcome["type"] == "welcome", self.welcome
        await self.send(type="ping")
        replay = []
        while (frame := await self.recv())["type"] != "pong":
            if frame["type"] == "message":
                replay.append(frame)
        return replay

    async def recv(self, within: float = 5.0) -> dict[str, Any]:
        """The next server object (frames are split on newlines)."""
        with trio.fail_after(within):
            while not self._lines:
                data = await self.ws.get_message()
                assert isinstance(data, str)
                self._lines.extend(json.loads(line) for line in data.split("\n") if line)
        return self._lines.popleft()

    async def expect(
        self, kind: str, within: float = 5.0, ignore: frozenset[str] = NOISE
    ) -> dict[str, Any]:
        """The next frame of type ``kind``, skipping only ``ignore`` types."""
        while True:
            frame = await self.recv(within)
            if frame["type"] == kind:
                return frame
            assert frame["type"] in ignore, f"expected {kind}, got {frame}"

    async def quiet(self, seconds: float = 0.3, ignore: frozenset[str] = NOISE) -> list[Any]:
        """Frames (other than ``ignore``) that arrive within ``seconds``."""
        seen = []
        with trio.move_on_after(seconds):
            while True:
                frame = await self.recv(seconds + 1)
                if frame["type"] not in ignore:
                    seen.append(frame)
        return seen

    async def say(self, offset: str, text: str, to: str | None = None) -> dict[str, Any]:
        """Send a message and return its ack."""
        await self.send(type="send", client_offset=offset, text=text, to=to)
        return await self.expect("ack")

    async def say_many(self, texts: list[str], prefix: str = "m") -> list[int]:
        """Send each text in turn (offsets ``prefix0``, ``prefix1``...); return the acked ids."""
        return [(await self.say(f"{prefix}{i}", text))["id"] for i, text in enumerate(texts)]

    async def close_code(self, within: float = 5.0) -> int | None:
        """Read until the server closes; return its close code."""
        with trio.fail_after(within):
            try:
                while True:
                    await self.ws.get_message()
            except ConnectionClosed as exc:
                return None if exc.reason is None else exc.reason.code

    async def aclose(self) -> None:
        await self.ws.aclose()
        # trio-websocket leaves its TCP stream open when the *server* closed
        # the socket (its reader stops at EOF without closing): close it here.
        await self.ws._stream.aclose()
