"""nodedrop-exec through the peers' scenarios; runs in the project's .venv.

The real worker process (`nodedrop worker`, default settings unless stated)
against the shared Redis, db BENCH_REDIS_DB under its own key prefix. Jobs
enter through the store's enqueue_many, the same Lua script the scheduler's
EnqueueExecution runs (minus its gRPC hop), so every execution takes the full
durable path: execution state, one fenced checkpoint per node, events to the
execution's and the partition's streams, the finish and the XACK.

Completion is read from the store's per-partition COMPLETED counters (polled
every 5 ms, so the timestamps carry up to 5 ms of error on multi-second
spans); idle latency is enqueue to the EXECUTION_STARTED event, read by an
XREAD that is already blocked when the enqueue is sent (so it also pays one
read hop that the peers' job-side timestamps do not).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from _cpu import group_cpu_s
from _lifetime import die_with_parent
from nodedrop_events import run_events

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

REPO = Path(__file__).resolve().parents[3]
PARTITIONS = 16
PREFIX = "ndbench"
CHAIN_LENGTH = 5
# The worker's concurrency for this run; EXECUTION_WORKER_CONCURRENCY's
# default (5) unless the harness passes another value.
CONCURRENCY = os.environ.get("BENCH_NODEDROP_CONCURRENCY", "")


def redis_url() -> str:
    # BENCH_REDIS_PORT: a private server (bench/redis_work.py reads its command stats).
    port = int(os.environ.get("BENCH_REDIS_PORT", "6379"))
    return f"redis://127.0.0.1:{port}/{int(os.environ['BENCH_REDIS_DB'])}"


def workflow(nodes: int) -> str:
    """A manual trigger followed by nodes-1 noop nodes in a line."""
    ids = ["t"] + [f"n{i}" for i in range(1, nodes)]
    body = [{"id": "t", "type": "manual_trigger"}] + [{"id": i, "type": "noop"} for i in ids[1:]]
    conns = [{"from": a, "to": b} for a, b in itertools.pairwise(ids)]
    return orjson.dumps({"name": f"noop{nodes}", "nodes": body, "connections": conns}).decode()


SERVICE_TOKEN = f"bench-{uuid.uuid4().hex}"


def worker_env() -> dict[str, str]:
    env = dict(
        os.environ,
        REDIS_URL=redis_url(),
        NODEDROP_REDIS_PREFIX=PREFIX,
        NODEDROP_PARTITIONS=str(PARTITIONS),
        NODEDROP_WORKER_ADDR="127.0.0.1:0",
        NODEDROP_WORKER_ID=f"bench-{uuid.uuid4().hex[:6]}",
        LOG_LEVEL="warning",
        # The services a run starts (the worker, the events service) share it.
        NODEDROP_SERVICE_TOKEN=SERVICE_TOKEN,
    )
    if CONCURRENCY:
        env["EXECUTION_WORKER_CONCURRENCY"] = CONCURRENCY
    return env


def start_worker() -> subprocess.Popen[bytes]:
    env = worker_env()
    exe = shutil.which("nodedrop", path=str(REPO / ".venv" / "bin")) or "nodedrop"
    # The peers' environments folder may not exist yet (bench/redis_work.py runs
    # nodedrop alone, before any peer is installed).
    logs = REPO / "bench" / "peers" / ".envs"
    logs.mkdir(parents=True, exist_ok=True)
    log = open(logs / "worker.log", "ab")  # noqa: SIM115
    argv = [exe, "worker"]
    profile = os.environ.get("BENCH_NODEDROP_PROFILE", "")
    if profile:
        # py-spy (pip install py-spy) samples the worker; collapsed stacks out.
        spy = shutil.which("py-spy", path=str(REPO / ".venv" / "bin")) or "py-spy"
        argv = [
            spy,
            "record",
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            profile,
            "--nonblocking",
            "--",
            *argv,
        ]
    # Own session: its CPU time is read per process group (see _cpu.py).
    return subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - only a prctl call (see _lifetime)
    )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        # Under py-spy the worker is its child: SIGINT to py-spy stops the
        # recording, which writes the profile and ends the worker.
        proc.send_signal(
            signal.SIGINT if os.environ.get("BENCH_NODEDROP_PROFILE") else signal.SIGTERM
        )
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


async def redis_counters(client: Any) -> tuple[float, float]:
    """The Redis server's CPU time and its reads from client sockets (round
    trips, this harness's polls included): see _common.redis_counters."""
    cpu = await client.info("cpu")
    stats = await client.info("stats")
    return (
        float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        float(stats["total_reads_processed"]),
    )


async def completed(store: RedisStore) -> int:
    pipe = store.client.pipeline(transaction=False)
    for p in range(PARTITIONS):
        pipe.hget(store.config.keys.stats(p), "COMPLETED")
    return sum(int(v or 0) for v in await pipe.execute())


