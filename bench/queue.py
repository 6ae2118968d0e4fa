"""Queue benchmark: executions per second end to end, and idle latency.

    .venv/bin/python bench/queue.py [--count 20000] [--workers 1 2] [--concurrency 2000]
        [--max-active N] [--cluster]

Starts a private redis-server (no persistence) on a free port (with --cluster: a
private 3-master Redis Cluster, the workers on redis+cluster://), real worker
processes (`nodedrop worker`), submits COUNT executions of a 1-node and a
5-node noop workflow through the store's enqueue (pipelined batches, like the
scheduler's EnqueueExecution minus gRPC) and measures from the first submit to
the last EXECUTION_COMPLETED.  Then idle latency: one execution at a time, from
the enqueue call to the EXECUTION_STARTED event read back from its stream,
and the idle load: commands per second Redis (every master) processes per
worker while nothing is submitted.  Redis CPU is summed over the masters.
Every execution is one tenant's: NODEDROP_TENANT_MAX_ACTIVE is the workers'
slots (concurrency x workers, as docs/operations.md advises), unless
--max-active says otherwise, so most of a submitted batch waits parked and is
admitted as the executions before it end.
"""

from __future__ import annotations

import sys

# This file is named queue.py, like the standard library module redis-py imports:
# drop the script's folder from the path before anything imports `queue`.
if sys.path and sys.path[0] == __import__("os").path.dirname(__file__):
    sys.path.pop(0)
# The repository root, for the private cluster the tests start too.
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__file__)))

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import orjson

from nodedrop.common.client import open_channel
from nodedrop.engine import WorkflowSettings as _Settings
from nodedrop.queue.v1 import worker_service_pb2, worker_service_pb2_grpc
from nodedrop.store import JobSpec
from nodedrop.store.config import StoreConfig
from nodedrop.store.keys import Keys
from nodedrop.store.redis_store import RedisStore
from tests.helpers.redis_cluster import private_cluster

# The store keeps no execution-settings defaults: the engine's, once.
_SETTINGS = _Settings()
JOB_SETTINGS = {
    "max_attempts": _SETTINGS.max_attempts,
    "backoff_s": _SETTINGS.backoff_s,
    "timeout_s": _SETTINGS.timeout_s,
}

# The workers' service credential for this run; GetWorkerStatus needs it.
SERVICE_TOKEN = f"bench-{uuid.uuid4().hex}"
SERVICE_METADATA = (("authorization", f"Bearer {SERVICE_TOKEN}"),)

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 16


