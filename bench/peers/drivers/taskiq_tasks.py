"""taskiq broker (taskiq-redis streams, with acks) and tasks."""

from __future__ import annotations

import redis.asyncio as aredis
from _common import arecord_done, arecord_start, redis_url
from taskiq_redis import RedisStreamBroker

broker = RedisStreamBroker(url=redis_url())
_client: list[aredis.Redis] = []


def client() -> aredis.Redis:
    # Created on first use, inside the worker's event loop.
    if not _client:
        _client.append(aredis.Redis.from_url(redis_url()))
    return _client[0]


@broker.task
async def noop(total: int) -> None:
    await arecord_done(client(), total)


@broker.task
async def probe() -> None:
    await arecord_start(client())


@broker.task
async def step(remaining: int, total: int) -> None:
    # taskiq core has no chain primitive (taskiq-pipelines is a separate
    # package): a task kicks its successor.
    await arecord_done(client(), total)
    if remaining > 1:
        await step.kiq(remaining - 1, total)
