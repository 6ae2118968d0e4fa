from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from nodedrop.common.server import GrpcServer
from nodedrop.queue.v1 import scheduler_service_pb2_grpc as pb_grpc
from nodedrop.scheduler.app import create_service
from nodedrop.scheduler.settings import SchedulerSettings
from nodedrop.store.config import StoreConfig
from nodedrop.store.keys import Keys
from nodedrop.store.redis_store import RedisStore
from tests.helpers.services import SERVICE_TOKEN, SERVICE_TOKEN_VAR, service_channel


@dataclass
class Scheduler:
    stub: pb_grpc.SchedulerServiceStub
    store: RedisStore
    settings: SchedulerSettings
    port: int


@pytest.fixture
async def scheduler(redis_url: str, redis_prefix: str) -> AsyncIterator[Scheduler]:
    settings = SchedulerSettings.from_env(
        {
            "REDIS_URL": redis_url,
            "NODEDROP_REDIS_PREFIX": redis_prefix,
            "NODEDROP_PARTITIONS": "4",
            "NODEDROP_SCHEDULER_ADDR": "127.0.0.1:0",
            "NODEDROP_LANES": "0,10",
            SERVICE_TOKEN_VAR: SERVICE_TOKEN,
        }
    )
    server = GrpcServer(create_service(settings), settings.server, security=settings.security)
    await server.start()
    store = RedisStore.from_url(redis_url, StoreConfig(keys=Keys(redis_prefix, 4)))
    channel: grpc.aio.Channel = service_channel(f"127.0.0.1:{server.port}")
    try:
        yield Scheduler(pb_grpc.SchedulerServiceStub(channel), store, settings, server.port or 0)
    finally:
        await channel.close()
        await server.stop(1.0)
        await store.delete_all()
        await store.close()
