"""Prometheus metrics: every metric of the suite, defined once, plus the
per-service ``/metrics`` HTTP endpoint.

Every service shares one set of metric names so a dashboard, an alert or the
worker autoscaler reads the same series whichever process produced them (in
``nodedrop dev`` all services run in one process and share one registry).
Services do not create metrics of their own: they call :func:`get_metrics`
and record on the returned :class:`Metrics`.

Naming follows the Prometheus conventions: ``nodedrop_`` prefix, base units
(seconds), ``_total`` on counters (added by prometheus-client).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_wsgi_server

__all__ = [
    "DEFAULT_METRICS_ADDRS",
    "LaneSample",
    "Metrics",
    "MetricsAddressError",
    "MetricsServer",
    "QueueSample",
    "create_metrics",
    "get_metrics",
    "parse_listen_addr",
]

# Default NODEDROP_METRICS_ADDR of each service: the gRPC port minus 50051
# plus 9101 would be clever; a table is clearer and is what the manifests use.
DEFAULT_METRICS_ADDRS: dict[str, str] = {
    "api": "127.0.0.1:9101",
    "scheduler": "127.0.0.1:9102",
    "events": "127.0.0.1:9103",
    "worker": "127.0.0.1:9104",
    "gateway": "127.0.0.1:9105",
}

# Node work ranges from a microsecond `set` to a minute-long HTTP call; the
# execution buckets reach the default 300 s job timeout and a little beyond.
_NODE_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
)
_EXECUTION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
)
_RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class MetricsAddressError(ValueError):
    """A metrics listen address that is not ``host:port``."""


@dataclass(frozen=True, slots=True)
class LaneSample:
    """One priority lane's backlog, summed over every partition.

    ``depth`` counts entries still in the lane's streams (waiting plus
    delivered but not yet acknowledged); ``lag`` is the consumer group's lag
    (entries never delivered to any worker), the autoscaling signal;
    ``oldest_waiting_age_s`` is the age of the oldest undelivered entry, 0
    when nothing waits.
    """

    lane: str
    depth: int
    lag: int
    oldest_waiting_age_s: float


@dataclass(frozen=True, slots=True)
class QueueSample:
    """A point-in-time reading of the whole queue (what GetQueueStats sees)."""

    lanes: tuple[LaneSample, ...]
    active: int
    delayed: int
    failed: int


@dataclass(frozen=True, slots=True)
class Metrics:
    """Every metric of the suite, bound to one registry."""

    registry: CollectorRegistry
    # Queue (sampled by the scheduler, see record_queue).
    queue_depth: Gauge
    queue_lag: Gauge
    queue_oldest_waiting_age: Gauge
    queue_active: Gauge
    queue_delayed: Gauge
    queue_failed: Gauge
    # Execution lifecycle (recorded where the transition commits).
    executions_started: Counter
    executions_completed: Counter
    executions_failed: Counter
    executions_retried: Counter
    executions_reclaimed: Counter
    executions_cancelled: Counter
    executions_timed_out: Counter
    fence_refusals: Counter
    execution_duration: Histogram
    node_duration: Histogram
    worker_active_jobs: Gauge
    # Events fan-out (events service and gateway).
    events_delivered: Counter
    event_subscribers: Gauge
    slow_subscriber_cutoffs: Counter
    # RPC latency (interceptors.ServerCallInterceptor).
    request_duration: Histogram
    # Labelled children by label values: prometheus-client's labels() lookup
    # costs more than the observation itself, and the worker calls it per node.
    _children: dict[tuple[str, str, str], Any] = field(
        default_factory=dict, repr=False, compare=False
    )

    def _child(self, metric: Histogram, key: tuple[str, str, str], **labels: str) -> Any:
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(**labels)
        return child

    def record_queue(self, sample: QueueSample) -> None:
        """Publish one queue reading.

        Lanes missing from ``sample`` are dropped from the gauges so a lane
        removed from the configuration does not report its last value forever.
        """
        seen = {lane.lane for lane in sample.lanes}
        for gauge in (self.queue_depth, self.queue_lag, self.queue_oldest_waiting_age):
            for labels in _label_values(gauge):
                if labels[0] not in seen:
                    gauge.remove(*labels)
        for lane in sample.lanes:
            self.queue_depth.labels(lane=lane.lane).set(lane.depth)
            self.queue_lag.labels(lane=lane.lane).set(lane.lag)
            self.queue_oldest_waiting_age.labels(lane=lane.lane).set(lane.oldest_waiting_age_s)
        self.queue_active.set(sample.active)
        self.queue_delayed.set(sample.delayed)
        self.queue_failed.set(sample.failed)

    def observe_execution(self, status: str, duration_s: float) -> None:
        """Count a finished execution attempt and record its duration.

        ``status`` is the lower-case terminal status: completed, failed,
        cancelled or timed_out. A failed attempt that will be retried is
        counted with :attr:`executions_retried` instead of ``failed``.
        """
        counter = {
            "completed": self.executions_completed,
            "failed": self.executions_failed,
            "cancelled": self.executions_cancelled,
            "timed_out": self.executions_timed_out,
            "retrying": self.executions_retried,
        }.get(status)
        if counter is None:
            raise ValueError(f"unknown execution status for metrics: {status!r}")
        counter.inc()
        self._child(self.execution_duration, ("execution", status, ""), status=status).observe(
            duration_s
        )

    def observe_node(self, node_type: str, status: str, duration_s: float) -> None:
        """Record one node run (status: completed, failed or skipped)."""
        self._child(
            self.node_duration, ("node", node_type, status), node_type=node_type, status=status
        ).observe(duration_s)


def _label_values(metric: Gauge) -> list[tuple[str, ...]]:
    # prometheus-client has no public "list children"; collect() is public and
    # gives each child's labels.
    found: list[tuple[str, ...]] = []
    for family in metric.collect():
        for sample in family.samples:
            found.append(tuple(sample.labels.values()))
    return found


def create_metrics(registry: CollectorRegistry) -> Metrics:
    """Register every metric on ``registry`` (a fresh one in tests)."""
    r = registry
    return Metrics(
        registry=r,
        queue_depth=Gauge(
            "nodedrop_queue_depth",
            "Jobs in the lane's streams: waiting plus delivered but unacknowledged.",
            ["lane"],
            registry=r,
        ),
        queue_lag=Gauge(
            "nodedrop_queue_consumer_lag",
            "Entries never delivered to the workers consumer group (autoscaling signal).",
            ["lane"],
            registry=r,
        ),
        queue_oldest_waiting_age=Gauge(
            "nodedrop_queue_oldest_waiting_age_seconds",
            "Age of the oldest job not yet delivered to a worker; 0 when none waits.",
            ["lane"],
            registry=r,
        ),
        queue_active=Gauge(
            "nodedrop_queue_active",
            "Jobs delivered to a worker and not yet acknowledged.",
            registry=r,
        ),
        queue_delayed=Gauge(
            "nodedrop_queue_delayed",
            "Jobs waiting for their due time (retries, scheduled runs).",
            registry=r,
        ),
        queue_failed=Gauge(
            "nodedrop_queue_failed", "Jobs in the failed queue (dead letters).", registry=r
        ),
        executions_started=Counter(
            "nodedrop_executions_started", "Execution attempts a worker began.", registry=r
        ),
        executions_completed=Counter(
            "nodedrop_executions_completed", "Executions that ended COMPLETED.", registry=r
        ),
        executions_failed=Counter(
            "nodedrop_executions_failed",
            "Executions that ended FAILED (after their last attempt).",
            registry=r,
        ),
        executions_retried=Counter(
            "nodedrop_executions_retried",
            "Failed attempts put back on the queue for another attempt.",
            registry=r,
        ),
        executions_reclaimed=Counter(
            "nodedrop_executions_reclaimed",
            "Jobs taken over from a worker whose lease expired.",
            registry=r,
        ),
        executions_cancelled=Counter(
            "nodedrop_executions_cancelled", "Executions that ended CANCELLED.", registry=r
        ),
        executions_timed_out=Counter(
            "nodedrop_executions_timed_out", "Executions that ended TIMED_OUT.", registry=r
        ),
        fence_refusals=Counter(
            "nodedrop_fence_refusals",
            "State writes refused because a newer owner holds the execution's fence.",
            registry=r,
        ),
        execution_duration=Histogram(
            "nodedrop_execution_duration_seconds",
            "Wall time of one execution attempt, by how it ended.",
            ["status"],
            buckets=_EXECUTION_BUCKETS,
            registry=r,
        ),
        node_duration=Histogram(
            "nodedrop_node_duration_seconds",
            "Wall time of one node run.",
            ["node_type", "status"],
            buckets=_NODE_BUCKETS,
            registry=r,
        ),
        worker_active_jobs=Gauge(
            "nodedrop_worker_active_jobs", "Jobs this worker process runs right now.", registry=r
        ),
        events_delivered=Counter(
            "nodedrop_events_delivered",
            "Events written to subscribers.",
            ["transport"],
            registry=r,
        ),
        event_subscribers=Gauge(
            "nodedrop_event_subscribers",
            "Open event subscriptions.",
            ["transport"],
            registry=r,
        ),
        slow_subscriber_cutoffs=Counter(
            "nodedrop_slow_subscriber_cutoffs",
            "Subscriptions ended because the subscriber fell too far behind.",
            ["transport"],
            registry=r,
        ),
        request_duration=Histogram(
            "nodedrop_request_duration_seconds",
            "gRPC request latency as the server sees it, by method and status code.",
            ["method", "code"],
            buckets=_RPC_BUCKETS,
            registry=r,
        ),
    )


@lru_cache(maxsize=1)
def get_metrics() -> Metrics:
    """The process-wide metrics, on prometheus-client's default registry.

    Cached so that every service of one process (``nodedrop dev``) records
    on the same objects; registering twice would raise.
    """
    return create_metrics(REGISTRY)


def parse_listen_addr(addr: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into host and port."""
    host, sep, port_text = addr.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise MetricsAddressError(f"metrics address must be host:port, got {addr!r}")
    port = int(port_text)
    if port > 65535:
        raise MetricsAddressError(f"metrics port out of range in {addr!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


class MetricsServer:
    """Serves ``/metrics`` over HTTP for one registry, with an asyncio lifecycle.

    prometheus-client's WSGI server runs in a daemon thread; a scrape holds
    the GIL only while it renders the text, which keeps it off the event
    loop's critical path. ``stop()`` is idempotent and waits for the thread.

        async with MetricsServer("0.0.0.0:9104") as server:
            ...  # server.port is the bound port (useful with port 0)
    """

    def __init__(self, addr: str, registry: CollectorRegistry | None = None) -> None:
        self._host, self._port = parse_listen_addr(addr)
        self._registry = registry if registry is not None else REGISTRY
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (differs from the asked one for port 0)."""
        if self._server is None:
            return self._port
        return int(self._server.server_port)

    @property
    def address(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self.port}"

    async def start(self) -> None:
        if self._server is not None:
            return
        # Binding is quick, but a DNS lookup of the host could block: off-loop.
        self._server, self._thread = await asyncio.to_thread(
            start_wsgi_server, self._port, self._host, self._registry
        )

    async def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        await asyncio.to_thread(_shutdown, server, thread)

    async def __aenter__(self) -> MetricsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def _shutdown(server: WSGIServer, thread: threading.Thread | None) -> None:
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(timeout=5)
