"""Shared by every Python peer driver; runs inside the peer's own venv.

Only redis-py (which every Python peer depends on) is imported here. A driver
module defines an Adapter and calls `main(adapter)`; the harness runs

    <peer venv>/bin/python drivers/<peer>_driver.py SCENARIO --jobs N --db D

and reads one JSON object from the last line of stdout.

Completion is observed from outside the peer through plain Redis keys that
the jobs write, so every system is timed the same way:
- bench:done      INCR by every no-op job (and by the last step of a chain);
- bench:t_first   set by the job whose INCR returned 1 (worker is running);
- bench:t_last    set by the job whose INCR returned N (last completion);
- bench:lat       RPUSH of the job's start time, for the latency probes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import redis
import redis.asyncio as aredis
from _cpu import group_cpu_s
from _lifetime import die_with_parent

DONE = "bench:done"
T_FIRST = "bench:t_first"
T_LAST = "bench:t_last"
LAT = "bench:lat"
CHAIN_LENGTH = 5
HERE = os.path.dirname(os.path.abspath(__file__))


def redis_url() -> str:
    # BENCH_REDIS_PORT: a private server (bench/redis_work.py reads its command stats).
    port = int(os.environ.get("BENCH_REDIS_PORT", "6379"))
    return f"redis://127.0.0.1:{port}/{int(os.environ['BENCH_REDIS_DB'])}"


def record_done(client: redis.Redis, total: int) -> None:
    """The body of every synchronous no-op job: one INCR, plus a timestamp
    from the first and the last job (two extra writes in 20,000)."""
    value = client.incr(DONE)
    if value == 1:
        client.set(T_FIRST, repr(time.time()))
    if value == total:
        client.set(T_LAST, repr(time.time()))


async def arecord_done(client: aredis.Redis, total: int) -> None:
    value = await client.incr(DONE)
    if value == 1:
        await client.set(T_FIRST, repr(time.time()))
    if value == total:
        await client.set(T_LAST, repr(time.time()))


def record_start(client: redis.Redis) -> None:
    client.rpush(LAT, repr(time.time()))


async def arecord_start(client: aredis.Redis) -> None:
    await client.rpush(LAT, repr(time.time()))


@dataclass(frozen=True)
class Adapter:
    """What a peer supplies: how to enqueue each kind of job and how to
    start its worker process (argv, run with cwd=drivers/)."""

    worker_argv: Sequence[str]
    enqueue_noops: Callable[[int], Awaitable[None]]
    enqueue_probe: Callable[[], Awaitable[None]]
    enqueue_chains: Callable[[int], Awaitable[None]]


def _start_worker(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=HERE, PYTHONUNBUFFERED="1")
    # Own process group so that the worker's children (prefork pools, forked
    # RQ work horses) are stopped together with it.
    return subprocess.Popen(
        list(argv),
        cwd=HERE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(HERE, "..", ".envs", "worker.log"), "ab"),
        start_new_session=True,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - only a prctl call (see _lifetime)
    )


def _stop_worker(proc: subprocess.Popen[bytes]) -> None:
    # SIGTERM to the main process only, so it can stop its own children the
    # way it does in production; whatever is left after 5 s is killed.
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class _Progress:
    """Completions seen, and the worker's CPU time at the first and at the end."""

    count: int = 0
    first_count: int = 0
    first_cpu_s: float = math.nan
    end_cpu_s: float = math.nan
    first_redis_s: float = math.nan
    end_redis_s: float = math.nan
    first_reads: float = math.nan
    end_reads: float = math.nan

    def per_job(self, start: float, end: float) -> float:
        jobs = self.count - self.first_count
        return (end - start) / jobs if jobs > 0 else math.nan


async def redis_counters(client: aredis.Redis) -> tuple[float, float]:
    """The Redis server's CPU time and its reads from client sockets. A
    request, or a pipeline of them, arrives in one read, so a delta of reads
    is the round trips clients made (the harness's own polls included: an
    upper bound). `make bench` gives each run a private server; on a shared
    one, both deltas also hold other users' work."""
    cpu = await client.info("cpu")
    stats = await client.info("stats")
    return (
        float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        float(stats["total_reads_processed"]),
    )


