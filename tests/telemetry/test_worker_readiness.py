"""The worker's gRPC health follows its consumer: NOT_SERVING while Redis is
unreachable or the worker drains, SERVING again once it consumes."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nodedrop.common.server import GrpcServer
from nodedrop.worker.app import WorkerService
from nodedrop.worker.settings import WorkerSettings
from tests.helpers.ports import free_port, port_open

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class RestartableRedis:
    """A private redis-server that can go away and come back on the same port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self._binary = binary
        self.port = free_port()
        self._dir = tempfile.mkdtemp(prefix="nd-ready-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._process = subprocess.Popen(
            [self._binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", self._dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port, 0.2):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[RestartableRedis]:
    server = RestartableRedis()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def worker(
    redis_server: RestartableRedis,
) -> AsyncIterator[tuple[WorkerService, health_pb2_grpc.HealthStub]]:
    settings = WorkerSettings.from_env(
        {
            "REDIS_URL": redis_server.url,
            "NODEDROP_WORKER_ADDR": "127.0.0.1:0",
            "NODEDROP_PARTITIONS": "2",
            "NODEDROP_READ_BLOCK_S": "0.1",
            "NODEDROP_SHUTDOWN_GRACE_S": "1",
        }
    )
    service = WorkerService(settings)
    server = GrpcServer(service, settings.server)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield service, health_pb2_grpc.HealthStub(channel)
    finally:
        await channel.close()
        await server.set_not_serving()
        await server.stop(1.0)


async def status_of(stub: health_pb2_grpc.HealthStub) -> int:
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
    return int(reply.status)


async def wait_for(stub: health_pb2_grpc.HealthStub, wanted: int, timeout_s: float = 8) -> None:
    deadline = time.monotonic() + timeout_s
    seen = -1
    while time.monotonic() < deadline:
        seen = await status_of(stub)
        if seen == wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"health stayed {seen}, wanted {wanted}")


async def test_health_follows_redis_outage_and_recovery(
    worker: tuple[WorkerService, health_pb2_grpc.HealthStub], redis_server: RestartableRedis
) -> None:
    _, stub = worker
    await wait_for(stub, SERVING)
    redis_server.stop()
    await wait_for(stub, NOT_SERVING)
    # Stays down while Redis stays down (not a one-off flicker).
    for _ in range(5):
        await asyncio.sleep(0.1)
        assert await status_of(stub) == NOT_SERVING
    redis_server.start()
    await wait_for(stub, SERVING, timeout_s=15)


async def test_health_reports_not_serving_while_draining(
    worker: tuple[WorkerService, health_pb2_grpc.HealthStub],
) -> None:
    service, stub = worker
    await wait_for(stub, SERVING)
    assert service.consumer is not None
    service.consumer.begin_drain()
    await wait_for(stub, NOT_SERVING)
