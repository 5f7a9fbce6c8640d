"""Group commit: many sends of this worker, one append to the log.

Every ``send`` from every connection of a worker goes through one task. It
takes what is waiting (up to ``max_batch`` drafts), appends it to the log in
one call (one SQLite transaction, or one Redis round trip), then wakes the
senders, who ack. So an ack always follows the commit, and under load one
fsync serves a whole batch. Publishing is not its job: every worker reads
committed messages from the log's tail, in id order. A draft the log refuses
(a bad value) fails alone: the others in its batch are still stored.

A draft may carry its sender's send bucket: the log spends it in the same
step as the append (on Redis, one round trip for both), and a draft whose
bucket is empty is refused alone (:class:`RateLimited`), nothing stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from .backends.base import Bucket, EditRefused, MessageLog, RateLimited
from .errors import StoreError, Unavailable
from .metrics import Metrics
from .models import Draft, Posted


@dataclass(slots=True)
class _Pending:
    draft: Draft
    bucket: Bucket | None
    done: trio.Event = field(default_factory=trio.Event)
    result: Posted | None = None
    error: Exception | None = None


def _outcome(pending: _Pending) -> Posted | RateLimited | EditRefused | StoreError:
    if isinstance(pending.error, RateLimited | EditRefused):
        return pending.error
    if isinstance(pending.error, Unavailable):
        away = Unavailable("the log cannot be reached; retry")
        away.__cause__ = pending.error
        return away
    if pending.error is not None:
        failed = StoreError("the message could not be stored")
        failed.__cause__ = pending.error
        return failed
    assert pending.result is not None
    return pending.result


class Committer:
    def __init__(
        self,
        log: MessageLog,
        metrics: Metrics,
        *,
        max_batch: int = 256,
        queue_size: int = 4096,
    ) -> None:
        self._log = log
        self._metrics = metrics
        self._max_batch = max_batch
        # Bounded: when the disk falls behind, senders wait here (each one
        # only delays its own ack) instead of memory growing without end.
        self._send, self._receive = trio.open_memory_channel[_Pending](queue_size)

    async def post_many(
        self, items: Sequence[tuple[Draft, Bucket | None]]
    ) -> list[Posted | RateLimited | EditRefused | StoreError]:
        """Store several drafts, queued together so that they share commits;
        return once all are committed, each with its own outcome, in order:
        what was stored (or found), or why not (:class:`RateLimited`,
        :class:`EditRefused`, :class:`~quartchat.errors.Unavailable`, :class:`StoreError`)."""
        pendings = [_Pending(draft, bucket) for draft, bucket in items]
        for pending in pendings:
            # All queued before the committer runs (an await would let it
            # take the first alone), unless the queue is full.
            try:
                self._send.send_nowait(pending)
            except trio.WouldBlock:
                await self._send.send(pending)
        for pending in pendings:
            await pending.done.wait()
        return [_outcome(pending) for pending in pendings]

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
            buckets = [p.bucket for p in batch]
            drafts = [p.draft for p in batch]
            results = await self._log.append(drafts, buckets if any(buckets) else ())
        except Exception as exc:  # the batch failed as a whole: nobody is acked
            for p in batch:
                p.error = exc
                p.done.set()
            return
        # A draft the log refused (or rate limited) fails alone; the rest of
        # its batch committed.
        fresh = sum(isinstance(r, Posted) and not r.duplicate for r in results)
        self._metrics.messages_committed.inc(fresh)
        for p, result in zip(batch, results, strict=True):
            if isinstance(result, Posted):
                p.result = result
            else:
                p.error = result
            p.done.set()
