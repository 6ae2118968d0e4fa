"""Celery: prefork worker with one child; chains with celery.chain."""

from __future__ import annotations

import os
import sys

from _common import Adapter, main
from celery import chain
from celery_tasks import noop, probe


async def enqueue_noops(total: int) -> None:
    for _ in range(total):
        noop.apply_async((total,))


async def enqueue_probe() -> None:
    probe.apply_async()


async def enqueue_chains(total: int) -> None:
    steps = 5 * total
    for _ in range(total):
        chain(*(noop.si(steps) for _ in range(5))).apply_async()


if __name__ == "__main__":
    celery_bin = os.path.join(os.path.dirname(sys.executable), "celery")
    main(
        Adapter(
            worker_argv=(
                celery_bin,
                "-A",
                "celery_tasks",
                "worker",
                "--concurrency",
                "1",
                "--loglevel",
                "WARNING",
            ),
            enqueue_noops=enqueue_noops,
            enqueue_probe=enqueue_probe,
            enqueue_chains=enqueue_chains,
        )
    )
