"""Group commit: many sends, one SQLite transaction, published in id order.

Every ``send`` from every connection goes through one task. It takes what is
waiting (up to ``max_batch`` drafts), stores it in one transaction on the
store's writer thread, then hands the committed messages to ``on_commit``
(the hub publishes them) before waking the senders, who then ack. So an ack
always follows the commit, ids are published in the order they were
committed, and under load one fsync serves a whole batch. A draft the store
refuses (a bad value) fails alone: the others in its batch are still stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from .errors import StoreError
from .metrics import Metrics
from .models import Draft, Posted
from .store import AsyncStore


@dataclass(slots=True)
class _Pending:
    draft: Draft
    done: trio.Event = field(default_factory=trio.Event)
    result: Posted | None = None
    error: Exception | None = None


class Committer:
    def __init__(
        self,
        store: AsyncStore,
        on_commit: Callable[[list[tuple[Draft, Posted]]], None],
        metrics: Metrics,
        *,
        max_batch: int = 256,
        queue_size: int = 4096,
    ) -> None:
        self._store = store
        self._on_commit = on_commit
        self._metrics = metrics
        self._max_batch = max_batch
        # Bounded: when the disk falls behind, senders wait here (each one
        # only delays its own ack) instead of memory growing without end.
        self._send, self._receive = trio.open_memory_channel[_Pending](queue_size)

    async def post(self, draft: Draft) -> Posted:
        """Store ``draft`` (or find its earlier copy); return once committed."""
        pending = _Pending(draft)
        await self._send.send(pending)
        await pending.done.wait()
        if pending.error is not None:
            raise StoreError("the message could not be stored") from pending.error
        assert pending.result is not None
        return pending.result

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async for first in self._receive:
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            with self._metrics.commit(len(batch)):
                await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            results = await self._store.insert([p.draft for p in batch])
        except Exception as exc:  # the batch failed as a whole: nobody is acked
            for p in batch:
                p.error = exc
                p.done.set()
            return
        # A draft the store refused fails alone; the rest of its batch committed.
        self._on_commit(
            [(p.draft, r) for p, r in zip(batch, results, strict=True) if isinstance(r, Posted)]
        )
        for p, result in zip(batch, results, strict=True):
            if isinstance(result, Posted):
                p.result = result
            else:
                p.error = result
            p.done.set()
