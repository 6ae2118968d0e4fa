"""API benchmark: ExecuteWorkflow calls per second in queue mode, with p50/p99.

    .venv/bin/python bench/api.py [--clients 64] [--seconds 10] [--procs 1]
        [--api-processes 1] [--inline] [--health] [--rate CALLS_PER_S]

Runs the real path in separate processes: `nodedrop scheduler` and `nodedrop
api` (PostgreSQL: a fresh database on DATABASE_URL's server, dropped at the
end; Redis: REDIS_URL under a private key prefix, deleted at the end), then
CLIENTS concurrent callers spread over PROCS load processes submit
ExecuteWorkflow (a stored workflow by id, or --inline definitions) for
SECONDS after a warm-up, 8 callers per HTTP/2 connection. The callers send
the request serialized once and do not decode the response, as a load tool
does: the generator shares the machine's cores with what it measures. Every
acknowledged call has its row committed in
PostgreSQL and its job enqueued (straight into Redis, or through the
scheduler with --enqueue scheduler). No workers run: the
jobs wait in Redis, so this measures the API's submission path only.
"""

from __future__ import annotations

import sys

# bench/ holds queue.py, named like the standard library module redis-py and
# multiprocessing import: drop the script's folder from the path first.
if sys.path and sys.path[0] == __import__("os").path.dirname(__file__):
    sys.path.pop(0)

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import orjson
import redis

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = {
    "name": "bench",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "tag", "type": "set", "parameters": {"fields": {"seen": "true"}}},
    ],
    "connections": [{"from": "start", "to": "tag"}],
}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _with_children(pid: int) -> list[int]:
    """``pid`` and its child processes (an API with NODEDROP_API_PROCESSES > 1)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(int(c) for c in children)]


def _cpu_of(pids: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(_cpu_seconds(p) for p in ps) for name, ps in pids.items()}


async def _backend_pids(database_url: str, db: str) -> list[int]:
    """PostgreSQL server processes serving the bench database (the API's pool)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", db
        )
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows]


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_db(dsn: str, db: str) -> str:
    from urllib.parse import urlsplit, urlunsplit  # noqa: PLC0415

    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{db}"))


async def _wait_serving(target: str, timeout_s: float = 30.0) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            async with grpc.aio.insecure_channel(target) as ch:
                r = await health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(), timeout=1.0
                )
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.aio.AioRpcError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{target} did not come up")
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class LoadPlan:
    target: str
    key: str
    workflow_id: str
    inline: bool
    clients: int
    # Wall-clock (time.time()) bounds of the measured window, shared by every
    # load process and by the CPU sampling of the main process.
    measure_from: float
    stop_at: float
    # Call the server's gRPC health Check instead: the bare-call ceiling of
    # the same server process on the same machine, for comparison.
    health: bool = False
    clients_per_connection: int = 8
    # Calls per second this process starts (0: each caller calls back to
    # back). At a fixed rate, two versions of the API get the same arrivals
    # and so the same batches: their CPU per call compares like for like.
    rate: float = 0.0


def _redis_pid(url: str) -> int:
    return int(redis.Redis.from_url(url).info("server")["process_id"])


