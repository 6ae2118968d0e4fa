"""saq queue, worker settings and jobs."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aredis
from _common import arecord_done, arecord_start, redis_url
from saq import Queue

queue = Queue.from_url(redis_url())
_client: list[aredis.Redis] = []


def client() -> aredis.Redis:
    # Created on first use, inside the worker's event loop.
    if not _client:
        _client.append(aredis.Redis.from_url(redis_url()))
    return _client[0]


async def noop(ctx: dict[str, Any], *, total: int) -> None:
    await arecord_done(client(), total)


async def probe(ctx: dict[str, Any]) -> None:
    await arecord_start(client())


async def step(ctx: dict[str, Any], *, remaining: int, total: int) -> None:
    # saq has no chain primitive: a job enqueues its successor.
    await arecord_done(client(), total)
    if remaining > 1:
        await ctx["job"].queue.enqueue("step", remaining=remaining - 1, total=total)


settings = {"queue": queue, "functions": [noop, probe, step], "concurrency": 10}
