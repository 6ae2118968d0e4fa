"""The systems under comparison: how each is installed, run and configured.

Every peer gets its own Redis database number so runs never share keys, and
the harness FLUSHDBs only those numbers. Versions are pinned here and the
resolved environment (pip freeze / npm ls) is written into every result file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Peer:
    name: str
    runtime: str  # "python" or "node"
    requirements: tuple[str, ...]
    redis_db: int
    concurrency: str  # the worker setting used, stated in the report
    chain: str  # how the five-step chain is expressed
    has_events: bool  # has a progress-event API that listeners subscribe to


PEERS: tuple[Peer, ...] = (
    Peer(
        name="bullmq",
        runtime="node",
        requirements=("bullmq@6.7.0", "ioredis@5.11.1"),
        redis_db=9,
        concurrency="1 Node process, Worker concurrency 50 (default is 1)",
        chain="FlowProducer: five nested parent/child jobs",
        has_events=True,
    ),
    Peer(
        name="celery",
        runtime="python",
        requirements=("celery[redis]==5.7.0", "hiredis==3.5.0"),
        redis_db=10,
        concurrency="prefork pool, --concurrency 1 (one child), prefetch x4",
        chain="celery.chain of five immutable signatures",
        has_events=False,
    ),
    Peer(
        name="dramatiq",
        runtime="python",
        requirements=("dramatiq[redis]==2.2.1", "hiredis==3.5.0"),
        redis_db=11,
        concurrency="--processes 1 --threads 8 (default threads)",
        chain="dramatiq.pipeline of five messages",
        has_events=False,
    ),
    Peer(
        name="arq",
        runtime="python",
        requirements=("arq==0.28.0", "hiredis==3.5.0"),
        redis_db=12,
        concurrency="max_jobs 10 (default), poll_delay 0.5 s (default)",
        chain="no native chain: each job enqueues the next",
        has_events=False,
    ),
    Peer(
        name="rq",
        runtime="python",
        requirements=("rq==3.0.0", "hiredis==3.5.0"),
        redis_db=13,
        concurrency="default Worker: one job at a time, forks per job",
        chain="depends_on: each job depends on the previous one",
        has_events=False,
    ),
    Peer(
        name="taskiq",
        runtime="python",
        requirements=("taskiq==0.13.0", "taskiq-redis==1.2.4", "hiredis==3.5.0"),
        redis_db=14,
        concurrency="1 worker process (--workers 1), max_async_tasks 100 (default)",
        chain="no native chain in taskiq itself: each task kicks the next",
        has_events=False,
    ),
    Peer(
        name="saq",
        runtime="python",
        requirements=("saq[redis]==0.26.4", "typing_extensions==4.15.0", "hiredis==3.5.0"),
        redis_db=15,
        concurrency="1 worker process, concurrency 10 (default)",
        chain="no native chain: each job enqueues the next",
        has_events=False,
    ),
)


def by_name(name: str) -> Peer:
    for peer in PEERS:
        if peer.name == name:
            return peer
    raise KeyError(f"unknown peer {name!r}; known: {', '.join(p.name for p in PEERS)}")