def workflow(nodes: int) -> str:
    ids = ["t"] + [f"n{i}" for i in range(1, nodes)]
    body = [{"id": "t", "type": "manual_trigger"}] + [{"id": i, "type": "noop"} for i in ids[1:]]
    conns = [{"from": a, "to": b} for a, b in itertools.pairwise(ids)]
    return orjson.dumps({"name": f"noop{nodes}", "nodes": body, "connections": conns}).decode()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(port: int, folder: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            folder,
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            _check_owner(port, proc)
            return proc
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("redis-server did not start")


def _check_owner(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Raises OSError until the server on ``port`` answers, RuntimeError when it is
    not ``proc``: another bench on the machine took the free port first (ours
    then fails to bind), and its server must not be measured as ours."""
    with socket.create_connection(("127.0.0.1", port), 0.1) as sock:
        sock.settimeout(1.0)
        sock.sendall(b"INFO server\r\n")
        reply = b""
        while b"process_id:" not in reply or not reply.endswith(b"\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("connection closed")
            reply += chunk
    pid = int(reply.split(b"process_id:", 1)[1].split(b"\r\n", 1)[0])
    if pid != proc.pid:
        proc.kill()
        raise RuntimeError(f"port {port} is another redis-server's (pid {pid})")


def start_worker(
    url: str, prefix: str, concurrency: int, index: int, max_active: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    addr = f"127.0.0.1:{free_port()}"
    env = dict(os.environ)
    env.update(
        REDIS_URL=url,
        NODEDROP_REDIS_PREFIX=prefix,
        NODEDROP_PARTITIONS=str(PARTITIONS),
        EXECUTION_WORKER_CONCURRENCY=str(concurrency),
        NODEDROP_WORKER_ADDR=addr,
        NODEDROP_WORKER_ID=f"bench-{index}",
        # A free port each: two workers would both want the default :9104.
        NODEDROP_METRICS_ADDR="127.0.0.1:0",
        LOG_LEVEL="warning",
        NODEDROP_SERVICE_TOKEN=SERVICE_TOKEN,
    )
    if max_active is not None:
        env["NODEDROP_TENANT_MAX_ACTIVE"] = str(max_active)
    exe = shutil.which("nodedrop", path=str(ROOT / ".venv" / "bin")) or "nodedrop"
    return subprocess.Popen([exe, "worker"], env=env, stdout=subprocess.DEVNULL), addr


async def wait_consuming(addrs: list[str]) -> None:
    """Until every worker's GetWorkerStatus says it is consuming."""
    for addr in addrs:
        async with open_channel(addr) as channel:
            stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
            for _ in range(300):
                try:
                    status = await stub.GetWorkerStatus(
                        worker_service_pb2.GetWorkerStatusRequest(),
                        timeout=1,
                        metadata=SERVICE_METADATA,
                    )
                    if status.consuming:
                        break
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError(f"worker {addr} did not start consuming")


async def completed(store: RedisStore) -> int:
    """Completed executions from the partition counters (cheap, unlike the full stats)."""
    pipe = store.client.pipeline(transaction=False)
    for p in range(PARTITIONS):
        pipe.hget(store.config.keys.stats(p), "COMPLETED")
    return sum(int(v or 0) for v in await pipe.execute())


async def commandstats(store: RedisStore, count: int) -> None:
    """Redis's own account of the run: calls and CPU per execution, by command."""
    info: dict[str, Any] = await store.client.info("commandstats")
    rows = sorted(
        ((k.removeprefix("cmdstat_"), v) for k, v in info.items()),
        key=lambda kv: -int(kv[1]["usec"]),
    )
    for name, v in rows[:12]:
        print(
            f"    {name:<14} {int(v['calls']) / count:6.2f} calls "
            f"{int(v['usec']) / count:7.1f} us per execution "
            f"({float(v['usec_per_call']):.2f} us/call)"
        )


async def throughput(
    store: RedisStore,
    nodes: int,
    count: int,
    pids: dict[str, list[int]],
    ports: list[int],
    *,
    stats: bool = False,
) -> float:
    wf = workflow(nodes)
    run = uuid.uuid4().hex[:6]
    before = await completed(store)
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
    if stats:
        await store.client.config_resetstat()
    cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
    reads0 = total_stat(ports, b"total_reads_processed")
    t0 = time.perf_counter()
    for i in range(0, count, 500):
        await store.enqueue_many(specs[i : i + 500], int(time.time() * 1000))
    submitted = time.perf_counter() - t0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        done = await completed(store) - before
        if done >= count:
            break
        await asyncio.sleep(0.01)
    else:
        raise RuntimeError(f"only {done} of {count} completed")
    elapsed = time.perf_counter() - t0
    # CPU per execution does not depend on how loaded the shared machine is:
    # 1e6 / (worker us) is what one worker process could do with a core of its own.
    cpu = {k: (sum(cpu_seconds(p) for p in v) - cpu0[k]) / count * 1e6 for k, v in pids.items()}
    # Reads from client sockets, every server: the round trips of the run (the
    # bench's own polls of the completed counters, one per 10 ms, included).
    reads = (total_stat(ports, b"total_reads_processed") - reads0) / count
    print(
        f"  {nodes}-node: {count} in {elapsed:.2f}s = {count / elapsed:,.0f}/s "
        f"(submit alone {count / submitted:,.0f}/s); CPU per execution: "
        + ", ".join(f"{k} {v:.0f} us" for k, v in cpu.items())
        + f"; Redis reads {reads:.2f}"
    )
    if stats:
        await commandstats(store, count)
    return count / elapsed


def total_commands(ports: list[int]) -> int:
    """Commands every server processed so far (INFO stats), summed."""
    return total_stat(ports, b"total_commands_processed")


def total_stat(ports: list[int], name: bytes) -> int:
    """A counter of INFO stats, summed over the servers."""
    total = 0
    for port in ports:
        with socket.create_connection(("127.0.0.1", port), 1.0) as sock:
            sock.sendall(b"INFO stats\r\n")
            reply = b""
            while name + b":" not in reply or not reply.endswith(b"\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise OSError("connection closed")
                reply += chunk
        total += int(reply.split(name + b":", 1)[1].split(b"\r\n", 1)[0])
    return total


async def idle_commands(ports: list[int], workers: int, seconds: float) -> float:
    """Commands/s per worker with nothing to run: the cost of waiting for work."""
    await asyncio.sleep(2.0)  # the last run's commits and acks are over
    before = total_commands(ports)
    await asyncio.sleep(seconds)
    # Each INFO is a command too: ours are taken off.
    spent = total_commands(ports) - before - len(ports)
    return spent / seconds / workers


async def read_started(client: Any, stream: str) -> Any:
    """Blocks until the event after EXECUTION_QUEUED (sequence 1) is written."""
    return await client.xread({stream: "1-0"}, count=1, block=2000)


async def idle_latency(store: RedisStore, samples: int) -> tuple[float, float]:
    wf = workflow(1)
    lat: list[float] = []
    k = store.config.keys
    listen = store.client
    for i in range(samples):
        x = f"lat-{uuid.uuid4().hex[:8]}-{i}"
        ev = k.exec_events(x)
        # The read is in flight before the enqueue: it returns as the worker writes.
        waiter: asyncio.Task[Any] = asyncio.create_task(read_started(listen, ev))
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
            raise RuntimeError("no EXECUTION_STARTED within 2 s")
        lat.append((t1 - t0) * 1000)
        await asyncio.sleep(0.005)
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.99) - 1]


async def run(args: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        if args.cluster:
            cluster = stack.enter_context(private_cluster(masters=3))
            url = cluster.url
            ports = [n.port for n in cluster.nodes]
            redis_pids = [n.process.pid for n in cluster.nodes]
            print(f"Redis Cluster: {len(ports)} masters")
        else:
            folder = tempfile.mkdtemp(prefix="ndbench")
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
            port = free_port()
            redis = start_redis(port, folder)
            stack.callback(redis.wait, 10)
            stack.callback(redis.terminate)
            url = f"redis://127.0.0.1:{port}/0"
            ports = [port]
            redis_pids = [redis.pid]
        await _run_all(args, url, ports, redis_pids)


async def _run_all(
    args: argparse.Namespace, url: str, ports: list[int], redis_pids: list[int]
) -> None:
    for n_workers in args.workers:
        prefix = f"bench{n_workers}"
        cap = args.max_active if args.max_active is not None else args.concurrency * n_workers
        config = StoreConfig(keys=Keys(prefix, PARTITIONS), tenant_max_active=cap)
        store = RedisStore.from_url(url, config)
        await store.ensure_groups()
        started = [start_worker(url, prefix, args.concurrency, i, cap) for i in range(n_workers)]
        procs = [p for p, _ in started]
        try:
            await wait_consuming([a for _, a in started])
            print(
                f"{n_workers} worker process(es), concurrency {args.concurrency}, "
                f"tenant max active {cap}:"
            )
            pids = {"workers": [p.pid for p in procs], "redis": redis_pids}
            await throughput(store, 1, min(2000, args.count), pids, ports)  # warm-up
            for nodes in (1, 5):
                await throughput(store, nodes, args.count, pids, ports, stats=args.commandstats)
            idle = await idle_commands(ports, n_workers, args.idle_s)
            print(f"  idle: {idle:.1f} Redis commands/s per worker ({args.idle_s:.0f} s)")
            if n_workers == 1:
                p50, p99 = await idle_latency(store, args.samples)
                print(
                    f"  idle latency enqueue -> EXECUTION_STARTED: "
                    f"p50 {p50:.3f} ms, p99 {p99:.3f} ms ({args.samples} samples)"
                )
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(30)
            await store.delete_all()
            await store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=20_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--concurrency", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument(
        "--max-active",
        type=int,
        default=None,
        help="NODEDROP_TENANT_MAX_ACTIVE (default: concurrency x workers; 0 = no limit)",
    )
    ap.add_argument(
        "--commandstats",
        action="store_true",
        help="print Redis CPU per command per execution (one Redis only)",
    )
    ap.add_argument(
        "--cluster", action="store_true", help="a private 3-master Redis Cluster instead"
    )
    ap.add_argument("--idle-s", type=float, default=10.0, help="how long the idle load is counted")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    asyncio.run(run(args))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
