"""The bench's lean WebSocket client (scripts/benchlib/fastws.py) against
wsproto: frames a wsproto server writes parse back the same however the
bytes are cut, and frames it writes are what a wsproto server reads.
"""

from __future__ import annotations

import random
import zlib

import pytest
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import FrameProtocol, Opcode

from benchlib.fastws import (
    BINARY,
    CLOSE,
    PING,
    TEXT,
    Closed,
    FrameParser,
    accept_key,
    check_upgrade,
    client_frame,
    mask,
)


def server() -> FrameProtocol:
    return FrameProtocol(client=False, extensions=[])


def feed_in_pieces(data: bytes, seed: int) -> list[tuple[int, bytes]]:
    parser, out, pos = FrameParser(), [], 0
    rng = random.Random(seed)
    while pos < len(data):
        step = rng.randint(1, 300)
        out += parser.feed(data[pos : pos + step])
        pos += step
    assert not parser.buffer
    return out


@pytest.mark.parametrize("seed", range(5))
def test_server_frames_parse_back_whatever_the_cuts(seed: int) -> None:
    proto = server()
    texts = ["", "a", "é✓" * 40, "x" * 200, "y" * 70_000, '{"type":"message"}\n{"x":1}']
    data = b"".join(proto.send_data(text, fin=True) for text in texts)
    data += proto.send_data(b"\x00\x01", fin=True)
    data += proto.ping(b"p1")
    # A fragmented text message, with a ping between its pieces.
    data += proto.send_data("frag", fin=False) + proto.ping(b"p2")
    data += proto.send_data("ment", fin=False) + proto.send_data("ed", fin=True)
    data += proto.close(1000, "bye")
    out = feed_in_pieces(data, seed)
    assert out == [
        *((TEXT, text.encode()) for text in texts),
        (BINARY, b"\x00\x01"),
        (PING, b"p1"),
        (PING, b"p2"),
        (TEXT, b"fragmented"),
        (CLOSE, b"\x03\xe8bye"),
    ]


@pytest.mark.parametrize(
    "data",
    [
        bytes([0x81 | 0x40, 0x01]) + b"x",  # a reserved bit (compression was not offered)
        bytes([0x81, 0x81]) + b"abcd" + b"x",  # masked by the server
        bytes([0x83, 0x00]),  # unknown opcode
        bytes([0x80, 0x00]),  # continuation without a start
        bytes([0x09, 0x00]),  # fragmented ping
        bytes([0x01, 0x01]) + b"a" + bytes([0x81, 0x01]) + b"b",  # new text inside fragments
    ],
)
def test_a_protocol_error_closes(data: bytes) -> None:
    with pytest.raises(Closed):
        FrameParser().feed(data)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
def test_client_frames_are_masked_and_read_by_a_server(size: int) -> None:
    payload = bytes(random.Random(size).randrange(256) for _ in range(size))
    proto = server()
    proto.receive_bytes(client_frame(BINARY, payload) + client_frame(PING, b"hi"))
    frames = list(proto.received_frames())
    assert [(f.opcode, bytes(f.payload), f.frame_finished) for f in frames] == [
        (Opcode.BINARY, payload, True),
        (Opcode.PING, b"hi", True),
    ]


def test_masking_twice_is_the_identity() -> None:
    data = b"hello, masked world"
    assert mask(mask(data, b"\x01\x02\x03\x04"), b"\x01\x02\x03\x04") == data
    assert mask(data, b"\x00\x00\x00\x00") == data


def test_the_upgrade_answer_is_checked() -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    assert accept_key(key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455's example
    ok = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}"
    )
    check_upgrade(ok, key)
    with pytest.raises(Closed, match="rejected HTTP 429"):
        check_upgrade("HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0", key)
    with pytest.raises(Closed, match="Accept"):
        check_upgrade("HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x", key)


def test_deflate_is_taken_only_when_offered() -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    ok = f"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {accept_key(key)}"
    took = ok + "\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12"
    assert check_upgrade(ok, key, deflate_offered=True) is False  # declined
    assert check_upgrade(took, key, deflate_offered=True) is True
    with pytest.raises(Closed, match="not offered"):
        check_upgrade(took, key, deflate_offered=False)
    with pytest.raises(Closed, match="not offered"):
        check_upgrade(ok + "\r\nSec-WebSocket-Extensions: x-webkit-deflate-frame", key, True)


@pytest.mark.parametrize("seed", range(3))
def test_compressed_server_messages_inflate_back(seed: int) -> None:
    """Messages a wsproto server compresses (context kept between them, some
    fragmented) read back as sent, however the bytes are cut."""
    deflate = PerMessageDeflate()
    assert deflate.accept("permessage-deflate; client_max_window_bits")  # a server taking it
    proto = FrameProtocol(client=False, extensions=[deflate])
    texts = ['{"type":"presence","event":"join"}' * 30, "é✓" * 500, "short", "short"]
    data = b"".join(proto.send_data(text, fin=True) for text in texts)
    data += proto.send_data("frag", fin=False) + proto.send_data("ment", fin=True)
    assert data[0] & 0x40  # the first message went compressed
    parser = FrameParser(inflater=zlib.decompressobj(-zlib.MAX_WBITS))
    out, pos, rng = [], 0, random.Random(seed)
    while pos < len(data):
        step = rng.randint(1, 200)
        out += parser.feed(data[pos : pos + step])
        pos += step
    assert out == [*((TEXT, text.encode()) for text in texts), (TEXT, b"fragment")]
