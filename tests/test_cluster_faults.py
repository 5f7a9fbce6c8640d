"""Faults of a chat spread over workers that share one Redis, with real
processes: a worker killed or stopped mid-traffic, Redis away for a while.

Two ``quartchat`` processes on two ports stand for two workers (on one host
or two): clients pick one, as a load balancer would, and move to the other
when theirs goes. Every test checks what users rely on: each acked message
reaches every client exactly once and in id order, whatever went away.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
import trio
from trio_websocket import ConnectionClosed, HandshakeError

from rawhttp import request
from redis_server import RedisServer, redis_integer
from resuming import PATIENCE, ResumingClient
from served import QUARTCHAT, Served, Servers

#: Messages each talking client sends in a test.
MESSAGES = 40
#: Acks each talker has before the fault is injected (mid-traffic).
BEFORE_FAULT = 10
#: Seconds a dead worker's heartbeat lasts here (the default is 10 s).
HEARTBEAT_TTL = 2.0


def cluster_env(redis: RedisServer) -> dict[str, str]:
    return {
        "QUARTCHAT_REDIS_URL": redis.url,
        "QUARTCHAT_REDIS_HEARTBEAT_TTL": str(HEARTBEAT_TTL),
        # The test's clients all come from 127.0.0.1 and send fast.
        "QUARTCHAT_NEW_IDENTITY_BURST": "1000",
        "QUARTCHAT_SEND_RATE": "1000",
        "QUARTCHAT_SEND_BURST": "1000",
    }


async def reconnect(client: ResumingClient, nursery: trio.Nursery, url: str) -> None:
    """Connect again (token and cursor kept), retrying while refused."""
    with trio.fail_after(PATIENCE):
        while True:
            try:
                await client.connect(nursery, url)
                return
            except (OSError, HandshakeError, ConnectionClosed):
                await trio.sleep(0.1)


async def talk(
    client: ResumingClient,
    nursery: trio.Nursery,
    fallback: str,
    midway: Callable[[], None] = lambda: None,
    before_last: trio.Event | None = None,
    fault_over: trio.Event | None = None,
) -> bool:
    """Send MESSAGES messages, each until it is acked: an ``unavailable``
    answer is retried with the same offset; a lost connection is resumed on
    ``fallback`` and the unacked message sent again. ``midway`` is called
    once BEFORE_FAULT messages are acked; the last message waits for
    ``before_last``, if given, so that it is sure to meet the fault. True
    when a send started before ``before_last`` was set was acked only after
    ``fault_over`` was: stored just before the fault, its ack waited it out."""
    number = 0
    waited_out = False
    while number < MESSAGES:
        if number == MESSAGES - 1 and before_last is not None:
            await before_last.wait()
        offset = f"{client.nick}-{number}"
        during = before_last is not None and not before_last.is_set()
        try:
            with trio.fail_after(PATIENCE):
                acked = await client.send(offset, f"{client.nick} says {number}")
        except ConnectionClosed:
            await reconnect(client, nursery, fallback)
            continue
        if acked is not None and during and fault_over is not None and fault_over.is_set():
            waited_out = True
        if acked is None:
            await trio.sleep(0.2)
            continue
        number += 1
        if number == BEFORE_FAULT:
            midway()
    return waited_out


def check_delivery(clients: list[ResumingClient]) -> set[int]:
    """Every acked message reached every client exactly once, in id order
    (its own through their acks, or as messages on a later connection); and
    nothing unacked was delivered. Returns the acked ids."""
    acked = {i for c in clients for i in c.acked.values()}
    assert len(acked) == sum(len(c.acked) for c in clients), "two messages got one id"
    for client in clients:
        assert client.seen == sorted(set(client.seen)), f"{client.nick}: repeated or reordered"
        assert not client.below_cursor, f"{client.nick} got messages below an ack"
        assert set(client.seen) <= acked, f"{client.nick} got a message nobody has an ack for"
        missing = acked - set(client.seen) - set(client.acked.values())
        assert not missing, f"{client.nick} never got {sorted(missing)}"
    return acked


class Countdown:
    """An event set once ``count`` parties have called :meth:`arrive`."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.done = trio.Event()

    def arrive(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.done.set()


async def join_all(nursery: trio.Nursery, placed: list[tuple[str, Served]]) -> list[ResumingClient]:
    clients = []
    for nick, server in placed:
        client = ResumingClient(nick)
        await client.connect(nursery, server.ws_url)
        clients.append(client)
    return clients


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_a_worker_gone_mid_traffic_loses_repeats_and_reorders_nothing(
    servers: Servers, redis_server: RedisServer, nursery: trio.Nursery, sig: signal.Signals
) -> None:
    env = cluster_env(redis_server)
    doomed = await servers.start(QUARTCHAT, env=env)
    survivor = await servers.start(QUARTCHAT, env=env)
    on_doomed = [("alice", doomed), ("carol", doomed), ("dave", doomed)]
    alice, carol, dave, bob, erin = await join_all(
        nursery, [*on_doomed, ("bob", survivor), ("erin", survivor)]
    )
    talkers = [alice, carol, bob]
    midway = Countdown(len(talkers))
    gone_at = [0.0]

    async def fault() -> None:
        await midway.done.wait()
        gone_at[0] = trio.current_time()
        if sig == signal.SIGKILL:
            doomed.kill()
            await doomed.wait_exit()
        else:
            assert await doomed.stop(sig) == 0

    async with trio.open_nursery() as traffic:
        traffic.start_soon(fault)
        for client in talkers:
            traffic.start_soon(talk, client, nursery, survivor.ws_url, midway.arrive)
        traffic.start_soon(dave.wait_closed)

    readers = [alice, carol, bob, erin]
    acked = {i for c in talkers for i in c.acked.values()}
    with trio.fail_after(PATIENCE):
        for client in readers:
            await client.read_until(acked)
    check_delivery(readers)
    assert len(acked) == MESSAGES * len(talkers)

    # dave never came back: the survivor announces he left, and only him.
    with trio.fail_after(PATIENCE):
        await erin.read_until_presence("leave", dave.user_id)
    print(f"leave of dave {trio.current_time() - gone_at[0]:.2f} s after the {sig.name}")
    assert [who for event, who in erin.presence if event == "leave"] == [dave.user_id]
    newcomer = ResumingClient("frank")
    await newcomer.connect(nursery, survivor.ws_url)
    online = {user["id"] for user in newcomer.welcome["online"]}
    assert online == {c.user_id for c in [*readers, newcomer]}
    if sig == signal.SIGTERM:
        assert alice.close_codes == carol.close_codes == dave.close_codes == [1001]
    for client in [*readers, dave, newcomer]:
        await client.aclose()


#: Seconds Redis stays away in the outage test.
OUTAGE = 6.0


async def test_redis_away_mid_traffic_refuses_sends_until_it_returns_then_all_resume(
    servers: Servers, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    env = cluster_env(redis_server)
    first = await servers.start(QUARTCHAT, env=env)
    second = await servers.start(QUARTCHAT, env=env)
    alice, erin, bob, gina = await join_all(
        nursery, [("alice", first), ("erin", first), ("bob", second), ("gina", second)]
    )
    talkers = [alice, bob]
    midway = Countdown(len(talkers))
    redis_gone, redis_back = trio.Event(), trio.Event()
    during: dict[str, object] = {}
    waited_out: set[str] = set()

    async def outage() -> None:
        await midway.done.wait()
        await trio.to_thread.run_sync(redis_server.stop)
        redis_gone.set()
        during["healthz"] = [(await request(s, "/healthz"))[0] for s in (first, second)]
        # A send while Redis is away is answered at once, and not acked.
        during["answer"] = await gina.send("gina-0", "while Redis is away")
        await trio.sleep(OUTAGE)
        redis_back.set()
        await trio.to_thread.run_sync(redis_server.start)  # same port, same dir: its AOF

    async with trio.open_nursery() as traffic:
        traffic.start_soon(outage)
        # Traffic goes on while Redis stops; each talker's last message waits
        # until it has stopped, so both meet the outage however fast they are.

        async def talker(client: ResumingClient, url: str) -> None:
            if await talk(client, nursery, url, midway.arrive, redis_gone, redis_back):
                waited_out.add(client.nick)

        traffic.start_soon(talker, alice, first.ws_url)
        traffic.start_soon(talker, bob, second.ws_url)

    assert during == {"healthz": [503, 503], "answer": None}
    assert gina.send_errors == ["unavailable"]
    # Each talker met the outage: refused, or (a message stored just before
    # Redis stopped, whose tail read it then lost) its ack waited it out.
    for client in talkers:
        assert "unavailable" in client.send_errors or client.nick in waited_out
    # gina retries her message with the same offset: it goes through once.
    with trio.fail_after(PATIENCE):
        while await gina.send("gina-0", "while Redis is away") is None:  # noqa: ASYNC110
            await trio.sleep(0.2)  # a page retries on a timer too
    talkers.append(gina)

    acked = {i for c in talkers for i in c.acked.values()}
    readers = [alice, erin, bob, gina]
    with trio.fail_after(PATIENCE):
        for client in readers:
            await client.read_until(acked)
    check_delivery(readers)
    assert len(acked) == 2 * MESSAGES + 1
    assert redis_integer(redis_server.port, "XLEN", "quartchat:log") == len(acked)
    assert [(await request(s, "/healthz"))[0] for s in (first, second)] == [200, 200]
    for client in readers:
        await client.aclose()
