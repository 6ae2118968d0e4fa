"""Webhook benchmark: requests/s and latency of an `immediately` webhook, and
the `when_finished` overhead, through the real processes.

    .venv/bin/python bench/webhooks.py [--clients 64] [--seconds 10] [--workers 1]
    .venv/bin/python bench/webhooks.py --url http://127.0.0.1:5678/webhook/in \
        [--wait-url http://127.0.0.1:5678/webhook/wait] [--pid PID ...]

Starts `nodedrop scheduler`, WORKERS `nodedrop worker`, `nodedrop api` and
`nodedrop gateway` (PostgreSQL: a fresh database on DATABASE_URL's server,
dropped at the end; Redis: REDIS_URL under a private key prefix, deleted at
the end), activates a 2-node workflow (webhook_trigger -> set) and runs, in
this process, one after the other:

1. the floor: CLIENTS keep-alive connections on the gateway's `GET /healthz`
   (the same HTTP server, no API call);
2. the webhook: CLIENTS keep-alive connections POSTing 1 KB of JSON to the
   `immediately` webhook, each answer a 202 once the execution is committed
   (its row in PostgreSQL, its job in Redis); at the end the executions rows
   are counted against the 202 answers;
3. `when_finished`: one client calling a `when_finished` copy of the
   workflow in sequence; its p50 beside the p50 of the executions' own run
   time (started -> finished, as the worker recorded it).

With --url the same load runs against a webhook served by something else
(another product, set up by hand with the same 2-node workflow): the floor
is `GET /healthz` on that server, the `immediately` load POSTs to --url,
`when_finished` to --wait-url, and the CPU per call is that of the --pid
processes. Nothing is started, and the executions are not counted here.

The load generator (bench/http_load.py) shares the cores with what it measures.
"""

from __future__ import annotations

import sys

# bench/ holds queue.py, named like a standard library module: the script's
# folder goes last on the path, after the standard library.
if sys.path and sys.path[0] == __import__("os").path.dirname(__file__):
    sys.path.append(sys.path.pop(0))

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import orjson
import redis
from http_load import LoadResult, request_bytes, run_load

ROOT = Path(__file__).resolve().parents[1]
TENANT = "bench"


