"""Dramatiq: one process with its default eight threads; dramatiq.pipeline."""

from __future__ import annotations

import os
import sys

from _common import Adapter, main
from dramatiq import pipeline
from dramatiq_tasks import noop, probe


async def enqueue_noops(total: int) -> None:
    for _ in range(total):
        noop.send(total)


async def enqueue_probe() -> None:
    probe.send()


async def enqueue_chains(total: int) -> None:
    steps = 5 * total
    for _ in range(total):
        pipeline(
            [noop.message_with_options(args=(steps,), pipe_ignore=True) for _ in range(5)]
        ).run()


if __name__ == "__main__":
    dramatiq_bin = os.path.join(os.path.dirname(sys.executable), "dramatiq")
    main(
        Adapter(
            worker_argv=(dramatiq_bin, "dramatiq_tasks", "--processes", "1", "--threads", "8"),
            enqueue_noops=enqueue_noops,
            enqueue_probe=enqueue_probe,
            enqueue_chains=enqueue_chains,
        )
    )