async def batch(store: RedisStore, nodes: int, count: int, limit_s: float) -> dict[str, object]:
    wf = workflow(nodes)
    run = uuid.uuid4().hex[:6]
    specs = [
        JobSpec(
            f"b{run}-{i}",
            "bench",
            "wf",
            wf,
            '{"n": 1}',
            **JOB_SETTINGS,
        )
        for i in range(count)
    ]
    t0 = time.perf_counter()
    for i in range(0, count, 500):
        await store.enqueue_many(specs[i : i + 500], int(time.time() * 1000))
    enqueue_s = time.perf_counter() - t0
    t_spawn = time.time()
    proc = start_worker()
    t_first = t_last = cpu_first = redis_first = reads_first = math.nan
    done = first_done = polls = 0
    deadline = time.monotonic() + limit_s
    try:
        while time.monotonic() < deadline:
            done = await completed(store)
            polls += 1
            now = time.time()
            if done >= 1 and math.isnan(t_first):
                # Completions land in batches: count from what is done here.
                t_first, first_done, cpu_first = now, done, group_cpu_s(proc.pid)
                redis_first, reads_first = await redis_counters(store.client)
            if done >= count:
                t_last = now
                break
            await asyncio.sleep(0.005)
        else:
            t_last = time.time()
        cpu_end = group_cpu_s(proc.pid)
        redis_end, reads_end = await redis_counters(store.client)
    finally:
        stop_worker(proc)
    steps = nodes if nodes > 1 else 1
    span = t_last - t_first
    finished = min(done, count)

    def per_job(start: float, end: float) -> float:
        jobs = (finished - first_done) * steps
        return (end - start) / jobs if jobs > 0 else math.nan

    return {
        "jobs": count * steps,
        "completed": finished * steps,
        "finished": done >= count,
        # The harness's own HGETs (bench/redis_work.py leaves them out).
        "poll_hgets": polls * PARTITIONS,
        "polls": polls,
        "enqueue_s": enqueue_s,
        "span_s": span,
        "wall_s": t_last - t_spawn,
        "rate": (finished - first_done) * steps / span if span > 0 else 0.0,
        "rate_wall": finished * steps / (t_last - t_spawn),
        "executions_per_s": (finished - first_done) / span if span > 0 else 0.0,
        "cpu_us_per_job": per_job(cpu_first, cpu_end) * 1e6,
        "redis_cpu_us_per_job": per_job(redis_first, redis_end) * 1e6,
        "redis_round_trips_per_job": per_job(reads_first, reads_end),
    }


async def latency(store: RedisStore, count: int, limit_s: float) -> dict[str, object]:
    wf = workflow(1)
    proc = start_worker()
    samples: list[float] = []
    deadline = time.monotonic() + limit_s
    try:
        for i in range(5 + count):
            if i >= 5 and time.monotonic() > deadline:
                break
            x = f"lat-{uuid.uuid4().hex[:8]}-{i}"
            # Blocked before the enqueue, so it returns as the worker writes.
            waiter = asyncio.create_task(
                store.client.xread(
                    {store.config.keys.exec_events(x): "1-0"},
                    count=1,
                    block=30_000 if i == 0 else 10_000,
                )
            )
            await asyncio.sleep(0.002)
            t0 = time.perf_counter()
            await store.enqueue(
                JobSpec(
                    x,
                    "bench",
                    "wf",
                    wf,
                    "",
                    **JOB_SETTINGS,
                ),
                int(time.time() * 1000),
            )
            got = await waiter
            t1 = time.perf_counter()
            if not got:
                raise RuntimeError("no EXECUTION_STARTED event in time")
            if i >= 5:  # the first five warm the worker up, like the peers' probes
                samples.append((t1 - t0) * 1000.0)
    finally:
        stop_worker(proc)
    return {
        "jobs": count,
        "completed": len(samples),
        "finished": len(samples) == count,
        "latencies_ms": samples,
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    store = RedisStore.from_url(redis_url(), StoreConfig(keys=Keys(PREFIX, PARTITIONS)))
    try:
        await store.ensure_groups()
        if args.scenario == "throughput":
            return await batch(store, 1, args.jobs, args.timeout)
        if args.scenario == "chain":
            return await batch(store, CHAIN_LENGTH, args.jobs, args.timeout)
        if args.scenario == "latency":
            return await latency(store, args.jobs, args.timeout)
        if args.scenario == "events":
            return await run_events(
                store=store,
                worker_env=worker_env(),
                start_worker=start_worker,
                stop_worker=stop_worker,
                workflow_json=workflow(1),
                events=args.jobs,
                listeners=args.listeners,
                limit_s=args.timeout,
            )
        raise SystemExit(f"unknown scenario {args.scenario}")
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=("throughput", "latency", "chain", "events"))
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--listeners", type=int, default=100)
    args = parser.parse_args()
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up of the driver's own loop

        uvloop.install()
    except ImportError:
        pass
    sys.stdout.write(json.dumps(asyncio.run(run(args))) + "\n")


if __name__ == "__main__":
    main()
