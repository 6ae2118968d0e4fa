"""Real API, scheduler and worker processes for the isolation tests, two
tenants' keys, a loop-lag probe and a peak-memory reading of a process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
import orjson
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nodedrop.api.provisioning import ALL_SCOPES, create_key
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.execution.v1 import execution_service_pb2_grpc as ex_grpc
from nodedrop.workflow.v1 import workflow_pb2
from tests.helpers.services import ServiceProcess, isolated_env, start_service

TERMINAL = {
    execution_pb2.EXECUTION_STATUS_COMPLETED,
    execution_pb2.EXECUTION_STATUS_FAILED,
    execution_pb2.EXECUTION_STATUS_CANCELLED,
    execution_pb2.EXECUTION_STATUS_TIMED_OUT,
}
DIRECT = execution_pb2.EXECUTION_MODE_DIRECT
QUEUE = execution_pb2.EXECUTION_MODE_QUEUE

# A probe call slower than this means the process's event loop stalled.
MAX_STALL_S = 0.1
PROBE_EVERY_S = 0.02


@dataclass
class Stack:
    api: ServiceProcess
    worker: ServiceProcess | None
    channel: grpc.aio.Channel
    keys: dict[str, str]

    @property
    def ex(self) -> ex_grpc.ExecutionServiceStub:
        return ex_grpc.ExecutionServiceStub(self.channel)

    def md(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.keys[tenant]}"),)

    async def execute(
        self,
        tenant: str,
        workflow: Mapping[str, Any],
        trigger: Any,
        mode: execution_pb2.ExecutionMode.ValueType,
    ) -> str:
        response = await self.ex.ExecuteWorkflow(
            ex_pb.ExecuteWorkflowRequest(
                workflow=to_proto(workflow),
                trigger_data_json=orjson.dumps(trigger).decode(),
                mode=mode,
            ),
            metadata=self.md(tenant),
            timeout=10,
        )
        return str(response.execution_id)

    async def wait_terminal(
        self, tenant: str, execution_id: str, timeout_s: float
    ) -> execution_pb2.Execution:
        deadline = time.monotonic() + timeout_s
        last: execution_pb2.Execution | None = None
        while time.monotonic() < deadline:
            response = await self.ex.GetExecution(
                ex_pb.GetExecutionRequest(execution_id=execution_id),
                metadata=self.md(tenant),
                timeout=5,
            )
            last = response.execution
            if last.status in TERMINAL:
                return last
            await asyncio.sleep(0.02)
        raise AssertionError(f"execution {execution_id} did not end in {timeout_s} s: {last}")


def to_proto(workflow: Mapping[str, Any]) -> workflow_pb2.Workflow:
    nodes = []
    for n in workflow["nodes"]:
        node = workflow_pb2.Node(
            id=n["id"],
            type=n["type"],
            parameters_json=orjson.dumps(n.get("parameters", {})).decode(),
        )
        if "timeout_s" in n:
            node.timeout_s = n["timeout_s"]
        nodes.append(node)
    connections = [
        workflow_pb2.Connection(
            source=c["from"],
            target=c["to"],
            source_output=c.get("output", "main"),
            target_input=c.get("input", "main"),
        )
        for c in workflow["connections"]
    ]
    msg = workflow_pb2.Workflow(name=workflow["name"], nodes=nodes, connections=connections)
    if "settings" in workflow:
        msg.settings.timeout_s = workflow["settings"]["timeout_s"]
    return msg


@contextlib.asynccontextmanager
async def running_stack(
    redis_url: str,
    redis_prefix: str,
    pg_dsn: str,
    *,
    worker: bool,
    extra: Mapping[str, str] | None = None,
) -> AsyncIterator[Stack]:
    env = isolated_env(redis_url, redis_prefix, pg_dsn, 2.0)
    env.update({"NODEDROP_PARTITIONS": "4", "NODEDROP_READ_BLOCK_S": "0.1", "LOG_LEVEL": "warning"})
    env.update(extra or {})

    def port(var: str) -> int:
        return int(env[var].rsplit(":", 1)[1])

    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(
            start_service("scheduler", env=env, port=port("NODEDROP_SCHEDULER_ADDR"))
        )
        api = await stack.enter_async_context(
            start_service("api", env=env, port=port("NODEDROP_API_ADDR"))
        )
        worker_proc = None
        if worker:
            worker_proc = await stack.enter_async_context(
                start_service("worker", env=env, port=port("NODEDROP_WORKER_ADDR"))
            )
        repo = await PostgresRepository.connect(pg_dsn, min_size=1, max_size=2)
        try:
            keys = {}
            for tenant in ("tenant-a", "tenant-b"):
                key, _ = await create_key(repo, tenant, tenant, ALL_SCOPES)
                keys[tenant] = key.secret
        finally:
            await repo.close()
        channel = grpc.aio.insecure_channel(api.target)
        stack.push_async_callback(channel.close)
        yield Stack(api, worker_proc, channel, keys)


@dataclass
class LagProbe:
    """Health checks every PROBE_EVERY_S on their own channel; each call's time."""

    target: str
    times: list[float] = field(default_factory=list)

    @property
    def worst(self) -> float:
        return max(self.times, default=0.0)

    async def run(self, stop: asyncio.Event) -> None:
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)  # connect first
            while not stop.is_set():
                started = time.perf_counter()
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await stub.Check(health_pb2.HealthCheckRequest(), timeout=30)
                self.times.append(time.perf_counter() - started)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), PROBE_EVERY_S)


@contextlib.asynccontextmanager
async def probing(target: str) -> AsyncIterator[LagProbe]:
    probe = LagProbe(target)
    stop = asyncio.Event()
    task = asyncio.create_task(probe.run(stop))
    await asyncio.sleep(0.1)
    try:
        yield probe
    finally:
        stop.set()
        # A stalled process answers late; the probe's own timeout bounds this.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 35)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")