def _load(plan: LoadPlan, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """One load process: `clients` callers over a few channels; sends its latencies."""
    try:
        import uvloop  # noqa: PLC0415

        uvloop.install()
    except ImportError:
        pass
    from nodedrop.contract import to_proto  # noqa: PLC0415
    from nodedrop.execution.v1 import execution_pb2  # noqa: PLC0415
    from nodedrop.execution.v1 import execution_service_pb2 as pb  # noqa: PLC0415

    request = pb.ExecuteWorkflowRequest(
        mode=execution_pb2.EXECUTION_MODE_QUEUE, trigger_data_json='{"n": 1}'
    )
    if plan.inline:
        request.workflow.CopyFrom(to_proto(WORKFLOW))
    else:
        request.workflow_id = plan.workflow_id
    payload = request.SerializeToString()
    metadata = (("authorization", f"Bearer {plan.key}"),)
    clients, target = plan.clients, plan.target
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415

    health_request = health_pb2.HealthCheckRequest()

    async def main() -> tuple[list[float], int]:
        # A connection each: channels to one target otherwise share one
        # (gRPC's global subchannel pool), and with several API processes
        # on the port the kernel spreads connections, not calls.
        channels = [
            grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(max(1, clients // plan.clients_per_connection))
        ]
        # Requests sent as bytes serialized once and responses left
        # undecoded, as a load tool does: the generator shares the cores
        # with what it measures. A call that returns is acknowledged.
        submits = [
            c.unary_unary("/nodedrop.execution.v1.ExecutionService/ExecuteWorkflow")
            for c in channels
        ]
        checks = [health_pb2_grpc.HealthStub(c) for c in channels]
        latencies: list[float] = []
        errors = 0
        # Callers run from start-up (warm-up) until stop_at; only calls that
        # start inside the shared window are counted.
        offset = time.perf_counter() - time.time()
        measure_from = plan.measure_from + offset
        stop_at = plan.stop_at + offset

        # Open loop: caller i starts its calls at its own slots of the rate.
        interval = clients / plan.rate if plan.rate > 0 else 0.0

        async def caller(i: int) -> None:
            nonlocal errors
            submit = submits[i % len(submits)]
            check = checks[i % len(checks)]
            slot = time.perf_counter() + interval * i / clients
            while True:
                if interval:
                    await asyncio.sleep(max(0.0, slot - time.perf_counter()))
                    slot += interval
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                try:
                    if plan.health:
                        await check.Check(health_request, timeout=10.0)
                    else:
                        await submit(payload, metadata=metadata, timeout=10.0)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    latencies.append(t1 - t0)

        await asyncio.gather(*(caller(i) for i in range(clients)))
        for c in channels:
            await c.close()
        return latencies, errors

    out.put(asyncio.run(main()))


async def _setup(args: argparse.Namespace) -> dict[str, str]:
    from nodedrop.api import migrations  # noqa: PLC0415
    from nodedrop.api.provisioning import ALL_SCOPES, create_key  # noqa: PLC0415
    from nodedrop.api.repository_pg import PostgresRepository  # noqa: PLC0415

    db = f"nd_bench_api_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f'CREATE DATABASE "{db}"')
    await admin.close()
    dsn = _with_db(args.database_url, db)
    await migrations.apply(dsn)
    repo = await PostgresRepository.connect(dsn, min_size=1, max_size=2)
    key, _ = await create_key(repo, "bench", "bench", ALL_SCOPES)
    await repo.close()
    return {"db": db, "dsn": dsn, "key": key.secret}


async def _create_workflow(target: str, key: str) -> str:
    from nodedrop.contract import to_proto  # noqa: PLC0415
    from nodedrop.workflow.v1 import workflow_service_pb2 as wpb  # noqa: PLC0415
    from nodedrop.workflow.v1 import workflow_service_pb2_grpc as wgrpc  # noqa: PLC0415

    async with grpc.aio.insecure_channel(target) as ch:
        r = await wgrpc.WorkflowServiceStub(ch).CreateWorkflow(
            wpb.CreateWorkflowRequest(workflow=to_proto(WORKFLOW)),
            metadata=(("authorization", f"Bearer {key}"),),
        )
    return str(r.workflow.id)


async def _teardown(args: argparse.Namespace, db: str, prefix: str) -> tuple[int, float | None]:
    admin = await asyncpg.connect(args.database_url)
    stored = 0
    hot_share: float | None = None
    try:
        conn = await asyncpg.connect(_with_db(args.database_url, db))
        stored = int(await conn.fetchval("SELECT count(*) FROM executions"))
        # The recorder updates each row once per event batch: an update that is
        # not HOT also writes every index of the table.
        row = await conn.fetchrow(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'executions'"
        )
        if row is not None and row["n_tup_upd"]:
            hot_share = round(row["n_tup_hot_upd"] / row["n_tup_upd"], 3)
        await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()
    r = redis.Redis.from_url(args.redis_url)
    batch = []
    for k in r.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(k)
        if len(batch) >= 1000:
            r.delete(*batch)
            batch.clear()
    if batch:
        r.delete(*batch)
    return stored, hot_share


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--procs", type=int, default=1, help="load generator processes")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="calls per second in all (open loop; default: every caller back to back)",
    )
    parser.add_argument("--inline", action="store_true", help="inline definitions, not by id")
    parser.add_argument(
        "--api-processes",
        type=int,
        default=1,
        help="NODEDROP_API_PROCESSES of the API under test",
    )
    parser.add_argument(
        "--clients-per-connection",
        type=int,
        default=8,
        help="callers sharing one HTTP/2 connection",
    )
    parser.add_argument(
        "--enqueue",
        choices=("store", "scheduler"),
        default="store",
        help="NODEDROP_API_ENQUEUE of the API under test",
    )
    parser.add_argument(
        "--health",
        action="store_true",
        help="call the API's gRPC health Check instead (bare-call ceiling, for comparison)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()

    setup = asyncio.run(_setup(args))
    prefix = f"ndbench{uuid.uuid4().hex[:8]}"
    api_port, sched_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": setup["dsn"],
        "REDIS_URL": args.redis_url,
        "NODEDROP_REDIS_PREFIX": prefix,
        "NODEDROP_API_ADDR": f"127.0.0.1:{api_port}",
        "NODEDROP_SCHEDULER_ADDR": f"127.0.0.1:{sched_port}",
        "LOG_LEVEL": "warning",
        "LOG_FORMAT": "json",
        "NODEDROP_RESULT_CACHE_TTL_S": "0",
        "NODEDROP_API_ENQUEUE": args.enqueue,
        "NODEDROP_API_PROCESSES": str(args.api_processes),
        # The API and the scheduler share a credential for this run.
        "NODEDROP_SERVICE_TOKEN": f"bench-{uuid.uuid4().hex}",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "nodedrop.cli.main", name],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in ("scheduler", "api")
    ]
    stored, hot_share = 0, None
    try:
        target = f"127.0.0.1:{api_port}"
        asyncio.run(_wait_serving(f"127.0.0.1:{sched_port}"))
        asyncio.run(_wait_serving(target))
        workflow_id = asyncio.run(_create_workflow(target, setup["key"]))
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        n, extra = divmod(args.clients, args.procs)
        # Spawned load processes need a moment to import before the warm-up.
        measure_from = time.time() + 3.0 + args.warmup
        stop_at = measure_from + args.seconds
        loaders = [
            ctx.Process(
                target=_load,
                args=(
                    LoadPlan(
                        target,
                        setup["key"],
                        workflow_id,
                        args.inline,
                        n + (i < extra),
                        measure_from,
                        stop_at,
                        args.health,
                        args.clients_per_connection,
                        args.rate * (n + (i < extra)) / args.clients,
                    ),
                    out,
                ),
            )
            for i in range(args.procs)
        ]
        for loader in loaders:
            loader.start()
        time.sleep(max(0.0, measure_from - time.time()))
        pids = {
            "api": _with_children(procs[1].pid),
            "scheduler": [procs[0].pid],
            "postgres": asyncio.run(_backend_pids(args.database_url, setup["db"])),
            "redis": [_redis_pid(args.redis_url)],
            # The load generators share the two cores: their CPU is part of
            # what bounds the rate.
            "load": [loader.pid for loader in loaders if loader.pid is not None],
        }
        cpu_before = _cpu_of(pids)
        time.sleep(max(0.0, stop_at - time.time()))
        cpu_after = _cpu_of(pids)
        results = [out.get(timeout=args.warmup + args.seconds + 120) for _ in loaders]
        for loader in loaders:
            loader.join()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        stored, hot_share = asyncio.run(_teardown(args, setup["db"], prefix))
    latencies = sorted(x for lat, _ in results for x in lat)
    errors = sum(e for _, e in results)
    if not latencies:
        print("no successful calls", file=sys.stderr)
        return 1
    rate = len(latencies) / args.seconds
    # CPU microseconds per acknowledged call in the measured window: the
    # figure of merit on a shared machine, where wall-clock rates swing with
    # the other work. Redis is shared with that work too, so it is an upper bound.
    cpu_us = {
        name: round((cpu_after[name] - cpu_before[name]) * 1e6 / len(latencies))
        for name in cpu_before
    }
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    load = os.getloadavg()
    print(
        orjson.dumps(
            {
                "enqueue": args.enqueue,
                "clients": args.clients,
                "rate": args.rate or None,
                "procs": args.procs,
                "api_processes": args.api_processes,
                "connections": args.procs
                * max(1, args.clients // args.procs // args.clients_per_connection),
                "call": "health.Check"
                if args.health
                else "ExecuteWorkflow(" + ("inline" if args.inline else "workflow_id") + ")",
                "seconds": args.seconds,
                "calls_per_s": round(rate),
                "p50_ms": round(p50, 2),
                "p99_ms": round(p99, 2),
                "errors": errors,
                "cpu_us_per_call": cpu_us,
                "executions_stored": stored,
                "executions_hot_update_share": hot_share,
                "loadavg_1m": round(load[0], 2),
                "cpus": os.cpu_count(),
            }
        ).decode()
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
