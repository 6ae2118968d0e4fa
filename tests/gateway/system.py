"""`nodedrop dev` (real API, scheduler, worker, events, gateway on Redis and
PostgreSQL) as a subprocess on private ports, Redis prefix and database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from redis.asyncio import Redis

from .browser import ARTIFACTS


@dataclass(frozen=True)
class LiveSystem:
    gateway: str
    api_key: str
    database: str


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture
async def live_system(redis: Redis, redis_url: str, empty_pg_dsn: str) -> AsyncIterator[LiveSystem]:
    async with nodedrop_dev(redis, redis_url, empty_pg_dsn) as system:
        yield system


@contextlib.asynccontextmanager
async def nodedrop_dev(
    redis: Redis, redis_url: str, empty_pg_dsn: str, **extra_env: str
) -> AsyncIterator[LiveSystem]:
    """`nodedrop dev` with ``extra_env`` added to its environment."""
    prefix = f"t-e2e-{secrets.token_hex(5)}"
    api, scheduler, events, worker, gateway = _free_ports(5)
    key = f"ndk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": empty_pg_dsn,
        "NODEDROP_REDIS_PREFIX": prefix,
        "NODEDROP_API_KEY": key,
        "NODEDROP_API_ADDR": f"127.0.0.1:{api}",
        "NODEDROP_SCHEDULER_ADDR": f"127.0.0.1:{scheduler}",
        "NODEDROP_EVENTS_ADDR": f"127.0.0.1:{events}",
        "NODEDROP_WORKER_ADDR": f"127.0.0.1:{worker}",
        "NODEDROP_GATEWAY_ADDR": f"127.0.0.1:{gateway}",
        "NODEDROP_METRICS_ADDR": "127.0.0.1:0",
        "LOG_LEVEL": "warning",
        # The console tests' "flaky" workflow calls a server of the test on loopback.
        "NODEDROP_HTTP_ALLOW": "127.0.0.1",
        **extra_env,
    }
    log = ARTIFACTS / "live-view-system.log"
    ARTIFACTS.mkdir(exist_ok=True)
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nodedrop.cli.main", "dev", env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{gateway}"
    try:
        async with httpx.AsyncClient(timeout=1) as client:
            for _ in range(150):  # up to ~30 s on a busy machine
                if process.returncode is not None:
                    raise AssertionError(f"nodedrop dev exited; see {log}")
                try:
                    if (await client.get(f"{url}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"the gateway did not come up; see {log}")
        yield LiveSystem(url, key, empty_pg_dsn)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
        async for name in redis.scan_iter(match=f"{prefix}:*", count=1000):
            await redis.delete(name)
