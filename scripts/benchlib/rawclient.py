"""A chat client on wsproto directly, for the connection cases (``--storm``,
``--idle``): it can offer permessage-deflate as browsers do, which
trio-websocket's client never does, and it counts every frame and object.
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
    bytes_received: int = 0
    #: Text of a frame whose end has not arrived yet.
    partial: str = ""
    objects: Counter[str] = field(default_factory=Counter)

    async def send_text(self, text: str) -> None:
        await self.stream.send_all(self.ws.send(TextMessage(data=text)))

    async def next_objects(self) -> list[dict[str, Any]]:
        """Read once; answer pings (hypercorn drops a peer silent for its
        ``read_timeout``); return the server objects that arrived, counted."""
        data = await self.stream.receive_some()
        if not data:
            raise Closed("connection ended without a close frame")
        self.bytes_received += len(data)
        self.ws.receive_data(data)
        found: list[dict[str, Any]] = []
        for event in self.ws.events():
            found += await self._handle(event)
        return found

    async def _handle(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, Ping):
            await self.stream.send_all(self.ws.send(event.response()))
        elif isinstance(event, CloseConnection):
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
                return self._count(text)
        return []

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
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    stream = await trio.open_tcp_stream(host, port)
    client = RawClient(stream, WSConnection(ConnectionType.CLIENT))
    try:
        extensions = [PerMessageDeflate()] if deflate else []
        request = Request(host=f"{host}:{port}", target=parts.path or "/", extensions=extensions)
        await stream.send_all(client.ws.send(request))
        while not client.accepted:
            await client.next_objects()
        await client.send_text(json.dumps(hello))
        while True:
            for obj in await client.next_objects():
                if obj.get("type") == "welcome":
                    return client, obj
    except BaseException:
        await client.aclose()
        raise