def workflow(path: str, mode: str) -> dict[str, Any]:
    return {
        "name": f"bench-{path}",
        "nodes": [
            {
                "id": "hook",
                "type": "webhook_trigger",
                "parameters": {"path": path, "response_mode": mode},
            },
            {"id": "tag", "type": "set", "parameters": {"fields": {"seen": "true"}}},
        ],
        "connections": [{"from": "hook", "to": "tag"}],
    }


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _postgres_pids(dsn: str) -> list[int]:
    """PostgreSQL server processes serving the bench database (the API's pool)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_db(dsn: str, db: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{db}"))


async def _setup(database_url: str) -> tuple[str, str, str]:
    from nodedrop.api import migrations  # noqa: PLC0415
    from nodedrop.api.provisioning import ALL_SCOPES, create_key  # noqa: PLC0415
    from nodedrop.api.repository_pg import PostgresRepository  # noqa: PLC0415

    db = f"nd_bench_hooks_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{db}"')
    await admin.close()
    dsn = _with_db(database_url, db)
    await migrations.apply(dsn)
    repo = await PostgresRepository.connect(dsn, min_size=1, max_size=2)
    key, _ = await create_key(repo, TENANT, TENANT, ALL_SCOPES)
    await repo.close()
    return db, dsn, key.secret


async def _wait_up(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {port}") from None
            await asyncio.sleep(0.2)


async def _activate(target: str, key: str, document: dict[str, Any]) -> str:
    from nodedrop.contract import to_proto  # noqa: PLC0415
    from nodedrop.workflow.v1 import workflow_service_pb2 as pb  # noqa: PLC0415
    from nodedrop.workflow.v1 import workflow_service_pb2_grpc as pb_grpc  # noqa: PLC0415

    md = (("authorization", f"Bearer {key}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.WorkflowServiceStub(channel)
        created = await stub.CreateWorkflow(
            pb.CreateWorkflowRequest(workflow=to_proto(document)), metadata=md
        )
        await stub.ActivateWorkflow(
            pb.ActivateWorkflowRequest(workflow_id=created.workflow.id), metadata=md
        )
    return str(created.workflow.id)


def _row(name: str, r: LoadResult, floor: float | None = None) -> str:
    ratio = f"{r.rate / floor:.2f}" if floor else "1.00"
    other = sum(n for s, n in r.statuses.items() if s not in (200, 202))
    return (
        f"| {name} | {r.rate:,.0f} | {ratio} | {r.p50_ms():.1f} | {r.percentile_ms(0.99):.1f} "
        f"| {other} |"
    )


async def _run(
    args: argparse.Namespace,
    port: int,
    api: str,
    key: str,
    dsn: str,
    *,
    pids: dict[str, list[int]],
) -> None:
    host = f"127.0.0.1:{port}"
    fast_id = await _activate(api, key, workflow("in", "immediately"))
    wait_id = await _activate(api, key, workflow("wait", "when_finished"))
    health = request_bytes("GET", "/healthz", host=host)
    floor = await run_load(
        "127.0.0.1", port, lambda _i: health, clients=args.clients, seconds=args.seconds
    )
    payload = orjson.dumps({"order": 7, "note": "x" * 990})
    headers = {"Content-Type": "application/json"}
    post = request_bytes("POST", f"/webhook/{TENANT}/in", host=host, body=payload, headers=headers)
    # For a profiler attached by hand (py-spy record -p <pid>): the phase to sample.
    print(f"webhook load starts; pids {pids}", file=sys.stderr, flush=True)
    pids["postgres"] = await _postgres_pids(dsn)
    cpu_before = {name: sum(_cpu_s(p) for p in ps) for name, ps in pids.items()}
    started = time.monotonic()
    hooks = await run_load(
        "127.0.0.1", port, lambda _i: post, clients=args.clients, seconds=args.seconds
    )
    elapsed = time.monotonic() - started
    cpu_after = {name: sum(_cpu_s(p) for p in ps) for name, ps in pids.items()}
    answered = sum(hooks.all_statuses.values())
    # The worker drains the backlog first: when_finished runs on an idle queue.
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + 120
        for _ in range(240):
            pending = await conn.fetchval(
                "SELECT count(*) FROM executions WHERE finished_at IS NULL"
            )
            if not pending or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    wait_post = request_bytes(
        "POST", f"/webhook/{TENANT}/wait", host=host, body=payload, headers=headers
    )
    finished = await run_load(
        "127.0.0.1", port, lambda _i: wait_post, clients=1, seconds=min(args.seconds, 5.0)
    )
    # Let the history recorder catch up before counting rows.
    await asyncio.sleep(2.0)
    conn = await asyncpg.connect(dsn)
    try:
        stored = int(
            await conn.fetchval("SELECT count(*) FROM executions WHERE workflow_id = $1", fast_id)
        )
        runs = await conn.fetch(
            "SELECT started_at, finished_at FROM executions WHERE workflow_id = $1 "
            "AND finished_at IS NOT NULL AND started_at IS NOT NULL",
            wait_id,
        )
    finally:
        await conn.close()
    own = [(r["finished_at"] - r["started_at"]).total_seconds() * 1000 for r in runs]
    accepted = hooks.all_statuses.get(202, 0)
    print(f"clients {args.clients}, {args.seconds:g} s each, workers {args.workers}")
    print("| load | req/s | ratio to floor | p50 ms | p99 ms | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|")
    print(_row("floor: GET /healthz", floor))
    print(_row("POST webhook (immediately)", hooks, floor.rate))
    print(_row("POST webhook (when_finished, 1 client)", finished, floor.rate))
    committed = stored >= accepted
    print(f"202 answers {accepted}, execution rows {stored} (every 202 committed: {committed})")
    # Where the cores went while the webhook load ran (warm-up included).
    print(
        "CPU µs per webhook call: "
        + ", ".join(
            f"{name} {(cpu_after[name] - cpu_before[name]) * 1e6 / max(1, answered):.0f}"
            for name in cpu_before
        )
        + f" (the whole machine had {os.cpu_count()} cores for {elapsed:.1f} s)"
    )
    if own:
        own_p50 = statistics.median(own)
        print(
            f"when_finished p50 {finished.p50_ms():.1f} ms, the workflow's own run p50 "
            f"{own_p50:.1f} ms, overhead {finished.p50_ms() - own_p50:.1f} ms"
        )


async def _external(args: argparse.Namespace) -> None:
    """The floor, the webhook load and `when_finished` against --url's server."""
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    hostport = f"{host}:{port}"
    health = request_bytes("GET", args.floor_path, host=hostport)
    floor = await run_load(
        host, port, lambda _i: health, clients=args.clients, seconds=args.seconds
    )
    payload = orjson.dumps({"order": 7, "note": "x" * 990})
    headers = {"Content-Type": "application/json"}
    post = request_bytes("POST", url.path, host=hostport, body=payload, headers=headers)
    cpu_before = {pid: _cpu_s(pid) for pid in args.pid}
    hooks = await run_load(host, port, lambda _i: post, clients=args.clients, seconds=args.seconds)
    cpu_after = {pid: _cpu_s(pid) for pid in args.pid}
    answered = sum(hooks.all_statuses.values())
    print(f"clients {args.clients}, {args.seconds:g} s each, target {args.url}")
    print("| load | req/s | ratio to floor | p50 ms | p99 ms | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|")
    print(_row(f"floor: GET {args.floor_path}", floor))
    print(_row("POST webhook (immediately)", hooks, floor.rate))
    if args.wait_url:
        wait = urlsplit(args.wait_url)
        wait_post = request_bytes("POST", wait.path, host=hostport, body=payload, headers=headers)
        finished = await run_load(
            host, port, lambda _i: wait_post, clients=1, seconds=min(args.seconds, 5.0)
        )
        print(_row("POST webhook (when_finished, 1 client)", finished, floor.rate))
    print(f"answers by status: {dict(hooks.all_statuses)}")
    if args.pid:
        print(
            "CPU µs per webhook call: "
            + ", ".join(
                f"pid {pid} {(cpu_after[pid] - cpu_before[pid]) * 1e6 / max(1, answered):.0f}"
                for pid in args.pid
            )
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--url", help="load this webhook URL instead of starting nodedrop")
    parser.add_argument("--wait-url", help="with --url: a when_finished webhook on that server")
    parser.add_argument("--floor-path", default="/healthz", help="with --url: the floor's path")
    parser.add_argument(
        "--pid", type=int, action="append", default=[], help="with --url: a process to measure"
    )
    args = parser.parse_args()
    if args.url:
        asyncio.run(_external(args))
        return 0
    db, dsn, key = asyncio.run(_setup(args.database_url))
    prefix = f"ndbench{uuid.uuid4().hex[:8]}"
    ports = {name: _free_port() for name in ("api", "scheduler", "gateway", "events")}
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "REDIS_URL": args.redis_url,
        "NODEDROP_REDIS_PREFIX": prefix,
        "NODEDROP_API_ADDR": f"127.0.0.1:{ports['api']}",
        "NODEDROP_SCHEDULER_ADDR": f"127.0.0.1:{ports['scheduler']}",
        "NODEDROP_GATEWAY_ADDR": f"127.0.0.1:{ports['gateway']}",
        "NODEDROP_EVENTS_ADDR": f"127.0.0.1:{ports['events']}",
        "NODEDROP_METRICS_ADDR": "off",
        "LOG_LEVEL": "warning",
        "LOG_FORMAT": "json",
        "NODEDROP_SERVICE_TOKEN": f"bench-{uuid.uuid4().hex}",
    }
    names = ["scheduler", "api", "gateway"] + ["worker"] * args.workers
    procs = []
    pids: dict[str, list[int]] = {}
    for name in names:
        proc_env = dict(env)
        if name == "worker":
            proc_env["NODEDROP_WORKER_ADDR"] = f"127.0.0.1:{_free_port()}"
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "nodedrop.cli.main", name],
                env=proc_env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        pids.setdefault(name, []).append(procs[-1].pid)
    try:

        async def go() -> None:
            for name in ("scheduler", "api", "gateway"):
                await _wait_up(ports[name])
            await asyncio.sleep(1.0)
            await _run(args, ports["gateway"], f"127.0.0.1:{ports['api']}", key, dsn, pids=pids)

        asyncio.run(go())
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)

        async def drop() -> None:
            admin = await asyncpg.connect(args.database_url)
            await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            await admin.close()

        asyncio.run(drop())
        r = redis.Redis.from_url(args.redis_url)
        for k in r.scan_iter(match=f"{prefix}:*", count=1000):
            r.delete(k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
