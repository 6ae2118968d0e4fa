"""Fairness benchmark: one tenant's backlog against another tenant's start latency.

    .venv/bin/python bench/fairness.py [--backlog 10000] [--b-count 100] [--b-gap-ms 50]
        [--concurrency 64] [--max-active N] [--a-wait-s 0.1]

Starts a private redis-server (no persistence) and one real worker process
(`nodedrop worker`, EXECUTION_WORKER_CONCURRENCY=CONCURRENCY, 16 partitions).
Tenant A enqueues BACKLOG executions of a trigger + `wait` A_WAIT_S workflow
through the store (pipelined batches, like bench/queue.py), so its backlog
outlasts the measurement; once A runs, tenant B submits B_COUNT one-node
executions B_GAP_MS apart.  Reported: B's enqueue-to-EXECUTION_STARTED p50,
p99 and max (a blocking read on each execution's event stream, in flight
before its enqueue), and how much of A's backlog was still waiting when B's
last execution was submitted.  --max-active sets NODEDROP_TENANT_MAX_ACTIVE
for the worker and the enqueuing store (default: the setting's default).

The script runs unchanged on code without fair admission (the comparison in
docs/benchmarks.md): the store option is only passed where it exists.
"""

from __future__ import annotations

import sys

# bench/ holds queue.py, named like the standard library module redis-py imports.
if sys.path and sys.path[0] == __import__("os").path.dirname(__file__):
    sys.path.pop(0)

import argparse
import asyncio
import dataclasses
import importlib.util
import os
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import redis.asyncio as aioredis

from nodedrop.engine import WorkflowSettings as _Settings
from nodedrop.store import JobSpec
from nodedrop.store.config import StoreConfig
from nodedrop.store.keys import Keys
from nodedrop.store.redis_store import RedisStore

# The store keeps no execution-settings defaults: the engine's, once.
_SETTINGS = _Settings()
JOB_SETTINGS = {
    "max_attempts": _SETTINGS.max_attempts,
    "backoff_s": _SETTINGS.backoff_s,
    "timeout_s": _SETTINGS.timeout_s,
}

PARTITIONS = 16


def _queue_bench() -> ModuleType:
    """bench/queue.py's process helpers (private Redis, worker, readiness)."""
    path = Path(__file__).with_name("queue.py")
    spec = importlib.util.spec_from_file_location("nd_bench_queue", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def store_config(prefix: str, max_active: int | None) -> StoreConfig:
    extra: dict[str, Any] = {}
    if max_active is not None and "tenant_max_active" in {
        f.name for f in dataclasses.fields(StoreConfig)
    }:
        extra["tenant_max_active"] = max_active
    return StoreConfig(keys=Keys(prefix, PARTITIONS), **extra)


def slow_workflow(wait_s: float) -> str:
    return orjson.dumps(
        {
            "name": "a",
            "nodes": [
                {"id": "t", "type": "manual_trigger"},
                {"id": "w", "type": "wait", "parameters": {"seconds": wait_s}},
            ],
            "connections": [{"from": "t", "to": "w"}],
        }
    ).decode()


async def started(client: aioredis.Redis, stream: str, timeout_s: float) -> float | None:
    """perf_counter time when the execution's EXECUTION_STARTED (sequence 2) is read.

    Blocking reads of a second at most: a longer BLOCK runs into the client's
    read timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await client.xread({stream: "1-0"}, count=1, block=1000):
            return time.perf_counter()
    return None


async def waiting(store: RedisStore) -> int:
    return (await store.stats(int(time.time() * 1000))).waiting


async def measure(store: RedisStore, url: str, args: argparse.Namespace, qb: ModuleType) -> None:
    run = uuid.uuid4().hex[:6]
    a_wf = slow_workflow(args.a_wait_s)
    specs = [
        JobSpec(
            f"a{run}-{i}",
            "tenant-a",
            "wf-a",
            a_wf,
            "",
            **JOB_SETTINGS,
        )
        for i in range(args.backlog)
    ]
    t0 = time.perf_counter()
    for i in range(0, len(specs), 500):
        await store.enqueue_many(specs[i : i + 500], int(time.time() * 1000))
    print(f"  tenant A: {args.backlog} executions enqueued in {time.perf_counter() - t0:.2f}s")
    # A is running: its backlog is what B competes with.
    await asyncio.sleep(1.0)
    b_wf = qb.workflow(1)
    listen = aioredis.Redis.from_url(url, decode_responses=True, max_connections=args.b_count + 8)
    keys = store.config.keys
    lat: list[float] = []
    missing = 0
    try:
        waiters: list[tuple[float, asyncio.Task[float | None]]] = []
        for i in range(args.b_count):
            x = f"b{run}-{i}"
            task = asyncio.create_task(started(listen, keys.exec_events(x), args.timeout_s))
            await asyncio.sleep(0.002)  # the read is in flight before the enqueue
            sent = time.perf_counter()
            await store.enqueue(
                JobSpec(
                    x,
                    "tenant-b",
                    "wf-b",
                    b_wf,
                    "",
                    **JOB_SETTINGS,
                ),
                int(time.time() * 1000),
            )
            waiters.append((sent, task))
            await asyncio.sleep(args.b_gap_ms / 1000)
        left = await waiting(store)
        for sent, task in waiters:
            at = await task
            if at is None:
                missing += 1
            else:
                lat.append((at - sent) * 1000)
    finally:
        await listen.aclose()
    lat.sort()
    p99 = lat[max(0, int(len(lat) * 0.99) - 1)] if lat else float("nan")
    print(
        f"  tenant B: {len(lat)} of {args.b_count} started; enqueue -> EXECUTION_STARTED "
        f"p50 {statistics.median(lat) if lat else float('nan'):.1f} ms, p99 {p99:.1f} ms, "
        f"max {max(lat) if lat else float('nan'):.1f} ms"
        + (f"; {missing} not started within {args.timeout_s:.0f} s" if missing else "")
    )
    print(f"  tenant A still waiting when B's last was submitted: {left}")


async def run(args: argparse.Namespace) -> None:
    qb = _queue_bench()
    folder = tempfile.mkdtemp(prefix="ndfair")
    port = qb.free_port()
    redis = qb.start_redis(port, folder)
    url = f"redis://127.0.0.1:{port}/0"
    if args.max_active is not None:
        os.environ["NODEDROP_TENANT_MAX_ACTIVE"] = str(args.max_active)
    prefix = "fair"
    store = RedisStore.from_url(url, store_config(prefix, args.max_active))
    try:
        await store.ensure_groups()
        proc, addr = qb.start_worker(url, prefix, args.concurrency, 0)
        try:
            await qb.wait_consuming([addr])
            cap = getattr(store.config, "tenant_max_active", "no such setting")
            print(
                f"1 worker process, concurrency {args.concurrency}, {PARTITIONS} partitions, "
                f"tenant max active {cap}; A runs wait {args.a_wait_s}s, B a 1-node workflow:"
            )
            await measure(store, url, args, qb)
        finally:
            proc.terminate()
            proc.wait(30)
            await store.client.flushdb()  # the private server only
    finally:
        await store.close()
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backlog", type=int, default=10_000)
    ap.add_argument("--b-count", type=int, default=100)
    ap.add_argument("--b-gap-ms", type=float, default=50.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--max-active", type=int, default=None)
    ap.add_argument("--a-wait-s", type=float, default=0.1)
    ap.add_argument("--timeout-s", type=float, default=120.0)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    asyncio.run(run(args))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
