"""arq worker settings and jobs; jobs use the worker's own Redis pool."""

from __future__ import annotations

import os
from typing import Any

from _common import arecord_done, arecord_start
from arq.connections import RedisSettings

REDIS = RedisSettings(
    host="127.0.0.1",
    port=int(os.environ.get("BENCH_REDIS_PORT", "6379")),
    database=int(os.environ["BENCH_REDIS_DB"]),
)


async def noop(ctx: dict[str, Any], total: int) -> None:
    await arecord_done(ctx["redis"], total)


async def probe(ctx: dict[str, Any]) -> None:
    await arecord_start(ctx["redis"])


async def step(ctx: dict[str, Any], remaining: int, total: int) -> None:
    # arq has no chain primitive: a job enqueues its successor.
    await arecord_done(ctx["redis"], total)
    if remaining > 1:
        await ctx["redis"].enqueue_job("step", remaining - 1, total)


class WorkerSettings:
    functions = (noop, probe, step)
    redis_settings = REDIS
