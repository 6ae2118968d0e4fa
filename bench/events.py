"""EventService throughput and commit-to-receipt latency.

Separate processes, like a deployment: the events service (the real
EventsService on nodedrop.common.server, with a stand-in AuthService that
accepts the bench key; `--servers N` runs N of them), a writer that commits
events to Redis in the store's layout (per-execution stream + partition stream,
pipelined as a worker's group commit does), and `--clients` subscriber
processes holding the gRPC subscribers between them.

    .venv/bin/python bench/events.py                 # every scenario
    .venv/bin/python bench/events.py --quick         # shorter runs
    .venv/bin/python bench/events.py --only 5 --repeat 3
    .venv/bin/python bench/events.py --clients 4 --servers 2 --scenario 100,5000,5000

Latency is measured from just before the commit (a nanosecond stamp in the
event's data) to receipt by the subscriber, on one machine clock: receipt is
when gRPC hands the response's bytes to Python, before its events are decoded
(a second figure is taken after decoding). "All delivered" means every
subscriber received sequences 1..N exactly once and in order, checked per event
after the run so the check costs the subscribers nothing while they receive.
Each row also reports the server's and the clients' CPU and run-queue wait, the
writer's CPU for its writing (it starts and connects before the run), and the
load average, because the reference machine is shared.
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
import shutil
import socket
import statistics
import tempfile
import time
import urllib.parse
import uuid

import grpc
import orjson
from redis.asyncio import Redis

from nodedrop.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from nodedrop.common.server import run_loop
from nodedrop.event.v1 import event_service_pb2
from nodedrop.store import EventRecord, EventType, Keys

BENCH_KEY = "bench-key"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), robust to a busy machine."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _runqueue_wait_seconds(pid: int) -> float:
    """Time the process's threads spent runnable but waiting for a CPU (schedstat).

    On a shared machine this separates "the process was slow" from "the
    process was ready but another one held the cores".
    """
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[1])
    return total / 1e9


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


async def _spawn_self(*argv: str) -> asyncio.subprocess.Process:
    """This script again, in another of its modes (``serve``, ``subscribe``,
    ``write``) over pipes: it prints ``ready``, then waits on stdin (go, or its end)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
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
    """Commits `total` events as pipelines of `batch` (two XADDs each, not atomic).

    Commands are packed and replies parsed by hiredis on a plain socket:
    redis-py's pipeline spends enough Python per event to take CPU from the
    processes being measured (docs/benchmarks/events-history.md). What Redis
    receives is unchanged.
    """
    import hiredis  # noqa: PLC0415

    keys = Keys(prefix=prefix)
    url = urllib.parse.urlparse(REDIS_URL)
    reader, writer = await asyncio.open_connection(url.hostname or "127.0.0.1", url.port or 6379)
    replies = hiredis.Reader()

    async def execute(commands: list[tuple[str | int, ...]]) -> None:
        # hiredis's stub types a command as a 1-tuple; any length is accepted.
        writer.write(b"".join(hiredis.pack_command(c) for c in commands))  # type: ignore[arg-type]
        pending = len(commands)
        while pending:
            chunk = await reader.read(1 << 16)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            replies.feed(chunk)
            while (reply := replies.gets()) is not False:
                if isinstance(reply, hiredis.ReplyError):
                    raise reply
                pending -= 1

    database = url.path.strip("/")
    if database and database != "0":
        await execute([("SELECT", database)])
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    cpu0 = time.process_time()
    p = keys.partition(execution_id)
    exec_stream, partition_stream = keys.exec_events(execution_id), keys.events(p)
    start = time.perf_counter()
    seq = 1  # sequence 1 is the seed the scenario wrote before subscribing
    while seq < total:
        n = min(batch, total - seq)
        commands: list[tuple[str | int, ...]] = []
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
            fields = [x for item in record.to_fields().items() for x in item]
            commands.append(("XADD", exec_stream, f"{seq}-0", *fields))
            commands.append(("XADD", partition_stream, "MAXLEN", "~", 100_000, "*", *fields))
        await execute(commands)
        if rate > 0:
            due = start + (seq - 1) / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
    print(time.process_time() - cpu0, flush=True)
    writer.close()
    await writer.wait_closed()


# -- the subscriber processes -------------------------------------------------------------
#
# Real subscribers are separate clients, so the bench spreads them over
# `--clients` processes: one Python process parsing every delivery of 100
# subscribers at 5,000 events/s (500,000 events/s) is itself the bottleneck and
# its backlog would be measured as delivery latency.

# Result file layout: per event (receipt ns, decoded ns, commit stamp ns) as int64.
_RESULT_FIELDS = 3


