"""A test client that behaves as the page does when its server goes away:
it keeps its token and cursor, reconnects (to another worker when told
to), and sends again every message not acked yet, with the same
``client_offset``. It records everything it was given, so a test can check
that each acked message reached it exactly once, in id order."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, connect_websocket_url

#: Seconds any single wait may take before the test fails (hang protection
#: on a shared machine, not a measurement).
PATIENCE = 30.0


@dataclass
class ResumingClient:
    """One user's tab. ``seen`` holds the ids of ``message`` frames in the
    order they arrived, over every connection; ``acked`` maps each of its
    own offsets to the acked id."""

    nick: str
    token: str | None = None
    user_id: str = ""
    #: The highest message id seen, acks included (as the page keeps it).
    cursor: int | None = None
    epoch: str | None = None
    seen: list[int] = field(default_factory=list)
    acked: dict[str, int] = field(default_factory=dict)
    #: (event, user id) of every presence frame, in order.
    presence: list[tuple[str, str]] = field(default_factory=list)
    #: Messages that arrived with an id below the cursor (an ack had moved
    #: it past them): a resume at that moment would have skipped them.
    below_cursor: list[int] = field(default_factory=list)
    #: Codes of the ``error`` frames answered to its sends.
    send_errors: list[str] = field(default_factory=list)
    #: How each connection ended (None: closed without a code).
    close_codes: list[int | None] = field(default_factory=list)
    welcome: dict[str, Any] = field(default_factory=dict)
    ws: WebSocketConnection | None = None
    _lines: list[dict[str, Any]] = field(default_factory=list)

    async def connect(self, nursery: trio.Nursery, url: str) -> None:
        """Connect to ``url`` and say hello with the token and cursor it has."""
        await self.aclose()  # the connection before, if any
        self._lines.clear()
        self.ws = await connect_websocket_url(nursery, url, max_message_size=4 * 1024 * 1024)
        hello = {"type": "hello", "token": self.token, "nick": self.nick}
        hello |= {"last_id": self.cursor, "epoch": self.epoch}
        await self.ws.send_message(json.dumps(hello))
        frame = await self._next()
        assert frame["type"] == "welcome", frame
        self.welcome = frame
        self.token, self.user_id, self.epoch = frame["token"], frame["user"]["id"], frame["epoch"]
        if self.cursor is None:
            self.cursor = frame["last_id"]  # a first visit starts at the present

    async def send(self, offset: str, text: str) -> int | None:
        """Send once; the acked id, or None when refused (recorded) or when
        the connection ended (``ConnectionClosed`` is raised)."""
        assert self.ws is not None
        await self.ws.send_message(
            json.dumps({"type": "send", "client_offset": offset, "text": text, "to": None})
        )
        while True:
            frame = await self._next()
            if frame.get("client_offset") != offset:
                continue
            if frame["type"] == "ack":
                self.acked[offset] = frame["id"]
                self._advance(frame["id"])
                return int(frame["id"])
            assert frame["type"] == "error", frame
            self.send_errors.append(frame["code"])
            return None

    async def read_until(self, wanted: set[int]) -> None:
        """Read until every id in ``wanted`` was seen or acked."""
        while not wanted <= set(self.seen) | set(self.acked.values()):
            await self._next()

    async def read_until_presence(self, event: str, user_id: str) -> None:
        while (event, user_id) not in self.presence:
            await self._next()

    async def wait_closed(self) -> None:
        """Read until the server ends the connection; record how."""
        try:
            while True:
                await self._next()
        except ConnectionClosed:
            return

    async def _next(self) -> dict[str, Any]:
        """The next server object, after recording what it says; records
        the close and raises ``ConnectionClosed`` when the connection ends."""
        assert self.ws is not None
        while not self._lines:
            try:
                data = await self.ws.get_message()
            except ConnectionClosed as exc:
                self.close_codes.append(None if exc.reason is None else exc.reason.code)
                raise
            assert isinstance(data, str)
            for line in data.split("\n"):
                if line:
                    self._lines.append(self._record(json.loads(line)))
        return self._lines.pop(0)

    def _record(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Note what ``frame`` delivers, the moment it arrives."""
        if frame["type"] == "message":
            if self.cursor is not None and frame["id"] < self.cursor:
                self.below_cursor.append(frame["id"])
            self.seen.append(frame["id"])
            self._advance(frame["id"])
        elif frame["type"] == "presence":
            self.presence.append((frame["event"], frame["user"]["id"]))
        return frame

    def _advance(self, message_id: int) -> None:
        if self.cursor is None or message_id > self.cursor:
            self.cursor = message_id

    async def aclose(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            await ws.aclose()
            await ws._stream.aclose()  # see ChatClient.aclose
