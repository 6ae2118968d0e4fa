"""An API server in this process, on a free port, with its own Redis prefix and
PostgreSQL database; helpers to call it and wait for executions to end."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import grpc

from nodedrop.api.app import ApiService
from nodedrop.api.provisioning import ALL_SCOPES, create_key
from nodedrop.api.queueing import QueuePort
from nodedrop.api.repository import ExecutionRepository
from nodedrop.api.settings import ApiSettings
from nodedrop.common.server import GrpcServer
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.execution.v1 import execution_service_pb2_grpc as ex_grpc
from nodedrop.scheduler.app import SchedulerService
from nodedrop.scheduler.settings import SchedulerSettings
from nodedrop.worker.app import WorkerService
from nodedrop.worker.settings import WorkerSettings
from nodedrop.workflow.v1 import workflow_service_pb2_grpc as wfs_grpc
from tests.helpers.services import SERVICE_TOKEN, SERVICE_TOKEN_VAR

TERMINAL = {
    execution_pb2.EXECUTION_STATUS_COMPLETED,
    execution_pb2.EXECUTION_STATUS_FAILED,
    execution_pb2.EXECUTION_STATUS_CANCELLED,
    execution_pb2.EXECUTION_STATUS_TIMED_OUT,
}


@dataclass
class RunningApi:
    service: ApiService
    server: GrpcServer
    channel: grpc.aio.Channel
    key: str
    other_key: str

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def ex(self) -> ex_grpc.ExecutionServiceStub:
        return ex_grpc.ExecutionServiceStub(self.channel)

    @property
    def wf(self) -> wfs_grpc.WorkflowServiceStub:
        return wfs_grpc.WorkflowServiceStub(self.channel)

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.key}"),)

    async def wait_terminal(
        self, execution_id: str, timeout_s: float = 15.0, *, include_outputs: bool = False
    ) -> execution_pb2.Execution:
        deadline = time.monotonic() + timeout_s
        last: execution_pb2.Execution | None = None
        while time.monotonic() < deadline:
            response: ex_pb.GetExecutionResponse = await self.ex.GetExecution(
                ex_pb.GetExecutionRequest(
                    execution_id=execution_id, include_outputs=include_outputs
                ),
                metadata=self.md,
            )
            last = response.execution
            if last.status in TERMINAL:
                return last
            await asyncio.sleep(0.05)
        raise AssertionError(f"execution {execution_id} did not end in {timeout_s} s: {last}")


def api_settings(
    redis_url: str, prefix: str, extra: Mapping[str, str] | None = None
) -> ApiSettings:
    env = {
        "NODEDROP_API_ADDR": "127.0.0.1:0",
        "REDIS_URL": redis_url,
        "NODEDROP_REDIS_PREFIX": prefix,
        "NODEDROP_PARTITIONS": "4",
        "NODEDROP_RESULT_CACHE_TTL_S": "0",
        SERVICE_TOKEN_VAR: SERVICE_TOKEN,
    }
    env.update(extra or {})
    return ApiSettings.from_env(env)


@contextlib.asynccontextmanager
async def running_api(
    settings: ApiSettings,
    repo: ExecutionRepository,
    queue: QueuePort | None = None,
) -> AsyncIterator[RunningApi]:
    service = ApiService(settings, repository=repo, queue=queue)
    server = GrpcServer(service, settings.server, security=settings.security)
    await server.start()
    key, _ = await create_key(repo, "tenant-a", "a", ALL_SCOPES)
    other, _ = await create_key(repo, "tenant-b", "b", ALL_SCOPES)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield RunningApi(service, server, channel, key.secret, other.secret)
    finally:
        await channel.close()
        await server.set_not_serving()
        await server.stop(1.0)


@contextlib.asynccontextmanager
async def queue_api(
    repo: ExecutionRepository,
    redis_url: str,
    redis_prefix: str,
    *,
    mode: str = "",
    env: Mapping[str, str] | None = None,
    worker_env: Mapping[str, str] | None = None,
) -> AsyncIterator[RunningApi]:
    """An API in queue mode with an in-process scheduler and worker on one Redis prefix.

    ``mode`` "queue-store" has the API enqueue straight into the store instead of
    through the scheduler; ``env`` adds settings to all three services,
    ``worker_env`` to the scheduler and worker only."""
    extra = dict(env or {})
    base = {
        "REDIS_URL": redis_url,
        "NODEDROP_REDIS_PREFIX": redis_prefix,
        "NODEDROP_PARTITIONS": "4",
        "NODEDROP_READ_BLOCK_S": "0.1",
        SERVICE_TOKEN_VAR: SERVICE_TOKEN,
        **extra,
        **(worker_env or {}),
    }
    sched_settings = SchedulerSettings.from_env({**base, "NODEDROP_SCHEDULER_ADDR": "127.0.0.1:0"})
    sched = GrpcServer(
        SchedulerService(sched_settings), sched_settings.server, security=sched_settings.security
    )
    await sched.start()
    worker = WorkerService(WorkerSettings.from_env(base))
    await worker.start()
    settings = api_settings(
        redis_url,
        redis_prefix,
        {
            "NODEDROP_SCHEDULER_ADDR": f"127.0.0.1:{sched.port}",
            "NODEDROP_EXECUTE_RATE_PER_S": "0",
            "NODEDROP_API_ENQUEUE": "store" if mode == "queue-store" else "scheduler",
            **extra,
        },
    )
    try:
        async with running_api(settings, repo) as a:
            yield a
    finally:
        with contextlib.suppress(Exception):
            await worker.stop()
        await sched.set_not_serving()
        await sched.stop(1.0)
