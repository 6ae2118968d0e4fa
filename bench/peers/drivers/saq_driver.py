"""saq: one worker process, default concurrency 10."""

from __future__ import annotations

import asyncio
import os
import sys

from _common import Adapter, main
from saq_tasks import queue

_connected: list[bool] = []


async def _ready() -> None:
    if not _connected:
        await queue.connect()
        _connected.append(True)


async def enqueue_noops(total: int) -> None:
    await _ready()
    for start in range(0, total, 500):
        await asyncio.gather(
            *(queue.enqueue("noop", total=total) for _ in range(min(500, total - start)))
        )


async def enqueue_probe() -> None:
    await _ready()
    await queue.enqueue("probe")


async def enqueue_chains(total: int) -> None:
    await _ready()
    for start in range(0, total, 500):
        await asyncio.gather(
            *(
                queue.enqueue("step", remaining=5, total=5 * total)
                for _ in range(min(500, total - start))
            )
        )


if __name__ == "__main__":
    main(
        Adapter(
            worker_argv=(
                os.path.join(os.path.dirname(sys.executable), "saq"),
                "saq_tasks.settings",
                "--workers",
                "1",
            ),
            enqueue_noops=enqueue_noops,
            enqueue_probe=enqueue_probe,
            enqueue_chains=enqueue_chains,
        )
    )
