"""arq: default worker settings (max_jobs 10, poll_delay 0.5 s)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

from _common import Adapter, main
from arq import create_pool
from arq.connections import ArqRedis
from arq_tasks import REDIS

_pool: list[ArqRedis] = []


async def _get() -> ArqRedis:
    if not _pool:
        _pool.append(await create_pool(REDIS))
    return _pool[0]


async def _many(total: int, one: Callable[[ArqRedis], Awaitable[object]]) -> None:
    pool = await _get()
    for start in range(0, total, 500):
        await asyncio.gather(*(one(pool) for _ in range(min(500, total - start))))


async def enqueue_noops(total: int) -> None:
    await _many(total, lambda pool: pool.enqueue_job("noop", total))


async def enqueue_probe() -> None:
    await (await _get()).enqueue_job("probe")


async def enqueue_chains(total: int) -> None:
    await _many(total, lambda pool: pool.enqueue_job("step", 5, 5 * total))


if __name__ == "__main__":
    main(
        Adapter(
            worker_argv=(
                os.path.join(os.path.dirname(sys.executable), "arq"),
                "arq_tasks.WorkerSettings",
            ),
            enqueue_noops=enqueue_noops,
            enqueue_probe=enqueue_probe,
            enqueue_chains=enqueue_chains,
        )
    )
