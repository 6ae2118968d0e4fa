"""Mutual TLS between real processes: with NODEDROP_TLS_* set, a client
without a certificate from the deployment's CA does not get past the
handshake; a certificate issued to a service name opens the internal
methods without a token; the API reaches the scheduler over mutual TLS and
the CLI reaches the API with its own certificate."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nodedrop.api.model import Scope
from nodedrop.api.provisioning import create_key
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.common.client import open_channel
from nodedrop.common.tls import TlsSettings
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.execution.v1 import execution_service_pb2_grpc as ex_grpc
from nodedrop.queue.v1 import scheduler_service_pb2 as pb
from nodedrop.queue.v1 import scheduler_service_pb2_grpc as pb_grpc
from tests.helpers.services import SERVICE_TOKEN_VAR, ServiceProcess, service_env, start_service
from tests.security.certs import Certs, Pair, make_certs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("tls"))


def _tls(pair: Pair, ca: Path) -> TlsSettings:
    settings = TlsSettings.from_env(pair.env(ca))
    assert settings is not None
    return settings


def _mtls_env(env: dict[str, str], pair: Pair, ca: Path) -> dict[str, str]:
    # Mutual TLS alone: no service token anywhere.
    return {**env, SERVICE_TOKEN_VAR: "", **pair.env(ca)}


async def _health(
    channel: grpc.aio.Channel,
) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=3
    )
    return int(response.status)


async def _wait_tls(proc: ServiceProcess, tls: TlsSettings) -> None:
    """start_service's readiness probe speaks plain gRPC; this one has a certificate."""
    deadline = time.monotonic() + 20
    while True:
        assert proc.process.returncode is None, proc.output()
        try:
            async with open_channel(proc.target, tls=tls) as channel:
                if await _health(channel) == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.aio.AioRpcError:
            pass
        assert time.monotonic() < deadline, proc.output()
        await asyncio.sleep(0.1)


@pytest.fixture
async def scheduler(env: dict[str, str], certs: Certs) -> AsyncIterator[ServiceProcess]:
    async with start_service(
        "scheduler", env=_mtls_env(env, certs.scheduler, certs.ca), wait=False
    ) as proc:
        await _wait_tls(proc, _tls(certs.api, certs.ca))
        yield proc


async def _refused_at_handshake(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _health(channel)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()


async def test_without_a_certificate_from_the_ca_nothing_connects(
    scheduler: ServiceProcess, certs: Certs
) -> None:
    async with grpc.aio.insecure_channel(scheduler.target) as plain:
        await _refused_at_handshake(plain)
    ca_only = grpc.ssl_channel_credentials(root_certificates=certs.ca.read_bytes())
    async with grpc.aio.secure_channel(scheduler.target, ca_only) as no_cert:
        await _refused_at_handshake(no_cert)
    async with open_channel(scheduler.target, tls=_tls(certs.impostor, certs.ca)) as impostor:
        await _refused_at_handshake(impostor)


async def test_a_service_certificate_opens_the_internal_methods(
    scheduler: ServiceProcess, certs: Certs
) -> None:
    request = pb.GetQueueStatsRequest()
    async with open_channel(scheduler.target, tls=_tls(certs.api, certs.ca)) as channel:
        stats = await pb_grpc.SchedulerServiceStub(channel).GetQueueStats(request, timeout=5)
        assert stats.partitions == 4
    # Alice's certificate is the CA's too: it connects, but she is no service.
    async with open_channel(scheduler.target, tls=_tls(certs.alice, certs.ca)) as channel:
        assert await _health(channel) == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await pb_grpc.SchedulerServiceStub(channel).GetQueueStats(request, timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def _cli(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nodedrop.cli.main",
        *argv,
        env=service_env(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_api_and_cli_over_mutual_tls(
    scheduler: ServiceProcess, env: dict[str, str], certs: Certs, pg_dsn: str
) -> None:
    repo = await PostgresRepository.connect(pg_dsn, min_size=1, max_size=2)
    try:
        operator, _ = await create_key(repo, "ops", "ops", [Scope.READ, Scope.OPERATOR])
    finally:
        await repo.close()
    api_env = {
        **_mtls_env(env, certs.api, certs.ca),
        "NODEDROP_SCHEDULER_ADDR": scheduler.target,
    }
    async with start_service("api", env=api_env, wait=False) as api:
        await _wait_tls(api, _tls(certs.alice, certs.ca))
        # GetSystemHealth asks the scheduler: healthy only if the API's own
        # channel to it (its certificate, no token) works.
        async with open_channel(api.target, tls=_tls(certs.alice, certs.ca)) as channel:
            health = await ex_grpc.ExecutionServiceStub(channel).GetSystemHealth(
                ex_pb.GetSystemHealthRequest(), timeout=5
            )
        assert health.healthy
        cli_env = {
            "NODEDROP_API_ADDR": api.target,
            "NODEDROP_API_KEY": operator.secret,
        }
        # The CLI without a certificate: refused at the handshake.
        code, _, err = await _cli(cli_env, "stats", "--json")
        assert code == 1 and "UNAVAILABLE" in err, err
        # With Alice's: in, and the operator's stats come from the scheduler.
        code, out, err = await _cli({**cli_env, **certs.alice.env(certs.ca)}, "stats", "--json")
        assert code == 0, err
        assert orjson.loads(out)["partitions"] == 4


async def test_partial_tls_settings_refuse_to_start(env: dict[str, str], certs: Certs) -> None:
    partial = {**env, "NODEDROP_TLS_CERT": str(certs.scheduler.cert)}
    code, out, err = await _cli(partial, "scheduler")
    assert code == 2, out + err
    assert "NODEDROP_TLS_KEY" in err and len(err.strip().splitlines()) == 1, err
