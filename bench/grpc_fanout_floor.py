"""The bare grpc.aio floor under bench/events.py's target row.

One server process fans each tick's message out to every stream, as the
events process does with a commit, but with nothing else: no Redis, no feed,
no hub, no interceptors, a pre-built payload the size of a 50-event response.
Subscribers are spread over client processes exactly as in bench/events.py
(8 channels each) and only stamp receipt (no decoding). What this prints is
what grpc.aio itself costs per message on this machine, and the latency a
100-stream fan-out gets here before any service code runs.

    .venv/bin/python bench/grpc_fanout_floor.py                  # 100 streams, 100 ticks/s, 1 s
    .venv/bin/python bench/grpc_fanout_floor.py --ticks 500 --repeat 3
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
import socket
import statistics
import time
from collections.abc import AsyncIterator

import grpc
import orjson

from nodedrop.common.server import run_loop

# 50 events of about 170 bytes, framed: the size of the target row's responses.
_PAYLOAD = (b"\x0a\xa8\x01" + b"x" * 168) * 50


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Stream:
    """One subscriber's pending tick stamps, taken all at once like a mailbox."""

    def __init__(self) -> None:
        self.stamps: list[int] = []
        self.wake: asyncio.Future[None] | None = None

    def offer(self, stamp: int) -> None:
        self.stamps.append(stamp)
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    async def take(self) -> list[int]:
        while not self.stamps:
            self.wake = asyncio.get_running_loop().create_future()
            await self.wake
        taken, self.stamps = self.stamps, []
        return taken


