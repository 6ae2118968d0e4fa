"""An in-process scheduler and worker on the shared Redis, under the test's
own key prefix, so every span and metric they produce lands in this process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from nodedrop.common.server import GrpcServer
from nodedrop.scheduler.app import SchedulerService
from nodedrop.scheduler.settings import SchedulerSettings
from nodedrop.worker.app import WorkerService
from nodedrop.worker.settings import WorkerSettings
from tests.helpers.services import SERVICE_TOKEN, SERVICE_TOKEN_VAR


@dataclass
class Stack:
    env: dict[str, str]
    scheduler: GrpcServer | None = None
    worker: GrpcServer | None = None
    worker_service: WorkerService | None = None

    @property
    def scheduler_target(self) -> str:
        assert self.scheduler is not None
        return f"127.0.0.1:{self.scheduler.port}"

    async def start_scheduler(self) -> None:
        settings = SchedulerSettings.from_env(self.env)
        self.scheduler = GrpcServer(
            SchedulerService(settings), settings.server, security=settings.security
        )
        await self.scheduler.start()

    async def start_worker(self) -> None:
        settings = WorkerSettings.from_env(self.env)
        self.worker_service = WorkerService(settings)
        self.worker = GrpcServer(self.worker_service, settings.server, security=settings.security)
        await self.worker.start()

    async def stop(self) -> None:
        for server in (self.worker, self.scheduler):
            if server is not None:
                await server.set_not_serving()
                await server.stop(2.0)


@pytest.fixture
async def stack_factory(
    redis_url: str, redis_prefix: str, redis_client: aioredis.Redis
) -> AsyncIterator[Callable[[Mapping[str, str]], Stack]]:
    # redis_client deletes every key under the prefix afterwards.
    stacks: list[Stack] = []

    def make(extra: Mapping[str, str]) -> Stack:
        env = {
            "REDIS_URL": redis_url,
            "NODEDROP_REDIS_PREFIX": redis_prefix,
            "NODEDROP_PARTITIONS": "2",
            "NODEDROP_SCHEDULER_ADDR": "127.0.0.1:0",
            "NODEDROP_WORKER_ADDR": "127.0.0.1:0",
            "NODEDROP_PLUGINS": "tests.telemetry.flaky_nodes",
            "NODEDROP_MOVER_INTERVAL_S": "0.02",
            "NODEDROP_READ_BLOCK_S": "0.05",
            "NODEDROP_QUEUE_SAMPLE_S": "0.1",
            "NODEDROP_SHUTDOWN_GRACE_S": "2",
            SERVICE_TOKEN_VAR: SERVICE_TOKEN,
            **extra,
        }
        stack = Stack(env)
        stacks.append(stack)
        return stack

    try:
        yield make
    finally:
        for stack in stacks:
            await stack.stop()
