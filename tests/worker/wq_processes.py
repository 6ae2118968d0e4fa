"""Real worker and scheduler processes for the tests, and a private redis-server."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import grpc

from nodedrop.queue.v1 import worker_service_pb2 as pb
from nodedrop.queue.v1 import worker_service_pb2_grpc as pb_grpc
from tests.helpers.services import service_channel

ROOT = Path(__file__).resolve().parents[2]
NODEDROP = str(ROOT / ".venv" / "bin" / "nodedrop")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A service subprocess with its log file; stopped by its own pid only."""

    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        env = dict(env)
        env[f"NODEDROP_{command.upper()}_ADDR"] = self.addr
        self.log = log
        self._log_file = log.open("ab")
        self.proc = subprocess.Popen(
            [NODEDROP, command], env=env, stdout=self._log_file, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: signal.Signals) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def alive(self) -> bool:
        return self.proc.poll() is None

    async def wait_exit(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.addr} still running after {timeout_s}s")
            await asyncio.sleep(0.05)
        return int(self.proc.returncode)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        self._log_file.close()

    async def status(self) -> pb.GetWorkerStatusResponse:
        async with service_channel(self.addr) as channel:
            stub = pb_grpc.WorkerServiceStub(channel)
            status: pb.GetWorkerStatusResponse = await stub.GetWorkerStatus(
                pb.GetWorkerStatusRequest(), timeout=2
            )
            return status

    async def drain(self, grace_s: float | None = None) -> pb.DrainWorkerResponse:
        request = pb.DrainWorkerRequest()
        if grace_s is not None:
            request.grace.FromTimedelta(timedelta(seconds=grace_s))
        async with service_channel(self.addr) as channel:
            stub = pb_grpc.WorkerServiceStub(channel)
            drained: pb.DrainWorkerResponse = await stub.DrainWorker(request, timeout=2)
            return drained

    async def wait_consuming(self, timeout_s: float = 15) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"worker exited: {self.log.read_text()[-2000:]}")
            try:
                if (await self.status()).consuming:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"worker not consuming: {self.log.read_text()[-2000:]}")


async def wait_scheduler(addr: str, timeout_s: float = 15) -> None:
    """Until the scheduler answers GetQueueStats."""
    from nodedrop.queue.v1 import scheduler_service_pb2 as spb  # noqa: PLC0415
    from nodedrop.queue.v1 import scheduler_service_pb2_grpc as spb_grpc  # noqa: PLC0415

    deadline = time.monotonic() + timeout_s
    async with service_channel(addr) as channel:
        stub = spb_grpc.SchedulerServiceStub(channel)
        while True:
            try:
                await stub.GetQueueStats(spb.GetQueueStatsRequest(), timeout=1)
                return
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)


class PrivateRedis:
    """A redis-server without persistence on a free port, for tests that kill it."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._folder),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
