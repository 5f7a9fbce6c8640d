"""The event bus of the embedded default: one process, so publishing is
handing the event to this process's :class:`~quartchat.broker.LocalBroker`."""

from __future__ import annotations

import trio

from ..broker import LocalBroker
from .base import BusEvent


class LocalBus:
    """:class:`~quartchat.backends.base.EventBus` for one process.

    Connections subscribe to ``broker`` (the hub owns it); there is no other
    worker to relay to, so ``run`` has nothing to serve.
    """

    def __init__(self, broker: LocalBroker) -> None:
        self.broker = broker

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    def publish(self, event: BusEvent) -> None:
        self.broker.publish(event)
