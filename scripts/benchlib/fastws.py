"""The bench's WebSocket client, for every case: receivers and senders of the
message runs, and the clients of the storm and idle cases (``idle_rss.py``).

At 1000 receivers the generator reads thousands of frames a second, and
wsproto's frame machinery (a generator per frame, a buffer object, an
incremental UTF-8 decoder) was a third of its time. This client speaks only
what the run needs of RFC 6455: the upgrade (no extensions offered, so no
compression unless asked), unmasked server frames (text, binary, ping,
close, pong, fragments), and masked client frames. Anything else ends the
connection with ``Closed``. Asked to (``--deflate``: the storm and idle
cases), the upgrade offers permessage-deflate as browsers do, and messages
the server compressed are inflated.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import zlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import trio

#: Longest server frame taken, in characters (the server bounds its own; this
#: bounds our buffer).
MAX_FRAME_CHARS = 1 << 20
#: Bytes asked of the socket per read: a busy receiver's frames arrive together.
READ_SIZE = 1 << 16
#: RFC 6455's key suffix for Sec-WebSocket-Accept.
ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Longest upgrade response taken.
MAX_RESPONSE_HEAD = 1 << 16
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: The RSV1 bit: set on a message's first frame when it is compressed (RFC 7692).
RSV1 = 0x40
#: What the upgrade offers with ``deflate``: what Chromium sends.
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
#: Longest message taken, in bytes.
MAX_MESSAGE_BYTES = 4 * MAX_FRAME_CHARS


class Closed(Exception):
    """The server refused or closed the connection; ``label`` says how."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label


def mask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``key`` repeated (RFC 6455 5.3)."""
    n = len(payload)
    if not n:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    return head + key + mask(payload, key)


@dataclass(slots=True)
class FrameParser:
    """Server frames out of a byte stream: ``feed`` returns whole frames as
    (opcode, payload) with fragments joined (and inflated, when the server
    took permessage-deflate); raises ``Closed`` on a protocol error."""

    buffer: bytearray = field(default_factory=bytearray)
    #: Opcode and pieces of a fragmented message in progress.
    fragment_opcode: int | None = None
    fragments: list[bytes] = field(default_factory=list)
    fragment_size: int = 0
    fragment_compressed: bool = False
    #: Set once the server took permessage-deflate: its context, kept
    #: across messages as the extension's default asks.
    inflater: zlib._Decompress | None = None

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self.buffer
        buf += data
        out: list[tuple[int, bytes]] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            if b0 & 0x70 and (b0 & 0x70 != RSV1 or self.inflater is None):
                raise Closed("protocol error: reserved bits set")
            if b1 & 0x80:
                raise Closed("protocol error: masked server frame")
            n = b1 & 0x7F
            start = pos + 2
            if n == 126:
                if end - start < 2:
                    break
                (n,) = struct.unpack_from("!H", buf, start)
                start += 2
            elif n == 127:
                if end - start < 8:
                    break
                (n,) = struct.unpack_from("!Q", buf, start)
                start += 8
            if n > MAX_MESSAGE_BYTES:
                raise Closed(f"server frame over {MAX_MESSAGE_BYTES} bytes")
            if end - start < n:
                break
            payload = bytes(buf[start : start + n])
            pos = start + n
            self._frame(b0 & 0x80 != 0, b0 & 0x0F, b0 & RSV1 != 0, payload, out)
        del buf[:pos]
        return out

    def _frame(
        self, fin: bool, opcode: int, compressed: bool, payload: bytes, out: list[tuple[int, bytes]]
    ) -> None:
        if compressed and opcode not in (TEXT, BINARY):
            raise Closed(f"protocol error: RSV1 on a frame of opcode {opcode:#x}")
        if opcode >= CLOSE:
            if not fin or len(payload) > 125 or opcode > PONG:
                raise Closed(f"protocol error: bad control frame {opcode:#x}")
            out.append((opcode, payload))
        elif opcode == CONTINUATION:
            if self.fragment_opcode is None:
                raise Closed("protocol error: continuation without a start")
            self._add_fragment(payload)
            if fin:
                whole = b"".join(self.fragments)
                out.append((self.fragment_opcode, self._message(whole, self.fragment_compressed)))
                self.fragment_opcode, self.fragments, self.fragment_size = None, [], 0
        elif opcode in (TEXT, BINARY):
            if self.fragment_opcode is not None:
                raise Closed("protocol error: new message inside a fragmented one")
            if fin:
                out.append((opcode, self._message(payload, compressed)))
            else:
                self.fragment_opcode, self.fragment_compressed = opcode, compressed
                self._add_fragment(payload)
        else:
            raise Closed(f"protocol error: opcode {opcode:#x}")

    def _message(self, payload: bytes, compressed: bool) -> bytes:
        """A whole message's payload, inflated if it was sent compressed."""
        if not compressed or self.inflater is None:
            return payload
        # RFC 7692 7.2.2: the sender dropped the final empty block's tail.
        data = self.inflater.decompress(payload + b"\x00\x00\xff\xff", MAX_MESSAGE_BYTES)
        if self.inflater.unconsumed_tail:
            raise Closed(f"server message over {MAX_MESSAGE_BYTES} bytes inflated")
        return data

    def _add_fragment(self, payload: bytes) -> None:
        self.fragments.append(payload)
        self.fragment_size += len(payload)
        if self.fragment_size > MAX_MESSAGE_BYTES:
            raise Closed(f"server message over {MAX_MESSAGE_BYTES} bytes")


