"""HTTP/JSON API overhead: GetExecution through the HTTP API (Connect JSON and
the plain route) against the same call made directly over gRPC, and against a
bare HTTP floor (the same uvicorn + httptools server answering a fixed JSON
body of the same size with no upstream call).

    .venv/bin/python bench/http_api.py [--clients 32] [--seconds 5] [--repeat 3]
        [--upstream api|stub]

Runs `nodedrop api` (a fresh PostgreSQL database on DATABASE_URL's server,
dropped at the end; Redis on REDIS_URL under a private prefix), the HTTP API
under uvicorn (tests/helpers/http_api.py, as the tests serve it) and the floor
server as separate processes. One execution is submitted (no worker runs, so
it stays queued) and every call reads it back. The load generator is one
process: for HTTP a minimal keep-alive HTTP/1.1 client (one connection per
caller, the same for floor and API), for gRPC grpc.aio stubs (8 callers per
channel), on uvloop. The connect-python row serves the same call with
connect-python's own Connect implementation (bench/connect_python_edge.py)
under the same server, the alternative to this API's descriptor-driven proxy.
Each row gives calls/s and p50/p99 latency with CLIENTS callers, then the p50
of one caller alone (the per-call cost without queueing). With `--upstream
stub` a stub ExecutionService answers at once instead of the API, so the rows
compare the edges themselves.
"""

# ruff: noqa: E402  (sys.path is fixed before the imports; see below)
from __future__ import annotations

import os
import sys

# bench/queue.py would shadow the standard library's queue module.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse
import asyncio
import contextlib
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import orjson
import redis

ROOT = Path(__file__).resolve().parents[1]
_SERVICE_TOKEN = "bench-http-api-service-token-0123456789"

_FLOOR_APP = """
import os, uvicorn
BODY = open(os.environ["BENCH_BODY_FILE"], "rb").read()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
uvicorn.run(app, host="127.0.0.1", port=int(os.environ["NODEDROP_TEST_PORT"]),
            http="httptools", loop="uvloop", log_level="warning", lifespan="off")
"""

# --upstream stub: an ExecutionService answering at once, so that the rows
# measure the edges and not the API's PostgreSQL read.
_STUB_API = """
import os, uuid, grpc, uvloop
from nodedrop.execution.v1 import execution_pb2 as e, execution_service_pb2 as ex
EXECUTION_ID = str(uuid.uuid4())
REPLY = ex.GetExecutionResponse(execution=e.Execution(
    id=EXECUTION_ID, workflow_id=str(uuid.uuid4()), workflow_version=1,
    status=e.EXECUTION_STATUS_COMPLETED, mode=e.EXECUTION_MODE_QUEUE,
    trigger_kind=e.TRIGGER_KIND_MANUAL, trigger_data_json='[{"order": 1, "amount": 250}]'))
REPLY.execution.create_time.GetCurrentTime()
async def execute(request, context):
    return ex.ExecuteWorkflowResponse(execution_id=EXECUTION_ID, status=e.EXECUTION_STATUS_QUEUED)
async def get(request, context):
    return REPLY
async def main():
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "nodedrop.execution.v1.ExecutionService", {
            "ExecuteWorkflow": grpc.unary_unary_rpc_method_handler(
                execute, ex.ExecuteWorkflowRequest.FromString,
                ex.ExecuteWorkflowResponse.SerializeToString),
            "GetExecution": grpc.unary_unary_rpc_method_handler(
                get, ex.GetExecutionRequest.FromString,
                ex.GetExecutionResponse.SerializeToString)})])
    server.add_insecure_port(os.environ["NODEDROP_API_ADDR"])
    await server.start()
    await server.wait_for_termination()
uvloop.run(main())
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_db(dsn: str, db: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{db}"))


class _Http:
    """One keep-alive HTTP/1.1 connection; enough of the protocol for these replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Http:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def call(self, request: bytes) -> int:
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked = 0, False
        for line in head.split(b"\r\n"):
            lowered = line.lower()
            if lowered.startswith(b"content-length:"):
                length = int(line[15:])
            elif lowered.startswith(b"transfer-encoding:") and b"chunked" in lowered:
                chunked = True
        if not chunked:
            await self._reader.readexactly(length)
            return status
        while size := int((await self._reader.readuntil(b"\r\n"))[:-2], 16):
            await self._reader.readexactly(size + 2)
        await self._reader.readuntil(b"\r\n")
        return status

    def close(self) -> None:
        self._writer.close()


