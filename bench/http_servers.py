"""Chooses the gateway's HTTP server: uvicorn (httptools + uvloop) against granian.

    .venv/bin/python bench/http_servers.py [--clients 64] [--seconds 3] [--repeat 3]

Serves one trivial ASGI app (`bench/http_load.py`'s `echo_app`: `GET /ping` answers
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
import os
import socket
import time
from pathlib import Path

from http_load import request_bytes, run_load
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children (Linux /proc)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(_cpu_s(int(c)) for c in children)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(server: str, port: int) -> list[str]:
    target = "bench.http_load:echo_app"
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
        cpu0 = _cpu_s(proc.pid)
        http = await run_load(
            "127.0.0.1", port, lambda _i: request, clients=clients, seconds=seconds, warmup_s=0
        )
        cpu1 = _cpu_s(proc.pid)
        ws_rate, ws_p50, ws_p99 = await _ws_echo(port, clients, seconds)
        cpu2 = _cpu_s(proc.pid)
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
        # Server CPU per request or echoed message: the figure that holds on a
        # shared machine, where rates swing with the other work.
        "http_cpu_us": (cpu1 - cpu0) * 1e6 / max(1, len(http.latencies_s)),
        "ws_cpu_us": (cpu2 - cpu1) * 1e6 / max(1.0, ws_rate * (seconds + 0.5)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--servers",
        default="uvicorn/websockets-sansio,uvicorn/websockets,uvicorn/wsproto,granian",
        help="uvicorn/<--ws implementation> or granian, comma-separated",
    )
    args = parser.parse_args()
    print(
        "| run | server | GET req/s | p50 ms | p99 ms | CPU µs/req "
        "| WS echo msg/s | p50 ms | p99 ms | CPU µs/msg |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in range(1, args.repeat + 1):
        for server in args.servers.split(","):
            r = asyncio.run(_measure(server, args.clients, args.seconds))
            print(
                f"| {run} | {server} | {r['http_rate']:,.0f} | {r['http_p50']:.1f} | "
                f"{r['http_p99']:.1f} | {r['http_cpu_us']:.0f} | {r['ws_rate']:,.0f} | "
                f"{r['ws_p50']:.1f} | {r['ws_p99']:.1f} | {r['ws_cpu_us']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
