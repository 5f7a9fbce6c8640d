"""The bounded write of :mod:`quartchat.patches.stalled_writer`, on real
loopback TCP: a peer that takes nothing is given up on, one that reads
slowly is not."""

from __future__ import annotations

import socket

import trio

from quartchat.patches.stalled_writer import send_all_in_time, unacknowledged

#: The reader's receive buffer: small, so the writer's socket fills soon.
READER_RCVBUF = 4096


async def tcp_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    """A connected (writer, reader) pair on 127.0.0.1; the reader's buffer is small."""
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, READER_RCVBUF)
    async with listener:
        await sock.connect(listener.socket.getsockname())
        writer = await listener.accept()
    assert isinstance(writer, trio.SocketStream)
    return writer, trio.SocketStream(sock)


async def test_a_peer_that_takes_nothing_is_given_up_on() -> None:
    writer, reader = await tcp_pair()
    async with writer, reader:
        data = b"x" * (8 * 2**20)
        assert not await send_all_in_time(writer, data, stall=0.3)
        left = unacknowledged(writer.socket)
        assert left is not None and 0 < left < len(data)  # some written, then the wait ended


async def test_a_peer_that_reads_slowly_gets_everything(nursery: trio.Nursery) -> None:
    writer, reader = await tcp_pair()
    data = bytes(range(256)) * 256  # 64 KiB
    received = bytearray()
    all_read = trio.Event()

    async def read_slowly() -> None:
        while len(received) < len(data):
            received.extend(await reader.receive_some(2048))
            await trio.sleep(0.1)  # about 20 KB/s: each wait for room outlasts the bound
        all_read.set()

    async with writer, reader:
        nursery.start_soon(read_slowly)
        assert await send_all_in_time(writer, data, stall=0.5)
        with trio.fail_after(30):
            await all_read.wait()
    assert received == data
