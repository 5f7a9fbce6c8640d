"""History as an amplifier (issue 19, point 6): one identity on many sockets
asking for history pages as fast as the frame limit lets it, while a
bystander sends 10 messages a second and times its acks.

Usage, against a running server (seed its store first, e.g.
``scripts/seed_history.py --count 100000 --db chat.db``), with the pid of
the process that serves (``python -m quartchat`` with one worker serves in
its own process):

    .venv/bin/python scripts/history_flood.py --url ws://127.0.0.1:8100/ws --pid 1234

It runs ``--baseline`` seconds of the bystander alone, opens ``--sockets``
sockets of one new identity (the first makes it, the rest use its token),
and then each socket asks for a page of ``--limit`` messages below a random
id ``--per-socket-rate`` times a second for ``--seconds``. ``--kind ping``
sends pings at that rate instead: the floor any frames at that rate cost.

Prints a table on stdout and, last, the same figures as one JSON line:
pages served per second (and their messages and MiB), requests refused, the
server's CPU (% of one core) and RSS growth over the attack, and the
bystander's ack latencies before and during it.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from benchlib.fastws import Closed, FastClient, open_fast
from benchlib.output import percentiles_ms
from benchlib.procstats import read_proc

#: Seconds between two bystander sends: 10 a second, the default send rate.
BYSTANDER_PERIOD = 0.1


@dataclass
class Tally:
    """What the attacking sockets got back."""

    pages: int = 0
    messages: int = 0
    bytes: int = 0
    refused_history: int = 0
    refused_frames: int = 0
    other_errors: int = 0
    #: Sockets the server closed (a flood of bad frames is cut with 1008).
    closed: int = 0

    def count(self, line: str) -> None:
        # Prefix tests and str.count, not JSON: the pages come at tens of MiB/s.
        if line.startswith('{"type":"history"'):
            self.pages += 1
            self.messages += line.count('"from":')
            self.bytes += len(line)
        elif line.startswith('{"type":"error"'):
            if "history" in line:
                self.refused_history += 1
            elif "too many frames" in line:
                self.refused_frames += 1
            else:
                self.other_errors += 1


@dataclass
class Bystander:
    """Another user sending at the default rate, timing each ack."""

    client: FastClient
    phase: str = "baseline"
    sent_at: dict[str, float] = field(default_factory=dict)
    acks: dict[str, list[float]] = field(default_factory=lambda: {"baseline": [], "attack": []})

    async def send(self) -> None:
        for number in range(10**9):
            offset = f"b{number}"
            self.sent_at[offset] = time.perf_counter()
            frame = {"type": "send", "client_offset": offset, "text": f"still here {number}"}
            await self.client.send_text(json.dumps(frame))
            await trio.sleep(BYSTANDER_PERIOD)

    async def read(self) -> None:
        while True:
            for text in await self.client.next_texts():
                for line in text.split("\n"):
                    if line.startswith('{"type":"ack"'):
                        started = self.sent_at.pop(json.loads(line)["client_offset"], None)
                        if started is not None:
                            self.acks[self.phase].append(time.perf_counter() - started)


async def hello(url: str, token: str | None, nick: str | None) -> tuple[FastClient, dict[str, Any]]:
    """A welcomed socket and its welcome."""
    client = await open_fast(url)
    frame = {"type": "hello", "token": token, "nick": nick, "last_id": None}
    await client.send_text(json.dumps(frame))
    while True:
        for text in await client.next_texts():
            for line in text.split("\n"):
                if line.startswith('{"type":"welcome"'):
                    welcome: dict[str, Any] = json.loads(line)
                    return client, welcome


async def attack(
    client: FastClient, args: argparse.Namespace, last_id: int, tally: Tally, stop: trio.Event
) -> None:
    """Ask at a steady rate until ``stop``, reading every answer meanwhile."""

    async def read() -> None:
        while True:
            for text in await client.next_texts():
                for line in text.split("\n"):
                    tally.count(line)

    rng = random.Random()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            next_at = trio.current_time()
            while not stop.is_set():
                frame: dict[str, Any] = {"type": "ping"}
                if args.kind == "history":
                    before = rng.randint(args.limit + 1, max(args.limit + 2, last_id))
                    frame = {"type": "history", "before_id": before, "limit": args.limit}
                await client.send_text(json.dumps(frame))
                # Late (a busy machine), it does not catch up in a burst: the
                # frame limit would answer that, not the history budget.
                next_at = max(next_at + 1 / args.per_socket_rate, trio.current_time())
                await trio.sleep_until(next_at)
            nursery.cancel_scope.cancel()
    except* (Closed, OSError):
        tally.closed += 1


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    client, welcome = await hello(args.url, None, "bystander")
    bystander = Bystander(client)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(bystander.read)
        nursery.start_soon(bystander.send)
        await trio.sleep(args.baseline)
        first, attacker = await hello(args.url, None, "flooder")
        sockets = [first]
        for _ in range(args.sockets - 1):
            sockets.append((await hello(args.url, attacker["token"], None))[0])
        before = read_proc(args.pid, trio.current_time())
        own_before, started = own_cpu_seconds(), time.perf_counter()
        bystander.phase = "attack"
        stop = trio.Event()
        async with trio.open_nursery() as attackers:
            for socket in sockets:
                attackers.start_soon(attack, socket, args, welcome["last_id"], tally, stop)
            await trio.sleep(args.seconds)
            stop.set()
            elapsed = time.perf_counter() - started
            after = read_proc(args.pid, trio.current_time())
            own_after = own_cpu_seconds()
            attackers.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
    assert before is not None and after is not None, "the server's pid is gone"
    return {
        "kind": args.kind,
        "sockets": args.sockets,
        "per_socket_rate": args.per_socket_rate,
        "limit": args.limit,
        "seconds": round(elapsed, 2),
        "pages_per_s": round(tally.pages / elapsed, 1),
        "messages_per_s": round(tally.messages / elapsed, 1),
        "mib_per_s": round(tally.bytes / elapsed / 2**20, 2),
        "refused_history_per_s": round(tally.refused_history / elapsed, 1),
        "refused_frames": tally.refused_frames,
        "other_errors": tally.other_errors,
        "sockets_closed": tally.closed,
        "server_cpu_pct": round((after.cpu_seconds - before.cpu_seconds) / elapsed * 100, 1),
        "server_rss_mb_before": round(before.rss_kb / 1024, 1),
        "server_rss_mb_after": round(after.rss_kb / 1024, 1),
        "server_rss_growth_mb": round((after.rss_kb - before.rss_kb) / 1024, 1),
        "client_cpu_pct": round((own_after - own_before) / elapsed * 100, 1),
        "bystander_ack_ms_baseline": percentiles_ms(bystander.acks["baseline"]),
        "bystander_ack_ms_attack": percentiles_ms(bystander.acks["attack"]),
    }


def table(result: dict[str, Any]) -> str:
    calm, under = result["bystander_ack_ms_baseline"], result["bystander_ack_ms_attack"]
    rows = [
        ("attack", f"{result['sockets']} sockets of one user, {result['kind']} "
                   f"(limit {result['limit']}) {result['per_socket_rate']}/s each, "
                   f"{result['seconds']} s"),
        ("pages served /s", f"{result['pages_per_s']}  ({result['messages_per_s']} messages, "
                            f"{result['mib_per_s']} MiB)"),
        ("history refused /s", f"{result['refused_history_per_s']}  (frames refused: "
                               f"{result['refused_frames']}, sockets closed: "
                               f"{result['sockets_closed']})"),
        ("server CPU", f"{result['server_cpu_pct']} % of one core"),
        ("server RSS", f"{result['server_rss_mb_before']} -> {result['server_rss_mb_after']} MB "
                       f"(+{result['server_rss_growth_mb']})"),
        ("bystander ack p50", f"{calm['p50']} ms alone, {under['p50']} ms under attack"),
        ("bystander ack p99", f"{calm['p99']} ms alone, {under['p99']} ms under attack"),
        ("this client's CPU", f"{result['client_cpu_pct']} % of one core"),
    ]  # fmt: skip
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the server's socket, ws://host:port/ws")
    parser.add_argument("--pid", type=int, required=True, help="the serving process")
    parser.add_argument("--sockets", type=int, default=30)
    parser.add_argument("--per-socket-rate", type=float, default=50.0, help="requests/s a socket")
    parser.add_argument("--limit", type=int, default=200, help="messages a page asks for")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the attack")
    parser.add_argument("--baseline", type=float, default=5.0, help="bystander alone first")
    parser.add_argument("--kind", choices=["history", "ping"], default="history")
    result = trio.run(run, parser.parse_args())
    print(table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
