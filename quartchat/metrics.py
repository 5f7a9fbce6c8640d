"""What the server counts, for ``GET /metrics`` in the Prometheus text format.

One :class:`Metrics` per hub, each with its own registry (never the
process-wide default), so several servers in one process count apart.

The hot path pays per WebSocket frame, never per receiver per line: the
writer reports a whole coalesced frame in one call, which adds to plain
integers. They need no lock (only the event loop's thread touches them,
scrapes included) and become counters when scraped. Rarer events (commits,
closes, errors, replays) use prometheus-client's own metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, Metric

#: The media type of :meth:`Metrics.render`'s output.
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Powers of two up to the committer's largest batch (256).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self, users_online: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.connections_open = Gauge(
            "quartchat_connections_open", "WebSocket connections open now", registry=registry
        )
        self.users_online = Gauge(
            "quartchat_users_online",
            "Users online now (a user with many tabs counts once)",
            registry=registry,
        )
        self.users_online.set_function(users_online)
        self.messages_committed = Counter(
            "quartchat_messages_committed",
            "Messages stored (a retried send that was stored before is not counted again)",
            registry=registry,
        )
        #: Per-frame tallies (see the module's docstring), exported by :meth:`collect`.
        self.frames_sent = self.objects_sent = self.deliveries = 0
        registry.register(self)
        self.closes = Counter(
            "quartchat_connections_closed",
            "Connections the server closed, by close code (4008: too slow, 1008: abuse)",
            ["code"],
            registry=registry,
        )
        self.errors = Counter(
            "quartchat_errors", "Error frames sent, by error code", ["code"], registry=registry
        )
        self.commit_batch = Histogram(
            "quartchat_commit_batch_size",
            "Sends stored per group-commit transaction",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "quartchat_commit_seconds",
            "Seconds from taking a batch of sends to waking its senders to ack",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=registry,
        )
        self.replay_messages = Histogram(
            "quartchat_replay_messages",
            "Messages a new connection was sent before live traffic (backlog or catch-up)",
            buckets=(0, 1, 10, 50, 100, 200, 500, 1000),
            registry=registry,
        )

    def frame_sent(self, objects: int, messages: int) -> None:
        """The writer sent one frame joining ``objects`` lines, ``messages`` of them messages."""
        self.frames_sent += 1
        self.objects_sent += objects
        self.deliveries += messages

    def collect(self) -> Iterator[Metric]:
        """The per-frame tallies as counters (the registry calls this on a scrape)."""
        yield CounterMetricFamily(
            "quartchat_deliveries",
            "Messages written live to a receiving connection (replays are not counted)",
            value=self.deliveries,
        )
        yield CounterMetricFamily(
            "quartchat_frames_sent",
            "Live WebSocket frames written; each joins every server object queued at that moment",
            value=self.frames_sent,
        )
        yield CounterMetricFamily(
            "quartchat_objects_sent",
            "Server objects (messages, acks, presence...) in those frames",
            value=self.objects_sent,
        )

    @contextmanager
    def commit(self, size: int) -> Iterator[None]:
        """Time one group commit of ``size`` sends."""
        self.commit_batch.observe(size)
        with self.commit_seconds.time():
            yield

    def render(self) -> bytes:
        """Every metric, in the Prometheus text format."""
        return generate_latest(self.registry)
