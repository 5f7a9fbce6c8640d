"""Open N idle, welcomed connections and print the server's RSS before and after.

Each client speaks wsproto directly so that it can offer permessage-deflate
the way a browser does (``--deflate``); the offer takes effect only if the
server accepts it. Usage, with the server's worker pid (the child of the
``hypercorn`` process: ``pgrep -P <hypercorn pid>``):

    .venv/bin/python scripts/idle_rss.py --pid 1234 --count 1000 [--deflate]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Ping, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

HELLO = json.dumps({"type": "hello", "token": None, "nick": None, "last_id": None, "epoch": None})


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Welcomed:
    """Counts welcomed clients; ``all`` is set once every one of them is."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.all = trio.Event()

    def one(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.all.set()


async def idle_client(
    host: str, port: int, deflate: bool, handshakes: trio.CapacityLimiter, welcomed: Welcomed
) -> None:
    """Connect, say hello, wait for the welcome, then read (and drop) until cancelled."""
    ws = WSConnection(ConnectionType.CLIENT)
    async with handshakes:
        stream = await trio.open_tcp_stream(host, port)
        extensions = [PerMessageDeflate()] if deflate else []
        await stream.send_all(ws.send(Request(host=host, target="/ws", extensions=extensions)))
        while not any(
            isinstance(event, TextMessage) and '"welcome"' in event.data
            for event in await receive(stream, ws)
        ):
            pass
    welcomed.one()
    async with stream:
        while True:
            await receive(stream, ws)


async def receive(stream: trio.SocketStream, ws: WSConnection) -> list[object]:
    """Read once; answer the handshake with ``hello`` and pings with pongs
    (hypercorn drops a peer silent for ``read_timeout``); return the events."""
    data = await stream.receive_some()
    if not data:
        raise ConnectionError("the server closed the connection")
    ws.receive_data(data)
    events = list(ws.events())
    for event in events:
        if isinstance(event, AcceptConnection):
            await stream.send_all(ws.send(TextMessage(data=HELLO)))
        elif isinstance(event, Ping):
            await stream.send_all(ws.send(event.response()))
    return events


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--pid", type=int, required=True, help="the server worker's pid")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--concurrency", type=int, default=50, help="handshakes at a time")
    args = parser.parse_args()
    before = rss_kib(args.pid)
    handshakes = trio.CapacityLimiter(args.concurrency)
    welcomed = Welcomed(args.count)
    async with trio.open_nursery() as nursery:
        for _ in range(args.count):
            nursery.start_soon(
                idle_client, args.host, args.port, args.deflate, handshakes, welcomed
            )
        await welcomed.all.wait()
        await trio.sleep(2)  # let the last presence broadcasts go out
        after = rss_kib(args.pid)
        nursery.cancel_scope.cancel()
    print(
        json.dumps(
            {
                "count": args.count,
                "deflate_offered": args.deflate,
                "rss_before_mib": round(before / 1024, 1),
                "rss_after_mib": round(after / 1024, 1),
                "kib_per_connection": round((after - before) / args.count, 1),
            }
        )
    )


if __name__ == "__main__":
    trio.run(main)
