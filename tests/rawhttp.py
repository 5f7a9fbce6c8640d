"""A raw HTTP/1.1 GET over a Trio socket, for tests that need the status and
headers exactly as the server wrote them."""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit

import trio


class Server(Protocol):
    """Any server a test started (an in-process one, or a real command)."""

    @property
    def base_url(self) -> str: ...


async def request(
    server: Server, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP/1.1 GET: the status, the headers (names lower-cased) and
    the body. Raw, so a test can send any ``Host`` and ``Origin``, and so a
    refused WebSocket upgrade is a status rather than a client exception."""
    parts = urlsplit(server.base_url)
    lines = [f"GET {path} HTTP/1.1"]
    sent = {"Host": parts.netloc, "Connection": "close", **(headers or {})}
    lines += [f"{name}: {value}" for name, value in sent.items()]
    stream = await trio.open_tcp_stream(parts.hostname or "127.0.0.1", parts.port or 80)
    async with stream:
        await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        with trio.fail_after(5):
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                assert chunk, f"connection closed before the headers: {data!r}"
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            fields = {
                name.lower(): value for name, value in (h.split(": ", 1) for h in header_lines)
            }
            while len(body) < int(fields.get("content-length", 0)):
                body += await stream.receive_some(65536)
    return int(status_line.split()[1]), fields, body


def upgrade(origin: str | None, host: str | None = None) -> dict[str, str]:
    """Headers of a WebSocket upgrade from a page at ``origin``."""
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    if host is not None:
        headers["Host"] = host
    if origin is not None:
        headers["Origin"] = origin
    return headers


async def handshake(server: Server, origin: str | None, host: str | None = None) -> int:
    """The HTTP status of a bare WebSocket upgrade: 101 accepted, else refused.

    Not through trio-websocket: it raises ``ConnectionRejected`` for a 403
    from a reader task, and leaves its socket open."""
    return (await request(server, "/ws", upgrade(origin, host)))[0]
