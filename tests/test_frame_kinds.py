"""The protocol speaks text frames of UTF-8 JSON: any other frame closes the
socket with its RFC 6455 code, and harms no one else."""

from __future__ import annotations

from conftest import Clients, RunningServer
from quartchat.errors import UNSUPPORTED_DATA

#: RFC 6455: a text frame whose payload is not UTF-8.
INVALID_PAYLOAD = 1007


def masked_text_frame(payload: bytes) -> bytes:
    """One final, masked client text frame (payload under 126 bytes), with
    bytes no WebSocket library would let a test send as text."""
    mask = b"\x01\x02\x03\x04"
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


async def test_invalid_utf8_in_a_text_frame_closes_with_1007(
    server: RunningServer, clients: Clients
) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await alice.ws._stream.send_all(masked_text_frame(b'{"type":"ping","x":"\xff"}'))
    assert await alice.close_code() == INVALID_PAYLOAD
    assert (await bob.say("b1", "unharmed"))["id"] == 1


async def test_a_binary_frame_closes_with_1003(server: RunningServer, clients: Clients) -> None:
    alice, _ = await clients.join(server, nick="alice")
    bob, _ = await clients.join(server, nick="bob")
    await alice.send_raw(b'{"type": "send", "client_offset": "a1", "text": "hi", "to": null}')
    assert await alice.close_code() == UNSUPPORTED_DATA
    assert (await bob.say("b1", "unharmed"))["id"] == 1
    assert server.count() == 1


async def test_a_binary_hello_closes_with_1003(server: RunningServer, clients: Clients) -> None:
    client = await clients.connect(server)
    await client.send_raw(b'{"type": "hello", "token": null, "nick": null, "last_id": null}')
    assert await client.close_code() == UNSUPPORTED_DATA