def _request(method: str, path: str, key: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {key}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _measure(
    callers: list[Callable[[], Awaitable[None]]], seconds: float
) -> tuple[float, float, float]:
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def loop(call: Callable[[], Awaitable[None]]) -> None:
        while (now := time.perf_counter()) < stop_at:
            await call()
            latencies.append(time.perf_counter() - now)

    start = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in callers))
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return len(latencies) / elapsed, statistics.median(ordered) * 1e3, p99 * 1e3


@contextlib.contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def _wait_http(port: int, path: str, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            conn = await _Http.open(port)
            try:
                if await conn.call(_request("GET", path, "-")) < 500:
                    return
            finally:
                conn.close()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"port {port} did not answer")
        await asyncio.sleep(0.2)


async def _run(args: argparse.Namespace, tmp: Path) -> None:
    from nodedrop.api import migrations  # noqa: PLC0415
    from nodedrop.api.provisioning import ALL_SCOPES, create_key  # noqa: PLC0415
    from nodedrop.api.repository_pg import PostgresRepository  # noqa: PLC0415
    from nodedrop.execution.v1 import execution_service_pb2 as ex  # noqa: PLC0415
    from nodedrop.execution.v1 import execution_service_pb2_grpc as ex_grpc  # noqa: PLC0415
    from nodedrop.gateway.example import example_workflow  # noqa: PLC0415
    from nodedrop.gateway.httpapi.codec import message_to_json  # noqa: PLC0415

    db = f"nd_bench_http_{uuid.uuid4().hex[:8]}"
    prefix = f"ndbh{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f'CREATE DATABASE "{db}"')
    await admin.close()
    dsn = _with_db(args.database_url, db)
    try:
        await migrations.apply(dsn)
        repo = await PostgresRepository.connect(dsn, min_size=1, max_size=1)
        key = (await create_key(repo, "bench", "bench", ALL_SCOPES))[0].secret
        await repo.close()
        api_port, events_port, http_port, floor_port, cp_port = (_free_port() for _ in range(5))
        env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "REDIS_URL": args.redis_url,
            "NODEDROP_REDIS_PREFIX": prefix,
            "NODEDROP_SERVICE_TOKEN": _SERVICE_TOKEN,
            "NODEDROP_API_ADDR": f"127.0.0.1:{api_port}",
            "NODEDROP_EVENTS_ADDR": f"127.0.0.1:{events_port}",
            "NODEDROP_METRICS_ADDR": "off",
            "LOG_LEVEL": "warning",
            "PYTHONPATH": str(ROOT),
        }
        py = sys.executable
        with (
            _process(
                [py, "-m", "nodedrop.cli.main", "api"]
                if args.upstream == "api"
                else [py, "-c", _STUB_API],
                env,
                tmp / "api.log",
            ),
            _process(
                [py, "-m", "tests.helpers.http_api"],
                {**env, "NODEDROP_TEST_PORT": str(http_port)},
                tmp / "http.log",
            ),
            _process(
                [py, str(ROOT / "bench" / "connect_python_edge.py")],
                {**env, "NODEDROP_TEST_PORT": str(cp_port)},
                tmp / "connect-python.log",
            ),
        ):
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{api_port}")
            stub = ex_grpc.ExecutionServiceStub(channel)
            md = (("authorization", f"Bearer {key}"),)
            for _ in range(300):
                try:
                    submitted = await stub.ExecuteWorkflow(
                        ex.ExecuteWorkflowRequest(workflow=example_workflow()), metadata=md
                    )
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.1)
            else:
                raise TimeoutError((tmp / "api.log").read_text())
            get = ex.GetExecutionRequest(execution_id=submitted.execution_id)
            reply = await stub.GetExecution(get, metadata=md)
            body = message_to_json(reply)
            (tmp / "body.json").write_bytes(body)
            with _process(
                [py, "-c", _FLOOR_APP],
                {
                    **env,
                    "NODEDROP_TEST_PORT": str(floor_port),
                    "BENCH_BODY_FILE": str(tmp / "body.json"),
                },
                tmp / "floor.log",
            ):
                await _wait_http(http_port, "/api/openapi.json")
                await _wait_http(floor_port, "/")
                await _wait_http(cp_port, "/")
                connect_request = _request(
                    "POST",
                    "/nodedrop.execution.v1.ExecutionService/GetExecution",
                    key,
                    orjson.dumps({"executionId": submitted.execution_id}),
                )
                plain_request = _request("GET", f"/api/executions/{submitted.execution_id}", key)
                floor_request = _request("GET", "/", key)
                print(
                    f"upstream {args.upstream}; response body: {len(body)} bytes; "
                    f"{args.clients} callers, {args.seconds} s"
                )
                print(
                    "row | calls/s | p50 ms | p99 ms | p50 ms, 1 caller | "
                    "ratio to floor | ratio to gRPC"
                )
                for run in range(args.repeat):
                    floor_rate = grpc_rate = 0.0
                    for name, port, request in (
                        ("HTTP floor", floor_port, floor_request),
                        ("gRPC direct", 0, b""),
                        ("Connect JSON", http_port, connect_request),
                        ("plain route", http_port, plain_request),
                        ("connect-python", cp_port, connect_request),
                    ):
                        rows = []
                        for callers in (args.clients, 1):
                            if port:
                                conns = [await _Http.open(port) for _ in range(callers)]

                                def make(
                                    c: _Http, r: bytes = request
                                ) -> Callable[[], Awaitable[None]]:
                                    async def call() -> None:
                                        assert await c.call(r) == 200

                                    return call

                                fns = [make(c) for c in conns]
                            else:
                                channels = [
                                    grpc.aio.insecure_channel(f"127.0.0.1:{api_port}")
                                    for _ in range(max(1, callers // 8))
                                ]
                                stubs = [ex_grpc.ExecutionServiceStub(c) for c in channels]

                                def make_grpc(
                                    s: ex_grpc.ExecutionServiceStub,
                                ) -> Callable[[], Awaitable[None]]:
                                    async def call() -> None:
                                        await s.GetExecution(get, metadata=md)

                                    return call

                                fns = [make_grpc(stubs[i % len(stubs)]) for i in range(callers)]
                            await _measure(fns, 0.5)  # warm-up
                            rows.append(await _measure(fns, args.seconds))
                            if port:
                                for c in conns:
                                    c.close()
                            else:
                                for ch in channels:
                                    await ch.close()
                        rate, p50, p99 = rows[0]
                        floor_rate = floor_rate or rate
                        if not port:
                            grpc_rate = rate
                        vs_grpc = f"{rate / grpc_rate:.2f}" if grpc_rate else "-"
                        print(
                            f"run {run + 1} {name} | {rate:,.0f} | {p50:.2f} | {p99:.2f} | "
                            f"{rows[1][1]:.3f} | {rate / floor_rate:.2f} | {vs_grpc}"
                        )
            await channel.close()
    finally:
        admin = await asyncpg.connect(args.database_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()
        client = redis.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--upstream",
        choices=("api", "stub"),
        default="api",
        help="the real API (GetExecution reads PostgreSQL) or a stub answering at once",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    from nodedrop.common.server import run_loop  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="nd-bench-http-") as tmp:
        run_loop(_run(args, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
