"""Open N idle, welcomed connections and print the server's RSS before and after.

Each client speaks wsproto directly so that it can offer permessage-deflate
the way a browser does (``--deflate``); the offer takes effect only if the
server accepts it. All connections are tabs of one user (the first one's
token), so the figure is per connection, no presence storm slows the run,
and the server's limit on new identities per address does not apply.
Usage, with the server's worker pid (``pgrep -P <hypercorn pid> -f spawn_main``):

    .venv/bin/python scripts/idle_rss.py --pid 1234 --count 1000 [--deflate]
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path
from typing import Any

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Event, Ping, Request, TextMessage
from wsproto.extensions import PerMessageDeflate


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def idle_client(
    host: str,
    port: int,
    deflate: bool,
    token: str | None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Connect, say hello, report the welcome's token once welcomed, then
    read (answering pings) until cancelled."""
    ws = WSConnection(ConnectionType.CLIENT)
    hello = {"type": "hello", "token": token, "nick": None, "last_id": None, "epoch": None}
    async with await trio.open_tcp_stream(host, port) as stream:
        extensions = [PerMessageDeflate()] if deflate else []
        await stream.send_all(ws.send(Request(host=host, target="/ws", extensions=extensions)))
        while True:
            for event in await receive(stream, ws):
                if isinstance(event, AcceptConnection):
                    await stream.send_all(ws.send(TextMessage(data=json.dumps(hello))))
                elif isinstance(event, TextMessage) and '"welcome"' in event.data:
                    welcome: dict[str, Any] = json.loads(event.data.split("\n")[0])
                    task_status.started(welcome["token"])


async def receive(stream: trio.SocketStream, ws: WSConnection) -> list[Event]:
    """Read once; answer pings (hypercorn drops a peer silent for its
    ``read_timeout``); return the other events."""
    data = await stream.receive_some()
    if not data:
        raise ConnectionError("the server closed the connection")
    ws.receive_data(data)
    events = []
    for event in ws.events():
        if isinstance(event, Ping):
            await stream.send_all(ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            raise ConnectionError(f"the server closed with {event.code}: {event.reason}")
        else:
            events.append(event)
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
    client = partial(idle_client, args.host, args.port, args.deflate)
    before = rss_kib(args.pid)
    async with trio.open_nursery() as nursery:
        token = await nursery.start(client, None)
        handshakes = trio.CapacityLimiter(args.concurrency)

        async def start_one() -> None:
            async with handshakes:
                await nursery.start(client, token)

        async with trio.open_nursery() as starting:
            for _ in range(args.count - 1):
                starting.start_soon(start_one)
        await trio.sleep(2)  # let the server settle before it is measured
        after = rss_kib(args.pid)
        nursery.cancel_scope.cancel()
    report = {
        "count": args.count,
        "deflate_offered": args.deflate,
        "rss_before_mib": round(before / 1024, 1),
        "rss_after_mib": round(after / 1024, 1),
        "kib_per_connection": round((after - before) / args.count, 1),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    trio.run(main)