async def _wait_count(
    client: aredis.Redis, total: int, deadline: float, worker_pid: int
) -> _Progress:
    progress = _Progress()
    while time.monotonic() < deadline:
        progress.count = int(await client.get(DONE) or 0)
        if progress.count and math.isnan(progress.first_cpu_s):
            # CPU from here on is steady work, not start-up and imports.
            progress.first_cpu_s = group_cpu_s(worker_pid)
            progress.first_redis_s, progress.first_reads = await redis_counters(client)
            progress.first_count = progress.count
        if progress.count >= total:
            break
        await asyncio.sleep(0.005)
    progress.end_cpu_s = group_cpu_s(worker_pid)
    progress.end_redis_s, progress.end_reads = await redis_counters(client)
    return progress


async def _batch(
    adapter: Adapter, total: int, enqueue: Callable[[int], Awaitable[None]], limit_s: float
) -> dict[str, object]:
    client = aredis.Redis.from_url(redis_url())
    t0 = time.perf_counter()
    await enqueue(total)
    enqueue_s = time.perf_counter() - t0
    t_spawn = time.time()
    proc = _start_worker(adapter.worker_argv)
    try:
        progress = await _wait_count(client, total, time.monotonic() + limit_s, proc.pid)
        count = progress.count
        t_end = time.time()
    finally:
        _stop_worker(proc)
    t_first = float(await client.get(T_FIRST) or "nan")
    t_last = float(await client.get(T_LAST) or t_end)
    await client.aclose()
    done = count >= total
    # Steady rate: from the first completion to the last; the worker is up
    # by then, so interpreter start-up and imports are not counted.
    span = t_last - t_first
    return {
        "jobs": total,
        "completed": min(count, total),
        "finished": done,
        "enqueue_s": enqueue_s,
        "span_s": span,
        "wall_s": t_last - t_spawn,
        "rate": (min(count, total) - 1) / span if span > 0 else 0.0,
        "cpu_us_per_job": progress.per_job(progress.first_cpu_s, progress.end_cpu_s) * 1e6,
        "redis_cpu_us_per_job": progress.per_job(progress.first_redis_s, progress.end_redis_s)
        * 1e6,
        "redis_round_trips_per_job": progress.per_job(progress.first_reads, progress.end_reads),
        "rate_wall": min(count, total) / (t_last - t_spawn),
    }


async def _latency(adapter: Adapter, total: int, limit_s: float) -> dict[str, object]:
    client = aredis.Redis.from_url(redis_url())
    proc = _start_worker(adapter.worker_argv)
    samples: list[float] = []
    deadline = time.monotonic() + limit_s
    try:
        # Warm-up: the worker is ready once it ran a probe; those are not timed.
        for _ in range(5):
            await adapter.enqueue_probe()
            if await client.blpop([LAT], timeout=30) is None:
                raise RuntimeError("worker did not start a probe job within 30 s")
        for _ in range(total):
            if time.monotonic() > deadline:
                break
            t_enq = time.time()
            await adapter.enqueue_probe()
            got = await client.blpop([LAT], timeout=10)
            if got is None:
                raise RuntimeError("probe job not started within 10 s")
            samples.append((float(got[1]) - t_enq) * 1000.0)
    finally:
        _stop_worker(proc)
        await client.aclose()
    return {
        "jobs": total,
        "completed": len(samples),
        "finished": len(samples) == total,
        "latencies_ms": samples,
    }


def main(adapter: Adapter) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=("throughput", "latency", "chain"))
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    if args.scenario == "throughput":
        result = asyncio.run(_batch(adapter, args.jobs, adapter.enqueue_noops, args.timeout))
    elif args.scenario == "chain":
        # Every step of every chain does the INCR, so --jobs chains finish
        # at 5 x jobs; the rate is in steps per second (chains = rate / 5).
        result = asyncio.run(
            _batch(
                adapter,
                CHAIN_LENGTH * args.jobs,
                lambda steps: adapter.enqueue_chains(steps // CHAIN_LENGTH),
                args.timeout,
            )
        )
    else:
        result = asyncio.run(_latency(adapter, args.jobs, args.timeout))
    sys.stdout.write(json.dumps(result) + "\n")