@dataclass(slots=True, eq=False)
class FastClient:
    """One socket after the upgrade."""

    stream: trio.SocketStream
    parser: FrameParser = field(default_factory=FrameParser)
    #: Whether the server took the permessage-deflate we offered.
    deflate_accepted: bool = False
    frames: int = 0
    binary_frames: int = 0
    bytes_received: int = 0
    send_lock: trio.StrictFIFOLock = field(default_factory=trio.StrictFIFOLock)
    closing: bool = False

    async def send_text(self, text: str) -> None:
        await self._send(client_frame(TEXT, text.encode()))

    async def _send(self, data: bytes) -> None:
        async with self.send_lock:
            await self.stream.send_all(data)

    async def next_texts(self) -> list[str]:
        """Read once; answer pings; return the text messages completed.

        Raises ``Closed`` when the server closes (also in answer to ``close``)."""
        data = await self._receive()
        if not data:
            raise Closed("connection ended without a close frame")
        self.bytes_received += len(data)
        texts: list[str] = []
        for opcode, payload in self.parser.feed(data):
            if opcode == TEXT:
                self.frames += 1
                try:
                    texts.append(payload.decode())
                except UnicodeDecodeError:
                    raise Closed("protocol error: text frame not UTF-8") from None
            elif opcode == BINARY:
                self.binary_frames += 1
            elif opcode == PING:
                await self._send(client_frame(PONG, payload))
            elif opcode == CLOSE:
                await self._closed_by_server(payload)
        return texts

    async def _receive(self) -> bytes:
        """What the socket holds (b"" at its end), once it holds something.

        One wait for readability and one system call, where trio's
        ``receive_some`` tries a read first, then waits, reads, and yields
        once more. At 1000 receivers and 500 msg/s (9,000 frames a second)
        that took the bench from 61% of a core to 52%."""
        sock = self.stream.socket
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                return os.read(sock.fileno(), READ_SIZE)
            except BlockingIOError:
                continue  # woken with nothing to read after all

    async def _closed_by_server(self, payload: bytes) -> None:
        code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 1005
        reason = payload[2:].decode(errors="replace")
        if not self.closing:
            self.closing = True
            with trio.move_on_after(1):  # answer it, as a browser would
                await self._send(client_frame(CLOSE, payload[:2]))
        raise Closed(f"closed {code}" + (f" ({reason})" if reason else ""))

    async def close(self, code: int = 1000) -> None:
        """Send our close frame (once); the server's answer comes to ``next_texts``."""
        if not self.closing:
            self.closing = True
            await self._send(client_frame(CLOSE, struct.pack("!H", code)))

    async def aclose(self) -> None:
        await self.stream.aclose()


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + ACCEPT_GUID).digest()).decode()


async def open_fast(url: str, deflate: bool = False) -> FastClient:
    """Open the socket and complete the upgrade, offering permessage-deflate
    with ``deflate``. Raises ``Closed`` or OSError."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    stream = await trio.open_tcp_stream(host, port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        offer = f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n" if deflate else ""
        request = (
            f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
        )
        await stream.send_all(request.encode())
        received = bytearray()
        while b"\r\n\r\n" not in received:
            data = await stream.receive_some(READ_SIZE)
            if not data:
                raise Closed("connection ended during the upgrade")
            received += data
            if len(received) > MAX_RESPONSE_HEAD:
                raise Closed("upgrade response too long")
        head, _, rest = bytes(received).partition(b"\r\n\r\n")
        accepted = check_upgrade(head.decode("latin-1"), key, deflate)
        client = FastClient(stream, deflate_accepted=accepted)
        if accepted:
            client.parser.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        client.parser.buffer += rest
    except BaseException:
        await stream.aclose()
        raise
    return client


def check_upgrade(head: str, key: str, deflate_offered: bool = False) -> bool:
    """Raise ``Closed`` unless ``head`` accepts the upgrade for ``key``;
    return whether it took the permessage-deflate offered."""
    status, *lines = head.split("\r\n")
    fields = status.split(" ", 2)
    if len(fields) < 2 or fields[1] != "101":
        code = fields[1] if len(fields) > 1 else "?"
        raise Closed(f"rejected HTTP {code}")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("sec-websocket-accept") != accept_key(key):
        raise Closed("upgrade answered with a wrong Sec-WebSocket-Accept")
    chosen = headers.get("sec-websocket-extensions", "")
    if not chosen:
        return False
    name, *params = (part.strip() for part in chosen.split(";"))
    # The server may bound its own window, but must not require a context
    # reset we would not do, nor pick what was not offered.
    if not deflate_offered or name != "permessage-deflate" or "," in chosen:
        raise Closed("server chose an extension that was not offered")
    if any(not p.startswith(("server_", "client_max_window_bits")) for p in params):
        raise Closed(f"server chose deflate parameters not offered: {chosen}")
    return True
