"""The whole queue-mode system as real processes (scheduler, worker, one or more
API replicas) on the test's Redis prefix and PostgreSQL database, with one
tenant's API key and a client per API replica."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import grpc

from nodedrop.admin.v1 import queue_admin_service_pb2_grpc as admin_grpc
from nodedrop.api.provisioning import ALL_SCOPES, create_key
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.execution.v1 import execution_service_pb2_grpc as ex_grpc
from nodedrop.workflow.v1 import workflow_service_pb2_grpc as wf_grpc
from tests.helpers.services import ServiceProcess, isolated_env, start_service

__all__ = ["ApiClient", "System", "running_system", "until"]

T = TypeVar("T")

TENANT = "tenant-a"


@dataclass
class ApiClient:
    """Stubs of one API replica, with the tenant's key on every call."""

    channel: grpc.aio.Channel
    key: str

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.key}"),)

    @property
    def ex(self) -> ex_grpc.ExecutionServiceStub:
        return ex_grpc.ExecutionServiceStub(self.channel)

    @property
    def wf(self) -> wf_grpc.WorkflowServiceStub:
        return wf_grpc.WorkflowServiceStub(self.channel)

    @property
    def admin(self) -> admin_grpc.QueueAdminServiceStub:
        return admin_grpc.QueueAdminServiceStub(self.channel)


@dataclass
class System:
    env: dict[str, str]
    scheduler: ServiceProcess
    worker: ServiceProcess
    apis: list[ApiClient]


async def until(
    what: str, check: Callable[[], Awaitable[T | None]], timeout_s: float, every_s: float = 0.1
) -> T:
    """The first truthy value of ``check``; fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(every_s)


@contextlib.asynccontextmanager
async def running_system(
    redis_url: str,
    redis_prefix: str,
    pg_dsn: str,
    *,
    apis: int = 1,
    extra: Mapping[str, str] | None = None,
) -> AsyncIterator[System]:
    env = isolated_env(redis_url, redis_prefix, pg_dsn, 2.0)
    env.update(
        {
            "NODEDROP_PARTITIONS": "4",
            "NODEDROP_READ_BLOCK_S": "0.1",
            "NODEDROP_METRICS_ADDR": "off",
            "LOG_LEVEL": "warning",
        }
    )
    env.update(extra or {})

    def port(var: str) -> int:
        return int(env[var].rsplit(":", 1)[1])

    repo = await PostgresRepository.connect(pg_dsn, min_size=1, max_size=2)
    try:
        key, _ = await create_key(repo, TENANT, TENANT, ALL_SCOPES)
    finally:
        await repo.close()
    async with contextlib.AsyncExitStack() as stack:
        scheduler = await stack.enter_async_context(
            start_service("scheduler", env=env, port=port("NODEDROP_SCHEDULER_ADDR"))
        )
        worker = await stack.enter_async_context(
            start_service("worker", env=env, port=port("NODEDROP_WORKER_ADDR"))
        )
        clients: list[ApiClient] = []
        for i in range(apis):
            api = await stack.enter_async_context(
                start_service("api", env=env, port=port("NODEDROP_API_ADDR") if i == 0 else None)
            )
            channel = grpc.aio.insecure_channel(api.target)
            stack.push_async_callback(channel.close)
            clients.append(ApiClient(channel, key.secret))
        yield System(env, scheduler, worker, clients)