async def _subscribe(
    address: str, execution_id: str, subscribers: int, channels: int, result_path: str
) -> None:
    """One client process: `subscribers` streams, stamps written to `result_path`.

    Prints "ready" once every stream is connected and its replay received, then
    reads one line from stdin ("go") before the receive phase, so the CPU it
    reports covers exactly the deliveries.

    While receiving, a subscriber only stamps, decodes and keeps each response:
    a Python loop over every event would make this process, not the service,
    the cost being measured. Once every stream has ended (the CPU figure is
    taken), each subscriber's events are checked to be exactly 1..N in order
    and their commit stamps read.
    """
    from array import array  # noqa: PLC0415

    # A local subchannel pool gives each channel its own TCP connection;
    # channels with equal arguments would otherwise share one in grpc-core.
    chans = [
        grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(channels)
    ]
    request = event_service_pb2.StreamExecutionEventsRequest(execution_id=execution_id)
    parse = event_service_pb2.StreamExecutionEventsResponse.FromString
    metadata = (("authorization", f"Bearer {BENCH_KEY}"),)
    seeded = 0
    all_seeded = asyncio.Event()
    # Per subscriber: (receipt ns, decoded ns, response) for each response.
    results: list[list[tuple[int, int, event_service_pb2.StreamExecutionEventsResponse]]] = [
        [] for _ in range(subscribers)
    ]
    messages = 0

    async def one(index: int) -> None:
        nonlocal seeded, messages
        # Receipt is stamped by the deserializer, i.e. when the gRPC message
        # reaches Python and before its events are decoded; a second stamp
        # after decoding shows what parsing the batch adds.
        call = chans[index % channels].unary_stream(
            "/nodedrop.event.v1.EventService/StreamExecutionEvents",
            request_serializer=event_service_pb2.StreamExecutionEventsRequest.SerializeToString,
            response_deserializer=lambda raw: (time.time_ns(), raw),
        )(request, metadata=metadata)
        received = results[index]
        append = received.append
        async for now, raw in call:
            response = parse(raw)
            decoded = time.time_ns()
            messages += 1
            if not received:
                # The replay of the seed (sequence 1), received before the run.
                seeded += 1
                if seeded == subscribers:
                    all_seeded.set()
            append((now, decoded, response))

    tasks = [asyncio.create_task(one(i)) for i in range(subscribers)]
    try:
        await asyncio.wait_for(all_seeded.wait(), 60)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        cpu0, wait0 = _cpu_seconds(os.getpid()), _runqueue_wait_seconds(os.getpid())
        await asyncio.wait_for(asyncio.gather(*tasks), 600)
        cpu = _cpu_seconds(os.getpid()) - cpu0
        waited = _runqueue_wait_seconds(os.getpid()) - wait0
    finally:
        for task in tasks:
            task.cancel()
        for c in chans:
            await c.close()
    out = array("q")
    # Per subscriber: events received after the seed, or -1 if any sequence was
    # missing, repeated or out of order (then the row says "NO").
    counts = array("q")
    for received in results:
        expected = 1
        for now, decoded, response in received:
            for event in response.events:
                if event.sequence != expected:
                    expected = -(1 << 62)
                expected += 1
                if event.sequence != 1:  # the seed: replayed before the run, measures nothing
                    out.extend((now, decoded, orjson.loads(event.data_json)["t"]))
        counts.append(expected - 2 if expected > 0 else -1)
    header = orjson.dumps(
        {"cpu_s": cpu, "wait_s": waited, "messages": messages, "counts": list(counts)}
    )
    with open(result_path, "wb") as f:  # noqa: ASYNC230  (the run is over; nothing to block)
        f.write(header + b"\n")
        out.tofile(f)


def _read_result(path: str) -> tuple[float, float, int, list[int], list[tuple[int, int, int]]]:
    from array import array  # noqa: PLC0415

    with open(path, "rb") as f:
        header = orjson.loads(f.readline())
        stamps = array("q")
        stamps.frombytes(f.read())
    rows = [tuple(stamps[i : i + _RESULT_FIELDS]) for i in range(0, len(stamps), _RESULT_FIELDS)]
    return (
        float(header["cpu_s"]),
        float(header["wait_s"]),
        int(header["messages"]),
        list(header["counts"]),
        rows,  # type: ignore[return-value]
    )


