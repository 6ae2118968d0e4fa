"""A small HTTP/1.1 keep-alive load generator shared by the HTTP benches.

Each client is one TCP connection sending one request at a time (no
pipelining) and reading the response by its Content-Length, so the generator
costs little CPU next to the server it measures on the same cores.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


def request_bytes(
    method: str, path: str, *, host: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class LoadResult:
    seconds: float
    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    # Every answer, the warm-up's included (what the server committed).
    all_statuses: Counter[int] = field(default_factory=Counter)
    bodies: list[bytes] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.latencies_s) / self.seconds

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def p50_ms(self) -> float:
        return statistics.median(self.latencies_s) * 1000 if self.latencies_s else float("nan")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return status, body


async def run_load(
    host: str,
    port: int,
    make_request: object,
    *,
    clients: int,
    seconds: float,
    warmup_s: float = 1.0,
    keep_bodies: bool = False,
) -> LoadResult:
    """`make_request(i)` returns the bytes of the i-th request of a client
    (a callable, so each request may carry its own idempotency key)."""
    build = make_request  # Callable[[int], bytes]
    result = LoadResult(seconds=seconds)
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop_at = measure_from + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        i = 0
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                writer.write(build(i))  # type: ignore[operator]
                status, body = await _read_response(reader)
                t1 = time.perf_counter()
                i += 1
                result.all_statuses[status] += 1
                if t0 >= measure_from:
                    result.latencies_s.append(t1 - t0)
                    result.statuses[status] += 1
                    if keep_bodies:
                        result.bodies.append(body)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return result


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
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
