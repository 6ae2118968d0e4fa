"""nodedrop.common.metrics: metric definitions, /metrics server."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry

from nodedrop.common.metrics import (
    DEFAULT_METRICS_ADDRS,
    LaneSample,
    Metrics,
    MetricsAddressError,
    MetricsServer,
    QueueSample,
    create_metrics,
    get_metrics,
    parse_listen_addr,
)


@pytest.fixture
def metrics() -> Metrics:
    return create_metrics(CollectorRegistry())


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_record_queue_sets_lanes_and_drops_vanished_ones(metrics: Metrics) -> None:
    metrics.record_queue(
        QueueSample(
            lanes=(LaneSample("0", 7, 5, 2.5), LaneSample("10", 1, 1, 0.25)),
            active=2,
            delayed=3,
            failed=4,
        )
    )
    assert value(metrics, "nodedrop_queue_depth", lane="0") == 7
    assert value(metrics, "nodedrop_queue_consumer_lag", lane="0") == 5
    assert value(metrics, "nodedrop_queue_oldest_waiting_age_seconds", lane="10") == 0.25
    assert value(metrics, "nodedrop_queue_active") == 2
    assert value(metrics, "nodedrop_queue_delayed") == 3
    assert value(metrics, "nodedrop_queue_failed") == 4

    metrics.record_queue(
        QueueSample(lanes=(LaneSample("0", 0, 0, 0.0),), active=0, delayed=0, failed=0)
    )
    assert value(metrics, "nodedrop_queue_depth", lane="0") == 0
    assert value(metrics, "nodedrop_queue_depth", lane="10") is None
    assert value(metrics, "nodedrop_queue_consumer_lag", lane="10") is None


@pytest.mark.parametrize(
    ("status", "counter"),
    [
        ("completed", "nodedrop_executions_completed_total"),
        ("failed", "nodedrop_executions_failed_total"),
        ("cancelled", "nodedrop_executions_cancelled_total"),
        ("timed_out", "nodedrop_executions_timed_out_total"),
        ("retrying", "nodedrop_executions_retried_total"),
    ],
)
def test_observe_execution_counts_and_times(metrics: Metrics, status: str, counter: str) -> None:
    metrics.observe_execution(status, 0.2)
    metrics.observe_execution(status, 0.3)
    assert value(metrics, counter) == 2
    assert value(metrics, "nodedrop_execution_duration_seconds_count", status=status) == 2
    assert value(
        metrics, "nodedrop_execution_duration_seconds_sum", status=status
    ) == pytest.approx(0.5)


def test_observe_execution_rejects_unknown_status(metrics: Metrics) -> None:
    with pytest.raises(ValueError, match="'running'"):
        metrics.observe_execution("running", 1.0)
    assert value(metrics, "nodedrop_execution_duration_seconds_count", status="running") is None


def test_observe_node(metrics: Metrics) -> None:
    metrics.observe_node("set", "completed", 0.0007)
    assert (
        value(
            metrics,
            "nodedrop_node_duration_seconds_bucket",
            node_type="set",
            status="completed",
            le="0.001",
        )
        == 1
    )
    assert (
        value(
            metrics,
            "nodedrop_node_duration_seconds_bucket",
            node_type="set",
            status="completed",
            le="0.0005",
        )
        == 0
    )


def test_every_issue_metric_is_registered(metrics: Metrics) -> None:
    names = {family.name for family in metrics.registry.collect()}
    assert {
        "nodedrop_queue_depth",
        "nodedrop_queue_consumer_lag",
        "nodedrop_queue_oldest_waiting_age_seconds",
        "nodedrop_executions_started",
        "nodedrop_executions_completed",
        "nodedrop_executions_failed",
        "nodedrop_executions_retried",
        "nodedrop_executions_reclaimed",
        "nodedrop_executions_cancelled",
        "nodedrop_fence_refusals",
        "nodedrop_execution_duration_seconds",
        "nodedrop_node_duration_seconds",
        "nodedrop_events_delivered",
        "nodedrop_event_subscribers",
        "nodedrop_slow_subscriber_cutoffs",
        "nodedrop_request_duration_seconds",
    } <= names


def test_get_metrics_is_one_per_process() -> None:
    assert get_metrics() is get_metrics()


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("127.0.0.1:9101", ("127.0.0.1", 9101)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:9104", ("::1", 9104)),
        ("metrics.local:80", ("metrics.local", 80)),
    ],
)
def test_parse_listen_addr(addr: str, expected: tuple[str, int]) -> None:
    assert parse_listen_addr(addr) == expected


@pytest.mark.parametrize("addr", ["", "9101", ":9101", "host:", "host:http", "host:70000"])
def test_parse_listen_addr_rejects(addr: str) -> None:
    with pytest.raises(MetricsAddressError):
        parse_listen_addr(addr)


def test_default_addresses_are_distinct_ports() -> None:
    ports = {parse_listen_addr(a)[1] for a in DEFAULT_METRICS_ADDRS.values()}
    assert len(ports) == len(DEFAULT_METRICS_ADDRS) == 5


async def test_metrics_server_serves_and_stops(metrics: Metrics) -> None:
    metrics.executions_started.inc(3)
    server = MetricsServer("127.0.0.1:0", metrics.registry)
    async with server:
        assert server.port != 0
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"http://{server.address}/metrics")
        assert response.status_code == 200
        assert "nodedrop_executions_started_total 3.0" in response.text
    await server.stop()  # idempotent
    async with httpx.AsyncClient(timeout=2) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{server.port}/metrics")
