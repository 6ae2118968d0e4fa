"""Chooses the gateway's HTTP server: uvicorn (httptools + uvloop) against granian.

    .venv/bin/python bench/http_servers.py [--clients 64] [--seconds 3] [--repeat 3]

Serves one trivial ASGI app (this module's `app`: `GET /ping` answers
"ok", `/echo` is a WebSocket echo) under each server in its own process,
one worker, and loads it from this process: CLIENTS keep-alive connections
sending one request at a time (bench/http_load.py), then CLIENTS WebSocket
connections each sending a 64-byte text message and awaiting its echo.
Servers alternate run by run so a change in the machine's speed hits both.
"""

from __future__ import annotations

import sys

# bench/ holds queue.py, named like a standard library module: the script's
# folder goes last on the path, after the standard library.
if sys.path and sys.path[0] == __import__("os").path.dirname(__file__):
    sys.path.append(sys.path.pop(0))

import argparse
import asyncio
import socket
import time
from pathlib import Path
from typing import Any

from http_load import request_bytes, run_load
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"3")],
            }
        )
        await send({"type": "http.response.body", "body": b"ok\n"})
        return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text")})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(server: str, port: int) -> list[str]:
    target = "bench.http_servers:app"
    if server == "uvicorn":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--ws",
            "websockets",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    return [
        sys.executable,
        "-m",
        "granian",
        target,
        "--interface",
        "asgi",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--http",
        "1",
        "--ws",
    ]


def _wait_port(port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


async def _ws_echo(port: int, clients: int, seconds: float) -> tuple[float, float, float]:
    latencies: list[float] = []
    start = time.perf_counter() + 0.5
    stop = start + seconds
    payload = "x" * 64

    async def one() -> None:
        async with connect(f"ws://127.0.0.1:{port}/echo", compression=None) as ws:
            while (t0 := time.perf_counter()) < stop:
                await ws.send(payload)
                await ws.recv()
                if t0 >= start:
                    latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(one() for _ in range(clients)))
    latencies.sort()
    return (
        len(latencies) / seconds,
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.99)] * 1000,
    )


async def _measure(server: str, clients: int, seconds: float) -> dict[str, float]:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(*_command(server, port), cwd=ROOT)
    try:
        _wait_port(port)
        request = request_bytes("GET", "/ping", host="127.0.0.1")
        http = await run_load(
            "127.0.0.1", port, lambda _i: request, clients=clients, seconds=seconds
        )
        ws_rate, ws_p50, ws_p99 = await _ws_echo(port, clients, seconds)
    finally:
        proc.terminate()
        await proc.wait()
    return {
        "http_rate": http.rate,
        "http_p50": http.p50_ms(),
        "http_p99": http.percentile_ms(0.99),
        "ws_rate": ws_rate,
        "ws_p50": ws_p50,
        "ws_p99": ws_p99,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| run | server | GET /ping req/s | p50 ms | p99 ms | WS echo msg/s | p50 ms | p99 ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for run in range(1, args.repeat + 1):
        for server in ("uvicorn", "granian"):
            r = asyncio.run(_measure(server, args.clients, args.seconds))
            print(
                f"| {run} | {server} | {r['http_rate']:,.0f} | {r['http_p50']:.1f} | "
                f"{r['http_p99']:.1f} | {r['ws_rate']:,.0f} | {r['ws_p50']:.1f} | "
                f"{r['ws_p99']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
