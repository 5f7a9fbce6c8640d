"""The event bus between workers: presence, nick and typing frames travel on
one Redis pub/sub channel, and each worker hands what it hears to its own
:class:`~quartchat.broker.LocalBroker`."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import fields
from typing import Any

import coredis
import coredis.exceptions
import trio
from coredis.retry import NoRetryPolicy

from ..broker import Event, LocalBroker
from ..errors import Unavailable
from .base import BusEvent
from .redis_client import redis_errors

log = logging.getLogger(__name__)

#: Events waiting to be published to Redis. Bounded: while Redis is slow or
#: away, up to this many events (about 300 bytes each: ~3 MB) wait to be sent
#: once it is back; beyond that new events are dropped (this worker's own
#: subscribers already had them; other workers miss them). Events are hints,
#: not history: a client's next ``welcome`` has the true online list.
OUTBOX_SIZE = 10_000
#: Seconds between attempts to publish while Redis cannot be reached.
RETRY_DELAY = 0.5
#: Seconds between attempts to subscribe again after losing Redis.
RESUBSCRIBE_DELAY = 0.2


class RedisBus:
    """:class:`~quartchat.backends.base.EventBus` for any number of workers.

    ``publish`` hands the event to this worker's subscribers at once (they do
    not wait for a round trip, nor for Redis to come back) and queues it for
    the others; ``run`` sends the queue to Redis and relays every other
    worker's events to ``broker``. Events from one worker arrive everywhere in
    the order it published them.
    """

    def __init__(
        self,
        redis: coredis.Redis[str],
        broker: LocalBroker,
        prefix: str,
        *,
        outbox_size: int = OUTBOX_SIZE,
    ) -> None:
        self.broker = broker
        self._redis = redis
        self._channel = f"{prefix}events"
        #: Tells this worker's own events apart when Redis echoes them back.
        self._origin = secrets.token_hex(8)
        self._outbox, self._outgoing = trio.open_memory_channel[str](outbox_size)
        #: Events other workers missed because the outbox was full.
        self.dropped = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self._listen)
            nursery.start_soon(self._send_outbox)
            task_status.started()

    def publish(self, event: BusEvent) -> None:
        self.broker.publish(event)
        try:
            self._outbox.send_nowait(encode_event(self._origin, event))
        except trio.WouldBlock:
            if self.dropped == 0:
                log.warning("event outbox full (Redis away?): other workers miss events")
            self.dropped += 1

    async def _send_outbox(self) -> None:
        async for payload in self._outgoing:
            while True:
                try:
                    with redis_errors("publish an event"):
                        await self._redis.publish(self._channel, payload)
                    break
                except Unavailable:
                    await trio.sleep(RETRY_DELAY)

    async def _listen(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Relay other workers' events. A lost subscription is opened afresh
        after RESUBSCRIBE_DELAY, for as long as it takes Redis to come back
        (coredis's own retry is off: after a restart it could go on waiting
        on a subscription the new server never had)."""
        started = False
        while True:
            try:
                async with self._redis.pubsub(
                    channels=[self._channel],
                    ignore_subscribe_messages=True,
                    retry_policy=NoRetryPolicy(),
                ) as subscription:
                    if not started:
                        task_status.started()
                        started = True
                    async for message in subscription:
                        data = message["data"]
                        event = decode_event(self._origin, data) if isinstance(data, str) else None
                        if event is not None:
                            self.broker.publish(event)
            except* (coredis.exceptions.ConnectionError, TimeoutError, OSError) as lost:
                log.warning("event subscription lost, opening it again: %r", lost.exceptions[0])
            await trio.sleep(RESUBSCRIBE_DELAY)


def encode_event(origin: str, event: Event) -> str:
    """One event, with the worker that published it, as JSON text."""
    record: dict[str, Any] = {f.name: getattr(event, f.name) for f in fields(Event)}
    if event.only_users is not None:
        record["only_users"] = sorted(event.only_users)
    return json.dumps({"origin": origin, "event": record}, ensure_ascii=False)


def decode_event(own_origin: str, payload: str) -> Event | None:
    """The event in ``payload``, or None for this worker's own (already
    delivered) or for one that cannot be read (logged and ignored: a stray
    publisher on the channel must not stop the bus)."""
    try:
        envelope = json.loads(payload)
        if envelope["origin"] == own_origin:
            return None
        record = dict(envelope["event"])
        if record.get("only_users") is not None:
            record["only_users"] = frozenset(record["only_users"])
        record["about"] = tuple(record.get("about", ()))
        return Event(**record)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignored an unreadable event on the bus: %s", exc)
        return None
