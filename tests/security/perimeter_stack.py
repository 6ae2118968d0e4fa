"""Real processes for the perimeter tests: keys made in a test's own database,
the API / events / gateway started as subprocesses, and the secrets planted
in their environment so every test can assert none of them comes out."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import grpc

from nodedrop.api.keys import generate_key
from nodedrop.api.model import Scope
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from nodedrop.common.auth import bearer_metadata
from tests.helpers.services import ServiceProcess, isolated_env, start_service

# Planted in settings that hold secrets; none may appear in any output.
PLANTED_PASSWORD = "S3cretPlantedPw"
PLANTED_SERVICE_TOKEN = "svc-T0ken-Planted-9f8e7d"
PLANTED_OTHER_SECRET = "an0ther-Planted-Secret"
PLANTED = (PLANTED_PASSWORD, PLANTED_SERVICE_TOKEN, PLANTED_OTHER_SECRET)


def with_password(url: str, password: str = PLANTED_PASSWORD) -> str:
    """``url`` with ``password`` in it: the local servers trust their clients
    and ignore it, so the service runs while its settings carry a secret."""
    parts = urlsplit(url)
    user = parts.username or ("postgres" if parts.scheme.startswith("postgres") else "default")
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{password}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def planted_env(redis_url: str, redis_prefix: str, pg_dsn: str) -> dict[str, str]:
    env = isolated_env(with_password(redis_url), redis_prefix, with_password(pg_dsn), 2.0)
    env.update(
        {
            "LOG_FORMAT": "json",
            "NODEDROP_METRICS_ADDR": "off",
            "NODEDROP_SERVICE_TOKEN": PLANTED_SERVICE_TOKEN,
            "SOME_VENDOR_SECRET": PLANTED_OTHER_SECRET,
        }
    )
    return env


def assert_clean(text: str, secrets: Iterable[str] = ()) -> None:
    for secret in (*PLANTED, *secrets):
        assert secret not in text, f"{secret[:8]}... leaked:\n{text[-4000:]}"


@dataclass(frozen=True)
class Key:
    secret: str
    key_id: str
    tenant_id: str


async def make_key(pg_dsn: str, tenant_id: str, *scopes: Scope) -> Key:
    repo = await PostgresRepository.connect(pg_dsn, min_size=1, max_size=1)
    try:
        await repo.ensure_tenant(tenant_id, tenant_id)
        key = generate_key()
        await repo.insert_api_key(
            key.key_id,
            tenant_id,
            name="security-test",
            key_hash=key.key_hash,
            scopes=list(scopes),
            prefix=key.prefix,
        )
    finally:
        await repo.close()
    return Key(key.secret, key.key_id, tenant_id)


@contextlib.asynccontextmanager
async def running(
    service: str, env: dict[str, str], port: int | None = None, *, http: bool = False
) -> AsyncIterator[ServiceProcess]:
    """The service on its address from ``env`` (or ``port``), serving."""
    if port is None:
        port = int(env[_ADDR[service]].rsplit(":", 1)[1])
    async with start_service(service, env=env, port=port, http=http) as process:
        yield process


_ADDR = {
    "api": "NODEDROP_API_ADDR",
    "events": "NODEDROP_EVENTS_ADDR",
    "gateway": "NODEDROP_GATEWAY_ADDR",
    "scheduler": "NODEDROP_SCHEDULER_ADDR",
    "worker": "NODEDROP_WORKER_ADDR",
}


async def issue_ticket(target: str, credential: str) -> str:
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await auth_service_pb2_grpc.AuthServiceStub(channel).IssueTicket(
            auth_service_pb2.IssueTicketRequest(), metadata=bearer_metadata(credential), timeout=5
        )
    return str(reply.ticket)
