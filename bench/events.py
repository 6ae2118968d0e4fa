"""EventService throughput and commit-to-receipt latency.

Three processes, like a deployment: the events service (the real
EventsService on nodedrop.common.server, with a stand-in AuthService that
accepts the bench key), a writer that commits events to Redis in the store's
layout (per-execution stream + partition stream, pipelined as a worker's
group commit does), and this process holding the gRPC subscribers.

    .venv/bin/python bench/events.py                 # every scenario
    .venv/bin/python bench/events.py --quick         # shorter runs

Latency is measured from just before the commit (a nanosecond stamp in the
event's data) to receipt by the subscriber, on one machine clock.
"""

# ruff: noqa: E402  (sys.path is fixed before the imports; see below)
from __future__ import annotations

import os
import sys

# bench/queue.py would shadow the standard library's queue module (redis-py
# imports it) because a script's folder comes first on sys.path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse
import asyncio
import contextlib
import socket
import statistics
import time
import uuid

import grpc
import orjson
from redis.asyncio import Redis

from nodedrop.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from nodedrop.event.v1 import event_service_pb2, event_service_pb2_grpc
from nodedrop.store import EventRecord, EventType, Keys

BENCH_KEY = "bench-key"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), robust to a busy machine."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the events service process ----------------------------------------------------


class _BenchAuth(auth_service_pb2_grpc.AuthServiceServicer):
    async def Authenticate(self, request, context):  # type: ignore[no-untyped-def]
        if request.credential != BENCH_KEY:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad key")
        return auth_service_pb2.AuthenticateResponse(
            tenant_id="bench", scopes=[auth_service_pb2.SCOPE_READ], key_id="bench"
        )


async def _serve(prefix: str, events_port: int, auth_port: int) -> None:
    from nodedrop.common.server import GrpcServer  # noqa: PLC0415
    from nodedrop.events.app import create_service  # noqa: PLC0415
    from nodedrop.events.settings import EventsSettings  # noqa: PLC0415

    auth = grpc.aio.server()
    # Only Authenticate is called; the base class answers UNIMPLEMENTED for the rest.
    auth_service_pb2_grpc.add_AuthServiceServicer_to_server(_BenchAuth(), auth)  # type: ignore[abstract]
    auth.add_insecure_port(f"127.0.0.1:{auth_port}")
    await auth.start()
    settings = EventsSettings.from_env(
        {
            "REDIS_URL": REDIS_URL,
            "NODEDROP_REDIS_PREFIX": prefix,
            "NODEDROP_EVENTS_ADDR": f"127.0.0.1:{events_port}",
            "NODEDROP_API_ADDR": f"127.0.0.1:{auth_port}",
            "NODEDROP_EVENTS_SUBSCRIBER_BUFFER": "100000",
            "LOG_LEVEL": "warning",
        }
    )
    server = GrpcServer(create_service(settings), settings.server)
    await server.start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(1)
    await auth.stop(0)


# -- the writer process ------------------------------------------------------------------


async def _write(prefix: str, execution_id: str, total: int, rate: float, batch: int) -> None:
    keys = Keys(prefix=prefix)
    redis = Redis.from_url(REDIS_URL)
    p = keys.partition(execution_id)
    start = time.perf_counter()
    seq = 1  # sequence 1 is the seed the scenario wrote before subscribing
    while seq < total:
        n = min(batch, total - seq)
        pipe = redis.pipeline(transaction=False)
        stamp = time.time_ns()
        for _ in range(n):
            seq += 1
            last = seq == total
            record = EventRecord(
                execution_id=execution_id,
                sequence=seq,
                type=EventType.EXECUTION_COMPLETED if last else EventType.NODE_COMPLETED,
                time_ms=stamp // 1_000_000,
                workflow_id="wf-bench",
                tenant_id="bench",
                node_id="" if last else "n1",
                data_json=orjson.dumps({"main": [{"i": seq}], "t": stamp}).decode(),
            )
            fields = record.to_fields()
            pipe.xadd(keys.exec_events(execution_id), fields, id=f"{seq}-0")  # type: ignore[arg-type]
            pipe.xadd(keys.events(p), fields, maxlen=100_000, approximate=True)  # type: ignore[arg-type]
        await pipe.execute()
        if rate > 0:
            due = start + (seq - 1) / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
    await redis.aclose()


# -- the subscribers (this process) ------------------------------------------------------


async def _subscribe_all(
    address: str, execution_id: str, subscribers: int, channels: int, started: asyncio.Event
) -> tuple[list[float], float, int]:
    chans = [grpc.aio.insecure_channel(address) for _ in range(channels)]
    latencies: list[float] = []
    first_last = [float("inf"), 0.0]
    counts: list[int] = []
    ready = 0

    async def one(channel: grpc.aio.Channel) -> None:
        nonlocal ready
        stub = event_service_pb2_grpc.EventServiceStub(channel)
        call = stub.StreamExecutionEvents(
            event_service_pb2.StreamExecutionEventsRequest(execution_id=execution_id),
            metadata=(("authorization", f"Bearer {BENCH_KEY}"),),
        )
        await call.wait_for_connection()
        ready += 1
        if ready == subscribers:
            started.set()
        received: list[tuple[int, str]] = []
        async for response in call:
            # Keep the receive loop lean: parse the stamps after the run. Every
            # event of a response was received at the same moment.
            now = time.time_ns()
            received.extend((now, event.data_json) for event in response.events)
        counts.append(len(received))
        for now, data in received:
            latencies.append((now - orjson.loads(data)["t"]) / 1e6)
        first_last[0] = min(first_last[0], received[0][0] / 1e9)
        first_last[1] = max(first_last[1], received[-1][0] / 1e9)

    try:
        await asyncio.gather(*(one(chans[i % channels]) for i in range(subscribers)))
    finally:
        for c in chans:
            await c.close()
    return latencies, first_last[1] - first_last[0], min(counts)


