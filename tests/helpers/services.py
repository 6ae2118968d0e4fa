"""Start a service as a real subprocess and wait until it is ready.

``start_service("worker")`` runs ``python -m nodedrop.cli.main worker`` on a
free port and waits for the gRPC health check to answer SERVING; any other
command line can be given with ``argv`` (a test server script, say). Output
goes to a log file that is printed when a wait fails, so a crash at start
shows its cause in the test report.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.helpers.ports import free_port

__all__ = [
    "ADDR_VARS",
    "SERVICE_TOKEN",
    "SERVICE_TOKEN_VAR",
    "ServiceProcess",
    "isolated_env",
    "service_channel",
    "service_metadata",
    "start_service",
]

# Every service a test starts shares this service credential (services
# refuse to start without one); clients of internal methods send it with
# ``service_metadata()``. A test of the refusals passes its own env instead.
SERVICE_TOKEN_VAR = "NODEDROP_SERVICE_TOKEN"
SERVICE_TOKEN = "nd-test-service-token-0123456789abcdef"


def service_metadata() -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {SERVICE_TOKEN}"),)


# The variable that sets each service's listen address.
ADDR_VARS = {
    "api": "NODEDROP_API_ADDR",
    "scheduler": "NODEDROP_SCHEDULER_ADDR",
    "events": "NODEDROP_EVENTS_ADDR",
    "worker": "NODEDROP_WORKER_ADDR",
    "gateway": "NODEDROP_GATEWAY_ADDR",
}


@dataclass
class ServiceProcess:
    process: asyncio.subprocess.Process
    port: int
    log_path: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)

    async def wait(self, timeout_s: float) -> int:
        """The exit status; raises TimeoutError if the process is still running."""
        try:
            return await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            raise TimeoutError(
                f"process still running after {timeout_s} s:\n{self.output()}"
            ) from None

    async def wait_healthy(self, timeout_s: float = 20.0, *, http: bool = False) -> None:
        deadline = time.monotonic() + timeout_s
        last_error = "no attempt"
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError(
                    f"process exited with {self.process.returncode} before serving:\n"
                    f"{self.output()}"
                )
            try:
                if http:
                    await _http_ready(self.target)
                else:
                    await _grpc_ready(self.target)
                return
            except (grpc.aio.AioRpcError, httpx.HTTPError, AssertionError) as exc:
                last_error = repr(exc)
            await asyncio.sleep(0.1)
        raise TimeoutError(f"not healthy after {timeout_s} s ({last_error}):\n{self.output()}")


async def _grpc_ready(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=1.0
        )
        assert response.status == health_pb2.HealthCheckResponse.SERVING, response


async def _http_ready(target: str) -> None:
    async with httpx.AsyncClient(timeout=1.0) as client:
        response = await client.get(f"http://{target}/healthz")
        assert response.status_code == 200, response.status_code


REPO_ROOT = Path(__file__).resolve().parents[2]


def isolated_env(redis_url: str, redis_prefix: str, pg_dsn: str, grace_s: float) -> dict[str, str]:
    """A test's own backing stores, and every service address on a port nobody uses."""
    env = {
        "REDIS_URL": redis_url,
        "NODEDROP_REDIS_PREFIX": redis_prefix,
        "DATABASE_URL": pg_dsn,
        "NODEDROP_SHUTDOWN_GRACE_S": str(grace_s),
        SERVICE_TOKEN_VAR: SERVICE_TOKEN,
    }
    for variable in ADDR_VARS.values():
        env[variable] = f"127.0.0.1:{free_port()}"
    return env


def service_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("LOG_FORMAT", "json")
    env.setdefault(SERVICE_TOKEN_VAR, SERVICE_TOKEN)
    env["PYTHONUNBUFFERED"] = "1"
    # Test scripts (``-m tests.common.stream_app``) import from the repository.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


@contextlib.asynccontextmanager
async def start_service(
    service: str | None = None,
    *,
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    wait: bool = True,
    http: bool = False,
) -> AsyncIterator[ServiceProcess]:
    """Runs a service (or ``argv``) on a free port; kills it on exit if still running.

    For a named service the port goes into its address variable; for ``argv``
    the port is passed in ``NODEDROP_TEST_PORT``.
    """
    port = port or free_port()
    extra = dict(env or {})
    if service is not None:
        extra[ADDR_VARS[service]] = f"127.0.0.1:{port}"
        command = [sys.executable, "-m", "nodedrop.cli.main", service]
    elif argv is not None:
        extra["NODEDROP_TEST_PORT"] = str(port)
        command = [sys.executable, *argv]
    else:
        raise ValueError("give a service name or argv")
    log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below
        prefix=f"nd-{service or 'proc'}-", suffix=".log", delete=False
    )
    try:
        process = await asyncio.create_subprocess_exec(
            *command, env=service_env(extra), stdout=log_file, stderr=subprocess.STDOUT
        )
    finally:
        # The child has its own copy of the descriptor.
        log_file.close()
    proc = ServiceProcess(process, port, Path(log_file.name))
    try:
        if wait:
            await proc.wait_healthy(http=http)
        yield proc
    finally:
        if process.returncode is None:
            process.kill()
            await asyncio.wait_for(process.wait(), 10)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(log_file.name)


class _ServiceCredentialInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds the test service credential to every call that carries none."""

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        if "authorization" not in metadata:
            metadata.add("authorization", f"Bearer {SERVICE_TOKEN}")
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(details), request)


def service_channel(target: str) -> grpc.aio.Channel:
    """A channel to an internal service (scheduler, worker) that calls as a nodedrop service."""
    return grpc.aio.insecure_channel(target, interceptors=[_ServiceCredentialInterceptor()])
