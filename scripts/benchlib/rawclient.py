"""A chat client on wsproto directly, for the connection cases (``--storm``,
``--idle``): one socket read by the task that uses it, with no reader task
or channel of its own. It can offer permessage-deflate as browsers do, which
trio-websocket's client never does, and it counts every frame and object.
(The message runs use ``fastws``, leaner still, which takes ``Closed`` and
the read size from here.)
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

#: Longest server frame taken (the server bounds its own; this bounds our buffer).
MAX_FRAME_CHARS = 1 << 20
#: Bytes asked of the socket per read: a busy receiver's frames arrive together.
READ_SIZE = 1 << 16


class Closed(Exception):
    """The server refused or closed the connection; ``label`` says how."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label


@dataclass(slots=True, eq=False)
class RawClient:
    """One socket, and what arrived on it: frames, bytes, objects by type."""

    stream: trio.SocketStream
    ws: WSConnection
    accepted: bool = False
    deflate_accepted: bool = False
    frames: int = 0
    binary_frames: int = 0
    bytes_received: int = 0
    #: Text of a frame whose end has not arrived yet.
    partial: str = ""
    objects: Counter[str] = field(default_factory=Counter)
    #: A sender task and the reader's pong may write at once: one at a time.
    send_lock: trio.StrictFIFOLock = field(default_factory=trio.StrictFIFOLock)
    #: We sent our close frame; the server's answer ends the reading.
    closing: bool = False

    async def send_text(self, text: str) -> None:
        await self._send(self.ws.send(TextMessage(data=text)))

    async def _send(self, data: bytes) -> None:
        async with self.send_lock:
            await self.stream.send_all(data)

    async def next_texts(self) -> list[str]:
        """Read once; answer pings (hypercorn drops a peer silent for its
        ``read_timeout``); return the text frames completed by what arrived.

        Raises ``Closed`` when the server closes (also in answer to ``close``)."""
        data = await self.stream.receive_some(READ_SIZE)
        if not data:
            raise Closed("connection ended without a close frame")
        self.bytes_received += len(data)
        self.ws.receive_data(data)
        texts: list[str] = []
        for event in self.ws.events():
            if type(event) is TextMessage and event.message_finished and not self.partial:
                self.frames += 1  # the usual case: a whole frame in one event
                texts.append(event.data)
            else:
                text = await self._handle(event)
                if text is not None:
                    texts.append(text)
        return texts

    async def next_objects(self) -> list[dict[str, Any]]:
        """Read once; return the server objects that arrived, counted."""
        found: list[dict[str, Any]] = []
        for text in await self.next_texts():
            found += self._count(text)
        return found

    async def close(self, code: int = 1000) -> None:
        """Send our close frame (once); the server's answer comes to ``next_texts``."""
        if not self.closing:
            self.closing = True
            await self._send(self.ws.send(CloseConnection(code=code)))

    async def _handle(self, event: Event) -> str | None:
        if isinstance(event, Ping):
            await self._send(self.ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            if not self.closing:
                with trio.move_on_after(1):  # answer it, as a browser would
                    await self._send(self.ws.send(event.response()))
            raise Closed(f"closed {event.code}" + (f" ({event.reason})" if event.reason else ""))
        elif isinstance(event, RejectConnection):
            raise Closed(f"rejected HTTP {event.status_code}")
        elif isinstance(event, AcceptConnection):
            self.accepted = True
            self.deflate_accepted = any(
                isinstance(ext, PerMessageDeflate) for ext in event.extensions
            )
        elif isinstance(event, TextMessage):
            # wsproto hands over a long frame in pieces, as its bytes arrive.
            self.partial += event.data
            if len(self.partial) > MAX_FRAME_CHARS:
                raise Closed(f"server frame over {MAX_FRAME_CHARS} characters")
            if event.message_finished:
                text, self.partial = self.partial, ""
                self.frames += 1
                return text
        elif isinstance(event, BytesMessage) and event.message_finished:
            self.binary_frames += 1
        return None

    def _count(self, text: str) -> list[dict[str, Any]]:
        """The objects of one whole frame (one per line), counted by type."""
        objects = []
        for line in text.split("\n"):
            if not line:
                continue
            obj = parse_object(line)
            if obj is None:
                self.objects["malformed"] += 1
            else:
                self.objects[str(obj.get("type"))] += 1
                objects.append(obj)
        return objects

    async def aclose(self) -> None:
        await self.stream.aclose()


def parse_object(line: str) -> dict[str, Any] | None:
    """One line of a server frame as a JSON object, or None if it is not one."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


async def connect(
    url: str, hello: dict[str, Any], deflate: bool
) -> tuple[RawClient, dict[str, Any]]:
    """Open the socket, send ``hello`` and return the client and its ``welcome``.

    With ``deflate`` the upgrade offers permessage-deflate; whether the
    server took it is in ``deflate_accepted``. Raises ``Closed`` or OSError.
    """
    client = await open_ws(url, deflate)
    try:
        await client.send_text(json.dumps(hello))
        while True:
            for obj in await client.next_objects():
                if obj.get("type") == "welcome":
                    return client, obj
    except BaseException:
        await client.aclose()
        raise


async def open_ws(url: str, deflate: bool = False) -> RawClient:
    """Open the socket and complete the WebSocket upgrade (nothing sent yet).

    Raises ``Closed`` (refused) or OSError.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    stream = await trio.open_tcp_stream(host, port)
    client = RawClient(stream, WSConnection(ConnectionType.CLIENT))
    try:
        extensions = [PerMessageDeflate()] if deflate else []
        request = Request(host=f"{host}:{port}", target=parts.path or "/", extensions=extensions)
        await stream.send_all(client.ws.send(request))
        while not client.accepted:
            if await client.next_texts():
                raise Closed("text frame before the upgrade completed")
    except BaseException:
        await client.aclose()
        raise
    return client
