"""/metrics while a few hundred queued executions run: the queue gauges fill
and drain, the execution counters and the node duration histogram climb.

Also the process lifecycle's side of it: ``serve`` exposes /metrics on the
configured address for as long as the services run, and a bad
NODEDROP_METRICS_ADDR stops the process naming the variable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from nodedrop.common.client import call, open_channel
from nodedrop.common.metrics import MetricsServer
from nodedrop.common.server import serve
from nodedrop.common.settings import Address, MetricsSettings
from nodedrop.queue.v1 import scheduler_service_pb2 as pb
from nodedrop.queue.v1 import scheduler_service_pb2_grpc as pb_grpc
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb
from tests.helpers.ports import free_port, port_open
from tests.helpers.services import service_metadata
from tests.telemetry.conftest import Stack

EXECUTIONS = 300


@dataclass(frozen=True)
class Scrape:
    lag: float
    depth: float
    started: float
    completed: float
    node_runs: float


async def scrape(client: httpx.AsyncClient, url: str) -> Scrape:
    response = await client.get(url, timeout=5)
    assert response.status_code == 200
    values: dict[str, float] = {}
    node_runs = 0.0
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            lane = sample.labels.get("lane")
            if sample.name in ("nodedrop_queue_consumer_lag", "nodedrop_queue_depth"):
                if lane == "0":
                    values[sample.name] = sample.value
            elif sample.name == "nodedrop_node_duration_seconds_count":
                if sample.labels.get("node_type") == "noop":
                    node_runs += sample.value
            elif sample.name in (
                "nodedrop_executions_started_total",
                "nodedrop_executions_completed_total",
            ):
                values[sample.name] = sample.value
    return Scrape(
        lag=values.get("nodedrop_queue_consumer_lag", 0.0),
        depth=values.get("nodedrop_queue_depth", 0.0),
        started=values.get("nodedrop_executions_started_total", 0.0),
        completed=values.get("nodedrop_executions_completed_total", 0.0),
        node_runs=node_runs,
    )


def workflow() -> wf_pb.Workflow:
    return wf_pb.Workflow(
        id="wf-load",
        name="load",
        nodes=[
            wf_pb.Node(id="start", type="manual_trigger"),
            wf_pb.Node(id="a", type="noop"),
            wf_pb.Node(id="b", type="noop"),
        ],
        connections=[
            wf_pb.Connection(source="start", target="a"),
            wf_pb.Connection(source="a", target="b"),
        ],
    )


@pytest.mark.slow
async def test_metrics_move_as_the_queue_fills_and_drains(
    stack_factory: Callable[[Mapping[str, str]], Stack],
) -> None:
    stack = stack_factory({"EXECUTION_WORKER_CONCURRENCY": "8"})
    await stack.start_scheduler()
    async with (
        MetricsServer("127.0.0.1:0") as metrics,
        httpx.AsyncClient() as http,
        open_channel(stack.scheduler_target) as channel,
    ):
        url = f"http://{metrics.address}/metrics"
        before = await scrape(http, url)
        stub = pb_grpc.SchedulerServiceStub(channel)
        wf = workflow()
        for start in range(0, EXECUTIONS, 50):
            await asyncio.gather(
                *(
                    call(
                        stub.EnqueueExecution,
                        pb.EnqueueExecutionRequest(
                            execution_id=f"load-{i}", tenant_id="t1", workflow=wf
                        ),
                        metadata=service_metadata(),
                    )
                    for i in range(start, start + 50)
                )
            )
        # No worker yet: the sampler sees the whole backlog waiting.
        deadline = time.monotonic() + 10
        queued = await scrape(http, url)
        while queued.lag < EXECUTIONS:
            assert time.monotonic() < deadline, f"backlog never sampled: {queued}"
            await asyncio.sleep(0.05)
            queued = await scrape(http, url)
        assert queued.depth >= EXECUTIONS
        assert queued.started == before.started

        await stack.start_worker()
        seen: list[Scrape] = []
        deadline = time.monotonic() + 30
        while True:
            now = await scrape(http, url)
            seen.append(now)
            done = now.completed - before.completed >= EXECUTIONS
            if done and now.lag == 0:
                break
            assert time.monotonic() < deadline, f"work did not finish: {now}"
            await asyncio.sleep(0.02)

    final = seen[-1]
    assert final.completed - before.completed == EXECUTIONS
    assert final.started - before.started >= EXECUTIONS
    assert final.node_runs - before.node_runs == 2 * EXECUTIONS
    # Counters only climb, and the scrapes caught the work part-way.
    completed = [s.completed for s in seen]
    assert completed == sorted(completed)
    assert any(0 < s.completed - before.completed < EXECUTIONS for s in seen)
    # The backlog the sampler saw drained to nothing.
    assert final.lag == 0 < queued.lag


async def test_serve_exposes_metrics_while_services_run() -> None:
    port = free_port()
    stop = asyncio.Event()

    class Idle:
        name = "idle"

        async def start(self) -> None:
            pass

        async def set_not_serving(self) -> None:
            pass

        async def stop(self, grace_s: float) -> None:
            pass

    task = asyncio.create_task(
        serve(
            [Idle()],
            1.0,
            stop_event=stop,
            metrics=MetricsSettings(Address("127.0.0.1", port)),
        )
    )
    try:
        deadline = time.monotonic() + 5
        while not port_open("127.0.0.1", port, 0.1):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient() as http:
            body = (await http.get(f"http://127.0.0.1:{port}/metrics", timeout=5)).text
        assert "nodedrop_executions_started_total" in body
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert not port_open("127.0.0.1", port, 0.1)


def test_bad_metrics_address_names_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    from nodedrop.common.server import run_service  # noqa: PLC0415

    class Never:
        name = "worker"

        async def start(self) -> None:
            raise AssertionError("must not start with a bad metrics address")

        async def set_not_serving(self) -> None:
            pass

        async def stop(self, grace_s: float) -> None:
            pass

    assert run_service([Never()], 1.0, env={"NODEDROP_METRICS_ADDR": "nine-one-o-four"}) == 2
    assert "NODEDROP_METRICS_ADDR" in capsys.readouterr().err


def test_metrics_settings_defaults_and_off() -> None:
    assert MetricsSettings.from_env({}, "127.0.0.1:9104").addr == Address("127.0.0.1", 9104)
    assert MetricsSettings.from_env({"NODEDROP_METRICS_ADDR": "off"}, "x:1").addr is None
    assert MetricsSettings.from_env(
        {"NODEDROP_METRICS_ADDR": "0.0.0.0:9200"}, "127.0.0.1:9104"
    ).addr == Address("0.0.0.0", 9200)