async def _scenario(
    address: str, prefix: str, *, subscribers: int, total: int, rate: float, server_pid: int
) -> dict[str, float]:
    execution_id = f"bench-{uuid.uuid4().hex[:8]}"
    # Seed the first event so the subscriptions pass the tenant check and tail.
    redis = Redis.from_url(REDIS_URL)
    keys = Keys(prefix=prefix)
    seed = EventRecord(
        execution_id,
        1,
        EventType.EXECUTION_QUEUED,
        int(time.time() * 1000),
        "wf-bench",
        "bench",
        data_json=orjson.dumps({"t": time.time_ns()}).decode(),
    )
    await redis.xadd(keys.exec_events(execution_id), seed.to_fields(), id="1-0")  # type: ignore[arg-type]
    started = asyncio.Event()
    subs = asyncio.create_task(
        _subscribe_all(address, execution_id, subscribers, min(subscribers, 8), started)
    )
    await asyncio.wait_for(started.wait(), 60)
    await asyncio.sleep(0.3)
    cpu_before = _cpu_seconds(server_pid)
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "write",
        prefix,
        execution_id,
        str(total),
        str(rate),
    )
    await writer.wait()
    latencies, span, min_count = await asyncio.wait_for(subs, 600)
    server_cpu = _cpu_seconds(server_pid) - cpu_before
    async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        await redis.delete(key)
    await redis.aclose()
    latencies = latencies[subscribers:]  # the seed event measured nothing
    q = statistics.quantiles(latencies, n=100)
    delivered = len(latencies)
    return {
        "subscribers": subscribers,
        "events": total,
        "rate": rate,
        "complete": float(min_count == total),
        "events_per_s_each": (total - 1) / span if span else 0.0,
        "deliveries_per_s": delivered / span if span else 0.0,
        "p50_ms": q[49],
        "p99_ms": q[98],
        "server_cpu_us_per_delivery": server_cpu / delivered * 1e6 if delivered else 0.0,
    }


async def _grpc_floor(messages: int) -> tuple[float, float]:
    """Messages/s and CPU µs per message of a bare grpc.aio stream in one process.

    The floor every figure above sits on: the same machine, no Redis, no hub.
    """

    async def handler(request: bytes, context: object) -> object:
        frame = b"\x0a\x20" + b"x" * 32
        for _ in range(messages):
            yield frame

    server = grpc.aio.server()
    method = grpc.unary_stream_rpc_method_handler(
        handler, request_deserializer=bytes, response_serializer=bytes
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("floor.S", {"M": method}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_stream(
            "/floor.S/M", request_serializer=bytes, response_deserializer=bytes
        )
        cpu0, t0, n = _cpu_seconds(os.getpid()), time.perf_counter(), 0
        async for _ in call(b""):
            n += 1
        wall, cpu = time.perf_counter() - t0, _cpu_seconds(os.getpid()) - cpu0
    await server.stop(0)
    return n / wall, cpu / n * 1e6


async def _main(quick: bool) -> None:
    rate, cpu_us = await _grpc_floor(5_000 if quick else 20_000)
    print(
        f"bare grpc.aio stream on this machine: {rate:,.0f} messages/s, "
        f"{cpu_us:.0f} µs CPU per message (client + server)\n"
    )
    prefix = f"bench-ev-{uuid.uuid4().hex[:6]}"
    events_port, auth_port = _free_port(), _free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "serve",
        prefix,
        str(events_port),
        str(auth_port),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        for _ in range(20):  # log lines may come first
            line = await asyncio.wait_for(server.stdout.readline(), 30)
            if not line or line.strip() == b"ready":
                break
        if line.strip() != b"ready":
            raise SystemExit("the events service did not start")
        address = f"127.0.0.1:{events_port}"
        scale = 0.2 if quick else 1.0
        scenarios = [
            # (subscribers, events, offered events/s; 0 = as fast as the writer can)
            (1, int(20_000 * scale), 0.0),
            (100, int(2_000 * scale), 0.0),
            (1, int(5_000 * scale), 1_000.0),
            (100, int(1_000 * scale), 50.0),
            (100, int(5_000 * scale), 5_000.0),
        ]
        print(
            "| subscribers | events | offered rate | events/s per subscriber | "
            "deliveries/s | p50 | p99 | server CPU per delivery | all delivered |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
        for subscribers, total, rate in scenarios:
            r = await _scenario(
                address,
                prefix,
                subscribers=subscribers,
                total=total,
                rate=rate,
                server_pid=server.pid,
            )
            offered = f"{rate:,.0f}/s" if rate else "max"
            print(
                f"| {subscribers} | {total:,} | {offered} | {r['events_per_s_each']:,.0f} | "
                f"{r['deliveries_per_s']:,.0f} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | "
                f"{r['server_cpu_us_per_delivery']:.0f} µs | {'yes' if r['complete'] else 'NO'} |",
                flush=True,
            )
    finally:
        redis = Redis.from_url(REDIS_URL)
        async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
            await redis.delete(key)
        await redis.aclose()
        if server.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                server.stdin.close()
        try:
            await asyncio.wait_for(server.wait(), 10)
        except TimeoutError:
            server.kill()


def _run(coro: object) -> None:
    try:
        import uvloop  # noqa: PLC0415

        uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(coro)  # type: ignore[arg-type]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        _run(_serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    elif len(sys.argv) > 1 and sys.argv[1] == "write":
        _run(_write(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), 50))
    else:
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--quick", action="store_true")
        _run(_main(parser.parse_args().quick))