async def _scenario(
    addresses: list[str],
    prefix: str,
    *,
    subscribers: int,
    total: int,
    rate: float,
    server_pids: list[int],
    clients: int,
    workdir: str,
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
    clients = min(clients, subscribers)
    shares = [subscribers // clients + (i < subscribers % clients) for i in range(clients)]
    paths = [os.path.join(workdir, f"{execution_id}-{i}.bin") for i in range(clients)]
    procs = [
        await _spawn_self(
            "subscribe",
            addresses[i % len(addresses)],
            execution_id,
            str(share),
            str(min(share, 8)),
            path,
        )
        for i, (share, path) in enumerate(zip(shares, paths, strict=True))
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if line.strip() != b"ready":
                raise SystemExit("a subscriber process did not start")
        # Started and connected before the run, so its interpreter start does
        # not compete with the deliveries being measured.
        writer = await _spawn_self(
            "write",
            prefix,
            execution_id,
            str(total),
            str(rate),
        )
        procs.append(writer)
        assert writer.stdout is not None
        if (await asyncio.wait_for(writer.stdout.readline(), 60)).strip() != b"ready":
            raise SystemExit("the writer did not start")
        await asyncio.sleep(0.3)
        load_before = os.getloadavg()[0]
        cpu_before = sum(_cpu_seconds(pid) for pid in server_pids)
        wait_before = sum(_runqueue_wait_seconds(pid) for pid in server_pids)
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        # The writer prints the CPU its writing took, then exits.
        writer_cpu = float(await asyncio.wait_for(writer.stdout.readline(), 600))
        await writer.wait()
        procs.remove(writer)
        server_cpu = server_wait = 0.0
        for proc in procs:
            await asyncio.wait_for(proc.wait(), 600)
            # Sampled as each client finishes; the server is idle by the last one.
            server_cpu = sum(_cpu_seconds(pid) for pid in server_pids) - cpu_before
            server_wait = sum(_runqueue_wait_seconds(pid) for pid in server_pids) - wait_before
        load_after = os.getloadavg()[0]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
            await redis.delete(key)
        await redis.aclose()
    client_cpu = client_wait = 0.0
    messages = 0
    counts: list[int] = []
    receipt: list[float] = []
    decoded: list[float] = []
    first, last = float("inf"), 0.0
    for path in paths:
        cpu, wait, client_messages, client_counts, rows = _read_result(path)
        # The seed arrived in a response of its own before the run began.
        messages += client_messages - len(client_counts)
        os.unlink(path)
        client_cpu += cpu
        client_wait += wait
        counts.extend(client_counts)
        for now, after, stamp in rows:
            receipt.append((now - stamp) / 1e6)
            decoded.append((after - stamp) / 1e6)
        if rows:
            first = min(first, min(r[0] for r in rows) / 1e9)
            last = max(last, max(r[0] for r in rows) / 1e9)
    span = last - first
    q = statistics.quantiles(receipt, n=100)
    qd = statistics.quantiles(decoded, n=100)
    delivered = len(receipt)
    return {
        "subscribers": subscribers,
        "clients": clients,
        "events": total,
        "rate": rate,
        "complete": float(len(counts) == subscribers and min(counts) == total - 1),
        "events_per_s_each": (total - 1) / span if span else 0.0,
        "deliveries_per_s": delivered / span if span else 0.0,
        "p50_ms": q[49],
        "p99_ms": q[98],
        "p99_decoded_ms": qd[98],
        "server_cpu_us_per_delivery": server_cpu / delivered * 1e6 if delivered else 0.0,
        "client_cpu_us_per_event": client_cpu / delivered * 1e6 if delivered else 0.0,
        "client_cores": client_cpu / span if span else 0.0,
        "server_cores": server_cpu / span if span else 0.0,
        "writer_cpu_s": writer_cpu,
        "span_s": span,
        "events_per_response": delivered / messages if messages else 0.0,
        "server_cpu_us_per_response": server_cpu / messages * 1e6 if messages else 0.0,
        "server_wait_s": server_wait,
        "client_wait_s": client_wait,
        "load": (load_before + load_after) / 2,
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


async def _main(
    *,
    quick: bool,
    clients: int,
    only: list[int] | None,
    repeat: int,
    custom: list[tuple[int, int, float]],
    server_count: int,
) -> None:
    rate, cpu_us = await _grpc_floor(5_000 if quick else 20_000)
    print(
        f"bare grpc.aio stream on this machine: {rate:,.0f} messages/s, "
        f"{cpu_us:.0f} µs CPU per message (client + server)\n"
    )
    prefix = f"bench-ev-{uuid.uuid4().hex[:6]}"
    servers: list[asyncio.subprocess.Process] = []
    addresses: list[str] = []
    try:
        for _ in range(server_count):
            events_port, auth_port = _free_port(), _free_port()
            server = await _spawn_self(
                "serve",
                prefix,
                str(events_port),
                str(auth_port),
            )
            servers.append(server)
            assert server.stdout is not None
            for _ in range(20):  # log lines may come first
                line = await asyncio.wait_for(server.stdout.readline(), 30)
                if not line or line.strip() == b"ready":
                    break
            if line.strip() != b"ready":
                raise SystemExit("the events service did not start")
            addresses.append(f"127.0.0.1:{events_port}")
        scale = 0.2 if quick else 1.0
        scenarios = [
            # (subscribers, events, offered events/s; 0 = as fast as the writer can)
            (1, int(20_000 * scale), 0.0),
            (100, int(2_000 * scale), 0.0),
            (1, int(5_000 * scale), 1_000.0),
            (100, int(1_000 * scale), 50.0),
            (100, int(5_000 * scale), 5_000.0),
        ]
        if only:
            scenarios = [scenarios[i - 1] for i in only]
        if custom:
            scenarios = custom
        print(
            "| subscribers | client processes | events | offered rate | "
            "events/s per subscriber | deliveries/s | p50 | p99 | p99 after decode | "
            "events per response | server CPU per response | "
            "server CPU per delivery (cores) | client CPU per event (cores) | "
            "run-queue wait server / clients | writer CPU | load avg | all delivered |"
        )
        print("|" + "---:|" * 16 + ":---:|")
        workdir = tempfile.mkdtemp(prefix="bench-events-")
        try:
            for subscribers, total, rate in scenarios * repeat:
                r = await _scenario(
                    addresses,
                    prefix,
                    subscribers=subscribers,
                    total=total,
                    rate=rate,
                    server_pids=[server.pid for server in servers],
                    clients=clients,
                    workdir=workdir,
                )
                offered = f"{rate:,.0f}/s" if rate else "max"
                print(
                    f"| {subscribers} | {r['clients']:.0f} | {total:,} | {offered} | "
                    f"{r['events_per_s_each']:,.0f} | {r['deliveries_per_s']:,.0f} | "
                    f"{r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | "
                    f"{r['p99_decoded_ms']:.1f} ms | "
                    f"{r['events_per_response']:.1f} | "
                    f"{r['server_cpu_us_per_response']:.0f} µs | "
                    f"{r['server_cpu_us_per_delivery']:.1f} µs ({r['server_cores']:.2f}) | "
                    f"{r['client_cpu_us_per_event']:.1f} µs ({r['client_cores']:.2f}) | "
                    f"{r['server_wait_s']:.2f} / {r['client_wait_s']:.2f} s of "
                    f"{r['span_s']:.2f} s | {r['writer_cpu_s']:.2f} s | "
                    f"{r['load']:.1f} | {'yes' if r['complete'] else 'NO'} |",
                    flush=True,
                )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        redis = Redis.from_url(REDIS_URL)
        async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
            await redis.delete(key)
        await redis.aclose()
        for server in servers:
            if server.stdin is not None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    server.stdin.close()
        for server in servers:
            try:
                await asyncio.wait_for(server.wait(), 10)
            except TimeoutError:
                server.kill()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        run_loop(_serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    elif len(sys.argv) > 1 and sys.argv[1] == "subscribe":
        run_loop(
            _subscribe(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
        )
    elif len(sys.argv) > 1 and sys.argv[1] == "write":
        run_loop(_write(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), 50))
    else:
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--quick", action="store_true", help="5x shorter runs")
        parser.add_argument(
            "--clients",
            type=int,
            default=2,
            help="subscriber processes the subscribers are spread over (default 2: "
            "one per core of the reference machine; more only add run-queue contention)",
        )
        parser.add_argument(
            "--only",
            type=int,
            action="append",
            help="run only scenario N (1-5, the table's rows; repeatable)",
        )
        parser.add_argument("--repeat", type=int, default=1, help="run each scenario N times")
        parser.add_argument(
            "--servers",
            type=int,
            default=1,
            help="events processes (one Redis reader each); client process i uses server i mod N",
        )
        parser.add_argument(
            "--scenario",
            action="append",
            default=[],
            metavar="SUBSCRIBERS,EVENTS,RATE",
            help="run this scenario instead (RATE events/s, 0 = as fast as the writer can)",
        )
        args = parser.parse_args()
        try:
            custom = [
                (int(subs), int(events), float(rate))
                for subs, events, rate in (c.split(",") for c in args.scenario)
            ]
        except ValueError:
            parser.error("--scenario takes SUBSCRIBERS,EVENTS,RATE, e.g. 100,5000,5000")
        if any(subs < 1 or events < 2 or rate < 0 for subs, events, rate in custom):
            parser.error("--scenario needs at least 1 subscriber, 2 events and a rate >= 0")
        if (
            args.clients < 1
            or args.repeat < 1
            or args.servers < 1
            or any(not 1 <= n <= 5 for n in args.only or [])
        ):
            parser.error(
                "--clients, --servers and --repeat must be at least 1, --only between 1 and 5"
            )
        run_loop(
            _main(
                quick=args.quick,
                clients=args.clients,
                only=args.only,
                repeat=args.repeat,
                custom=custom,
                server_count=args.servers,
            )
        )
