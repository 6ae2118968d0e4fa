"""The system under soak: a private redis-server and PostgreSQL, and every service
as its own process (api, scheduler, events, workers) on free 127.0.0.1 ports.

Everything is private to the run, so the faults may kill, pause, wipe and
restart the backing servers without touching anyone else's. One worker reaches
Redis through a TCP proxy the soak can cut (a network partition).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from tests.api.private_pg import PrivatePostgres, private_postgres
from tests.helpers.ports import free_port, port_open
from tests.helpers.services import ADDR_VARS, SERVICE_TOKEN, service_channel
from tests.helpers.tcp_proxy import TcpProxy

__all__ = ["WORKER_IDS", "Cluster", "Service", "SoakSettings", "service_env"]

REPO_ROOT = Path(__file__).resolve().parents[2]
SKEW_PATH = str(Path(__file__).resolve().parent / "skew")


# The consumer name each worker reads the job streams under.
WORKER_IDS = {f"worker{i}": f"soak-worker{i}" for i in range(8)}


@dataclass(frozen=True)
class SoakSettings:
    lease_s: float = 3.0
    heartbeat_s: float = 1.0
    reclaim_interval_s: float = 1.0
    recovery_interval_s: float = 2.0
    recovery_min_age_s: float = 3.0
    history_claim_idle_s: float = 4.0
    worker_concurrency: int = 10
    workers: int = 3
    grace_s: float = 8.0
    partitions: int = 4


def service_env(
    settings: SoakSettings,
    *,
    redis_url: str,
    database_url: str,
    addrs: dict[str, str],
    prefix: str,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of every process the soak starts (one place to adjust it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NODEDROP_", "OTEL_"))}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).strip(
                os.pathsep
            ),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "NODEDROP_REDIS_PREFIX": prefix,
            "NODEDROP_PARTITIONS": str(settings.partitions),
            "NODEDROP_SERVICE_TOKEN": SERVICE_TOKEN,
            "NODEDROP_API_ADDR": addrs["api"],
            "NODEDROP_SCHEDULER_ADDR": addrs["scheduler"],
            "NODEDROP_EVENTS_ADDR": addrs["events"],
            "NODEDROP_METRICS_ADDR": "off",
            "NODEDROP_LEASE_S": str(settings.lease_s),
            "NODEDROP_HEARTBEAT_S": str(settings.heartbeat_s),
            "NODEDROP_RECLAIM_INTERVAL_S": str(settings.reclaim_interval_s),
            "NODEDROP_MOVER_INTERVAL_S": "0.2",
            "NODEDROP_RECOVERY_INTERVAL_S": str(settings.recovery_interval_s),
            "NODEDROP_RECOVERY_MIN_AGE_S": str(settings.recovery_min_age_s),
            "NODEDROP_HISTORY_CLAIM_IDLE_S": str(settings.history_claim_idle_s),
            "NODEDROP_SHUTDOWN_GRACE_S": str(settings.grace_s),
            "EXECUTION_WORKER_CONCURRENCY": str(settings.worker_concurrency),
            "NODEDROP_PG_COMMAND_TIMEOUT_S": "5",
        }
    )
    env.update(extra or {})
    return env


@dataclass
class Service:
    name: str
    kind: str
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    stopped: bool = False  # SIGSTOPped

    def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nodedrop.cli.main", self.kind],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )
        finally:
            log.close()
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            assert self.proc is not None
            os.kill(self.proc.pid, sig)
            if sig is signal.SIGSTOP:
                self.stopped = True
            elif sig is signal.SIGCONT:
                self.stopped = False

    async def wait_exit(self, timeout_s: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.proc.wait), timeout_s)
        except TimeoutError:
            return None

    async def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            await self.wait_exit(10)
        self.stopped = False


class PrivateRedisServer:
    """redis-server without persistence on a fixed free port; restartable (empty)."""

    def __init__(self, directory: str) -> None:
        self.port = free_port()
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopped = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", self.directory],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port, 0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.stopped = sig is signal.SIGSTOP

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        self.stopped = False


@dataclass
class Cluster:
    settings: SoakSettings
    workdir: Path
    prefix: str = "soak"
    redis: PrivateRedisServer | None = None
    pg: PrivatePostgres | None = None
    proxy: TcpProxy | None = None
    services: dict[str, Service] = field(default_factory=dict)
    addrs: dict[str, str] = field(default_factory=dict)
    api_key: str = ""
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def database_url(self) -> str:
        assert self.pg is not None
        return self.pg.dsn

    @property
    def workers(self) -> list[Service]:
        return [s for n, s in self.services.items() if n.startswith("worker")]

    async def start(self) -> None:
        self.redis = PrivateRedisServer(tempfile.mkdtemp(prefix="nd-soak-redis-"))
        self.redis.start()
        self.pg = self._stack.enter_context(private_postgres())
        self.proxy = TcpProxy(self.redis.port)
        await self.proxy.start()
        await self._provision()
        for name in ("api", "scheduler", "events"):
            self.addrs[name] = f"127.0.0.1:{free_port()}"
        self._add("api", "api")
        self._add("scheduler", "scheduler")
        self._add("events", "events")
        for i in range(self.settings.workers):
            self._add(f"worker{i}", "worker")
        for s in self.services.values():
            s.start()
        await self.wait_ready()

    def worker_env(self, index: int, skew_s: float = 0.0) -> dict[str, str]:
        assert self.redis is not None and self.proxy is not None
        # worker0 reaches Redis through the proxy: the partition fault cuts it.
        url = f"redis://127.0.0.1:{self.proxy.port}/0" if index == 0 else self.redis.url
        extra = {
            "NODEDROP_WORKER_ADDR": f"127.0.0.1:{free_port()}",
            "NODEDROP_WORKER_ID": WORKER_IDS[f"worker{index}"],
        }
        if skew_s:
            # sitecustomize in SKEW_PATH shifts the process' wall clock.
            extra["NODEDROP_SOAK_CLOCK_SKEW_S"] = str(skew_s)
            extra["PYTHONPATH"] = os.pathsep.join([SKEW_PATH, str(REPO_ROOT)])
        return self._env(url, extra)

    def _env(self, redis_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        return service_env(
            self.settings,
            redis_url=redis_url,
            database_url=self.database_url,
            addrs=self.addrs,
            prefix=self.prefix,
            extra=extra,
        )

    def _add(self, name: str, kind: str) -> None:
        assert self.redis is not None
        if kind == "worker":
            env = self.worker_env(int(name.removeprefix("worker")))
        else:
            env = self._env(self.redis.url)
        self.services[name] = Service(name, kind, env, self.workdir / f"{name}.log")

    async def _provision(self) -> None:
        from nodedrop.api import migrations  # noqa: PLC0415
        from nodedrop.api.provisioning import ALL_SCOPES, create_key  # noqa: PLC0415
        from nodedrop.api.repository_pg import PostgresRepository  # noqa: PLC0415

        await migrations.apply(self.database_url)
        repo = await PostgresRepository.connect(self.database_url, min_size=1, max_size=2)
        try:
            key, _ = await create_key(repo, "soak", "soak", ALL_SCOPES)
        finally:
            await repo.close()
        self.api_key = key.secret

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        from tests.helpers.services import _grpc_ready  # noqa: PLC0415

        deadline = time.monotonic() + timeout_s
        for name in ("api", "scheduler", "events"):
            while True:
                try:
                    await _grpc_ready(self.addrs[name])
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{name} not ready; see {self.workdir}") from None
                    await asyncio.sleep(0.2)

    async def wait_serving(self, name: str, timeout_s: float) -> bool:
        """Until the service answers its health check (False after ``timeout_s``)."""
        from tests.helpers.services import _grpc_ready  # noqa: PLC0415

        s = self.services[name]
        addr = s.env[ADDR_VARS[s.kind]]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                await _grpc_ready(addr)
                return True
            except Exception:
                await asyncio.sleep(0.2)
        return False

    async def wait_consuming(self, name: str, timeout_s: float) -> bool:
        """Until the worker reads the job streams (False after ``timeout_s``)."""
        from nodedrop.queue.v1 import worker_service_pb2 as pb  # noqa: PLC0415
        from nodedrop.queue.v1 import worker_service_pb2_grpc as pb_grpc  # noqa: PLC0415

        addr = self.services[name].env[ADDR_VARS["worker"]]
        deadline = time.monotonic() + timeout_s
        async with service_channel(addr) as channel:
            stub = pb_grpc.WorkerServiceStub(channel)
            while time.monotonic() < deadline:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    status = await stub.GetWorkerStatus(pb.GetWorkerStatusRequest(), timeout=2)
                    if status.consuming:
                        return True
                await asyncio.sleep(0.1)
        return False

    async def wait_active_jobs(self, name: str, at_least: int, timeout_s: float) -> int:
        """Until the worker runs ``at_least`` attempts (or ``timeout_s``); the count."""
        from nodedrop.queue.v1 import worker_service_pb2 as pb  # noqa: PLC0415
        from nodedrop.queue.v1 import worker_service_pb2_grpc as pb_grpc  # noqa: PLC0415

        addr = self.services[name].env[ADDR_VARS["worker"]]
        deadline = time.monotonic() + timeout_s
        active = 0
        async with service_channel(addr) as channel:
            stub = pb_grpc.WorkerServiceStub(channel)
            while time.monotonic() < deadline:
                try:
                    status = await stub.GetWorkerStatus(pb.GetWorkerStatusRequest(), timeout=2)
                    active = int(status.active_jobs)
                    if active >= at_least:
                        break
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.05)
        return active

    async def fence_refusals(self, names: list[str]) -> dict[str, int]:
        """Each worker's fence refusals since its start (those that answered)."""
        from nodedrop.queue.v1 import worker_service_pb2 as pb  # noqa: PLC0415
        from nodedrop.queue.v1 import worker_service_pb2_grpc as pb_grpc  # noqa: PLC0415

        out: dict[str, int] = {}
        for name in names:
            addr = self.services[name].env[ADDR_VARS["worker"]]
            async with service_channel(addr) as channel:
                stub = pb_grpc.WorkerServiceStub(channel)
                with contextlib.suppress(grpc.aio.AioRpcError):
                    status = await stub.GetWorkerStatus(pb.GetWorkerStatusRequest(), timeout=2)
                    out[name] = int(status.fence_refusals)
        return out

    async def pending_for(self, consumer: str, execution_ids: list[str]) -> list[str]:
        """Which of the executions have a job entry delivered to ``consumer``
        and not acknowledged (its worker read it and has not finished it)."""
        import redis.asyncio as aioredis  # noqa: PLC0415

        from nodedrop.store import Keys  # noqa: PLC0415
        from nodedrop.store.keys import JOBS_GROUP  # noqa: PLC0415

        assert self.redis is not None
        keys = Keys(self.prefix, self.settings.partitions)
        wanted = set(execution_ids)
        client = aioredis.Redis.from_url(self.redis.url, decode_responses=True)
        found: list[str] = []
        try:
            for p in sorted({keys.partition(x) for x in wanted}):
                stream = keys.jobs(p)
                with contextlib.suppress(aioredis.ResponseError):
                    rows = await client.xpending_range(
                        stream, JOBS_GROUP, min="-", max="+", count=200, consumername=consumer
                    )
                    for row in rows:
                        entry = str(row["message_id"])
                        for _, f in await client.xrange(stream, entry, entry) or ():
                            x = str((f or {}).get("x", ""))
                            if x in wanted:
                                found.append(x)
        finally:
            await client.aclose()
        return found

    async def running(self, execution_ids: list[str]) -> list[str]:
        """Which of the executions are leased (RUNNING) right now."""
        import redis.asyncio as aioredis  # noqa: PLC0415

        from nodedrop.store import Keys  # noqa: PLC0415

        assert self.redis is not None
        keys = Keys(self.prefix, self.settings.partitions)
        client = aioredis.Redis.from_url(self.redis.url, decode_responses=True)
        try:
            states = [await client.hget(keys.exec(x), "st") for x in execution_ids]
        finally:
            await client.aclose()
        return [x for x, st in zip(execution_ids, states, strict=True) if st == "RUNNING"]

    async def history_pending(self, timeout_s: float) -> int:
        """Until the history recorder holds read, unacknowledged entries; how many."""
        import redis.asyncio as aioredis  # noqa: PLC0415

        from nodedrop.store import Keys  # noqa: PLC0415

        assert self.redis is not None
        keys = Keys(self.prefix, self.settings.partitions)
        client = aioredis.Redis.from_url(self.redis.url, decode_responses=True)
        deadline = time.monotonic() + timeout_s
        total = 0
        try:
            while time.monotonic() < deadline:
                total = 0
                for p in range(keys.partitions):
                    with contextlib.suppress(aioredis.ResponseError):
                        total += int((await client.xpending(keys.events(p), "history"))["pending"])
                if total:
                    break
                await asyncio.sleep(0.1)
        finally:
            await client.aclose()
        return total

    async def restart(self, name: str, env: dict[str, str] | None = None) -> None:
        s = self.services[name]
        await s.kill()
        if env is not None:
            s.env = env
        s.start()

    async def close(self) -> None:
        for s in self.services.values():
            with contextlib.suppress(Exception):
                await s.kill()
        if self.proxy is not None:
            await self.proxy.close()
        if self.redis is not None:
            self.redis.kill()
            shutil.rmtree(self.redis.directory, ignore_errors=True)
        self._stack.close()
