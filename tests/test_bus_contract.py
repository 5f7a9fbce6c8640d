"""The event bus's contract, held in-process and through Redis pub/sub: an
event published on one worker reaches every worker's subscribers once, in
publish order, with its audience intact.

Each test sees two workers, ``a`` and ``b``, each with the broker its
connections subscribe to. In-process they are one bus and one broker (one
process is one worker); with Redis, two buses with their own connection pools
on one ``redis-server``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio

from quartchat.backends.base import EventBus
from quartchat.backends.local_bus import LocalBus
from quartchat.backends.redis_bus import RedisBus, encode_event
from quartchat.backends.redis_client import redis_client
from quartchat.broker import Event, LocalBroker
from quartchat.models import User
from quartchat.protocol import TypingNotice
from redis_server import RedisServer

PREFIX = "test:"
#: No test waits this long unless something is broken.
PATIENCE = 15


@dataclass
class Worker:
    bus: EventBus
    broker: LocalBroker

    def listen(self) -> trio.MemoryReceiveChannel[Event]:
        """Every event this worker's connections get from now on."""
        send, receive = trio.open_memory_channel[Event](1000)
        self.broker.subscribe(send.send_nowait)
        return receive


@dataclass
class Workers:
    a: Worker
    b: Worker


@pytest.fixture(params=["local", "redis"])
async def workers(request: pytest.FixtureRequest) -> AsyncIterator[Workers]:
    if request.param == "local":
        broker = LocalBroker()
        bus = LocalBus(broker)
        await bus.run()
        yield Workers(Worker(bus, broker), Worker(bus, broker))
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    async with (
        redis_client(server.url) as redis_a,
        redis_client(server.url) as redis_b,
        trio.open_nursery() as nursery,
    ):
        pair = []
        for redis in (redis_a, redis_b):
            bus = RedisBus(redis, LocalBroker(), PREFIX)
            await nursery.start(bus.run)
            pair.append(Worker(bus, bus.broker))
        yield Workers(*pair)
        nursery.cancel_scope.cancel()


def events(count: int, tag: str) -> list[Event]:
    """Events with every kind of audience the hub uses."""
    audiences: list[dict[str, object]] = [
        {},
        {"skip_user": "u-alice"},
        {"only_users": frozenset({"u-bob", "u-carol"})},
        {"message_id": 7, "skip_conn": "a.1"},
    ]
    return [Event.of(typing(f"{tag} {n}"), **audiences[n % len(audiences)]) for n in range(count)]


def typing(tag: str) -> TypingNotice:
    """A frame that ``tag`` tells apart from the others."""
    return TypingNotice(User("u-test", tag), active=True, to=None)


async def received(channel: trio.MemoryReceiveChannel[Event], count: int) -> list[Event]:
    with trio.fail_after(PATIENCE):
        return [await channel.receive() for _ in range(count)]


async def test_events_from_one_worker_reach_every_workers_subscribers_once_in_order(
    workers: Workers,
) -> None:
    on_a, on_b = workers.a.listen(), workers.b.listen()
    sent = events(20, "from a")
    for event in sent:
        workers.a.bus.publish(event)
    assert await received(on_b, 20) == sent
    # b answers once it has them all: by then a's own events would have come
    # back to a from Redis too, had they been delivered twice.
    marker = Event.of(typing("from b"))
    workers.b.bus.publish(marker)
    assert await received(on_a, 21) == [*sent, marker]
    with trio.move_on_after(0.2):
        extra = await on_a.receive()
        raise AssertionError(f"delivered twice: {extra}")


async def test_an_unreadable_payload_on_the_channel_is_ignored(redis_server: RedisServer) -> None:
    async with redis_client(redis_server.url) as redis, trio.open_nursery() as nursery:
        bus = RedisBus(redis, LocalBroker(), PREFIX)
        worker = Worker(bus, bus.broker)
        await nursery.start(bus.run)
        on_bus = worker.listen()
        for junk in ["not json", '{"origin": "x"}', '{"origin": "x", "event": {"nope": 1}}']:
            await redis.publish(f"{PREFIX}events", junk)
        sent = Event.of(typing("after junk"))
        await redis.publish(f"{PREFIX}events", encode_event("another worker", sent))
        assert await received(on_bus, 1) == [sent]
        nursery.cancel_scope.cancel()


async def test_a_full_outbox_drops_events_for_other_workers_but_never_blocks(
    redis_server: RedisServer,
) -> None:
    async with redis_client(redis_server.url) as redis:
        bus = RedisBus(redis, LocalBroker(), PREFIX, outbox_size=2)
        local = Worker(bus, bus.broker).listen()
        sent = events(5, "not sent yet")  # run() is not started: nothing drains
        for event in sent:
            bus.publish(event)
        assert await received(local, 5) == sent  # this worker's own: all, at once
        assert bus.dropped == 3


async def test_the_bus_relays_again_after_redis_comes_back(redis_server: RedisServer) -> None:
    async with (
        redis_client(redis_server.url) as redis_a,
        redis_client(redis_server.url) as redis_b,
        trio.open_nursery() as nursery,
    ):
        a, b = RedisBus(redis_a, LocalBroker(), PREFIX), RedisBus(redis_b, LocalBroker(), PREFIX)
        await nursery.start(a.run)
        await nursery.start(b.run)
        on_a, on_b = Worker(a, a.broker).listen(), Worker(b, b.broker).listen()
        redis_server.stop()
        during = Event.of(typing("during the outage"))
        a.publish(during)  # neither raises nor waits
        assert await received(on_a, 1) == [during]
        redis_server.start()
        with trio.fail_after(PATIENCE):
            number = 0
            while True:
                number += 1
                a.publish(Event.of(typing(str(number))))
                with trio.move_on_after(0.1):
                    while (await on_b.receive()).line == during.line:
                        pass
                    break
        nursery.cancel_scope.cancel()
