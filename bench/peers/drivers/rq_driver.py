"""RQ: the default Worker (forks a work horse per job); chains via depends_on."""

from __future__ import annotations

import os
import sys

import redis
from _common import Adapter, main, redis_url
from rq import Queue
from rq_tasks import noop, probe

queue = Queue("bench", connection=redis.Redis.from_url(redis_url()))


async def enqueue_noops(total: int) -> None:
    for start in range(0, total, 1000):
        batch = [Queue.prepare_data(noop, (total,)) for _ in range(min(1000, total - start))]
        queue.enqueue_many(batch)


async def enqueue_probe() -> None:
    queue.enqueue(probe)


async def enqueue_chains(total: int) -> None:
    steps = 5 * total
    for _ in range(total):
        job = queue.enqueue(noop, steps)
        for _ in range(4):
            job = queue.enqueue(noop, steps, depends_on=job)


if __name__ == "__main__":
    main(
        Adapter(
            worker_argv=(
                os.path.join(os.path.dirname(sys.executable), "rq"),
                "worker",
                "--url",
                redis_url(),
                "--quiet",
                "bench",
            ),
            enqueue_noops=enqueue_noops,
            enqueue_probe=enqueue_probe,
            enqueue_chains=enqueue_chains,
        )
    )