async def _serve(port: int, streams: int, ticks: int, rate: float) -> None:
    """Waits for `streams` subscribers, then offers `ticks` stamps to each at `rate`/s.

    Like the events service, a stream that is still writing when a tick comes
    sends everything pending in its next message (one stamp per tick in it).
    """
    subscribed: list[_Stream] = []
    all_subscribed = asyncio.Event()
    all_done = asyncio.Event()
    done = 0

    async def handler(request: bytes, context: object) -> AsyncIterator[bytes]:
        nonlocal done
        stream = _Stream()
        subscribed.append(stream)
        if len(subscribed) == streams:
            all_subscribed.set()
        yield b"warm-up"
        sent = 0
        while sent < ticks:
            stamps = await stream.take()
            sent += len(stamps)
            yield (
                len(stamps).to_bytes(4, "little")
                + b"".join(s.to_bytes(8, "little") for s in stamps)
                + _PAYLOAD
            )
        # Resumed only once the last message was written.
        done += 1
        if done == streams:
            all_done.set()

    server = grpc.aio.server()
    method = grpc.unary_stream_rpc_method_handler(
        handler, request_deserializer=bytes, response_serializer=bytes
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("f.S", {"M": method}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await asyncio.wait_for(all_subscribed.wait(), 60)
    await asyncio.sleep(0.3)
    cpu0, start = _cpu_seconds(os.getpid()), time.perf_counter()
    for i in range(ticks):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        stamp = time.time_ns()
        for stream in subscribed:
            stream.offer(stamp)
    await asyncio.wait_for(all_done.wait(), 600)
    cpu = _cpu_seconds(os.getpid()) - cpu0
    print(orjson.dumps({"cpu_s": cpu, "messages": ticks * streams}).decode(), flush=True)
    await server.stop(1)


async def _subscribe(port: int, streams: int) -> None:
    """Holds `streams` streams on up to 8 channels; prints CPU and latencies as JSON."""
    channels = [
        grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        for _ in range(min(streams, 8))
    ]
    latencies: list[float] = []
    messages = 0
    warmed = 0
    all_warm = asyncio.Event()

    async def one(index: int) -> None:
        nonlocal warmed, messages
        call = channels[index % len(channels)].unary_stream(
            "/f.S/M",
            request_serializer=bytes,
            response_deserializer=lambda raw: (time.time_ns(), raw),
        )(b"")
        async for now, raw in call:
            if raw == b"warm-up":
                warmed += 1
                if warmed == streams:
                    all_warm.set()
                continue
            messages += 1
            count = int.from_bytes(raw[:4], "little")
            for i in range(count):
                stamp = int.from_bytes(raw[4 + 8 * i : 12 + 8 * i], "little")
                latencies.append((now - stamp) / 1e6)

    tasks = [asyncio.create_task(one(i)) for i in range(streams)]
    await asyncio.wait_for(all_warm.wait(), 60)
    cpu0 = _cpu_seconds(os.getpid())
    await asyncio.wait_for(asyncio.gather(*tasks), 600)
    cpu = _cpu_seconds(os.getpid()) - cpu0
    for channel in channels:
        await channel.close()
    print(
        orjson.dumps({"cpu_s": cpu, "messages": messages, "latencies": latencies}).decode(),
        flush=True,
    )


async def _run_once(streams: int, clients: int, ticks: int, rate: float) -> str:
    port = _free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "serve",
        str(port),
        str(streams),
        str(ticks),
        str(rate),
        stdout=asyncio.subprocess.PIPE,
    )
    assert server.stdout is not None
    procs = [server]
    try:
        if (await asyncio.wait_for(server.stdout.readline(), 30)).strip() != b"ready":
            raise SystemExit("the floor server did not start")
        clients = min(clients, streams)
        shares = [streams // clients + (i < streams % clients) for i in range(clients)]
        subscribers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "subscribe",
                str(port),
                str(share),
                stdout=asyncio.subprocess.PIPE,
            )
            for share in shares
        ]
        procs += subscribers
        load_before = os.getloadavg()[0]
        results = []
        for proc in subscribers:
            assert proc.stdout is not None
            results.append(orjson.loads(await asyncio.wait_for(proc.stdout.readline(), 600)))
        served = orjson.loads(await asyncio.wait_for(server.stdout.readline(), 60))
        load = (load_before + os.getloadavg()[0]) / 2
    finally:
        for proc in procs:
            if proc.returncode is None:
                await asyncio.wait_for(proc.wait(), 30)
    latencies = sorted(x for r in results for x in r["latencies"])
    received = len(latencies)
    messages = sum(r["messages"] for r in results)
    q = statistics.quantiles(latencies, n=100)
    client_cpu = sum(r["cpu_s"] for r in results)
    span = ticks / rate
    return (
        f"| {streams} | {clients} | {ticks} | {rate:,.0f}/s | {received:,} | "
        f"{received / messages:.2f} | {q[49]:.1f} ms | {q[98]:.1f} ms | "
        f"{served['cpu_s'] / messages * 1e6:.0f} µs ({served['cpu_s'] / span:.2f}) | "
        f"{client_cpu / messages * 1e6:.0f} µs ({client_cpu / span:.2f}) | {load:.1f} | "
        f"{'yes' if received == served['messages'] else 'NO'} |"
    )


async def _main(streams: int, clients: int, ticks: int, rate: float, repeat: int) -> None:
    print(
        "| streams | client processes | ticks | tick rate | ticks received | ticks per message | "
        "p50 | p99 | server CPU per message (cores) | client CPU per message (cores) | "
        "load avg | all received |"
    )
    print("|" + "---:|" * 11 + ":---:|")
    for _ in range(repeat):
        print(await _run_once(streams, clients, ticks, rate), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        run_loop(_serve(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])))
    elif len(sys.argv) > 1 and sys.argv[1] == "subscribe":
        run_loop(_subscribe(int(sys.argv[2]), int(sys.argv[3])))
    else:
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--streams", type=int, default=100)
        parser.add_argument("--clients", type=int, default=2, help="client processes")
        parser.add_argument("--ticks", type=int, default=100, help="messages per stream")
        parser.add_argument("--rate", type=float, default=100.0, help="ticks per second")
        parser.add_argument("--repeat", type=int, default=1)
        args = parser.parse_args()
        if min(args.streams, args.clients, args.ticks, args.repeat) < 1 or args.rate <= 0:
            parser.error("every option must be positive")
        run_loop(_main(args.streams, args.clients, args.ticks, args.rate, args.repeat))
