"""taskiq: one worker process (--workers 1), default max_async_tasks."""

from __future__ import annotations

import asyncio
import os
import sys

from _common import Adapter, main
from taskiq_tasks import broker, noop, probe, step

_started: list[bool] = []


async def _ready() -> None:
    if not _started:
        await broker.startup()
        _started.append(True)


async def enqueue_noops(total: int) -> None:
    await _ready()
    for start in range(0, total, 500):
        await asyncio.gather(*(noop.kiq(total) for _ in range(min(500, total - start))))


async def enqueue_probe() -> None:
    await _ready()
    await probe.kiq()


async def enqueue_chains(total: int) -> None:
    await _ready()
    for start in range(0, total, 500):
        await asyncio.gather(*(step.kiq(5, 5 * total) for _ in range(min(500, total - start))))


if __name__ == "__main__":
    main(
        Adapter(
            worker_argv=(
                os.path.join(os.path.dirname(sys.executable), "taskiq"),
                "worker",
                "taskiq_tasks:broker",
                "--workers",
                "1",
            ),
            enqueue_noops=enqueue_noops,
            enqueue_probe=enqueue_probe,
            enqueue_chains=enqueue_chains,
        )
    )
