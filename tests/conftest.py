"""The test harness: a real Redis and a real PostgreSQL, each test isolated.

Where the backing services come from, in order:
1. REDIS_URL / DATABASE_URL when set;
2. the local default ports (127.0.0.1:6379, 127.0.0.1:5432);
3. testcontainers, when a Docker daemon answers;
4. otherwise the tests that need them fail under CI=true (a CI run that
   silently skips them would prove nothing) and are skipped locally, with
   the reason.

Isolation: each test gets its own Redis key prefix (keys deleted afterwards)
and its own PostgreSQL database cloned from a migrated template.

Every test takes Redis and PostgreSQL from these fixtures (``redis_url``,
``redis_client``, ``redis_prefix``, ``database_url``, ``pg_dsn``,
``empty_pg_dsn``), never from an address of its own, so a run against other
servers (REDIS_URL / DATABASE_URL, or containers) tests them and nothing else.
Only tests that stop or restart a server start a private one (tests/helpers).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.helpers.redis_cluster import PrivateCluster, private_cluster, raw_client

# Variables that would change how services under test behave, from the
# developer's shell or CI. REDIS_URL and DATABASE_URL stay: they choose the
# backing services (above) and are passed on deliberately.
for _name in list(os.environ):
    if _name.startswith(("NODEDROP_", "OTEL_")) or _name in {
        "EXECUTION_WORKER_CONCURRENCY",
        "EXECUTION_STATE_TTL",
        "EXECUTION_COMPLETION_TTL",
        "LOG_LEVEL",
        "LOG_FORMAT",
    }:
        del os.environ[_name]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _unavailable(what: str, variable: str, reason: str) -> None:
    message = (
        f"{what} is not available ({reason}). Set {variable}, start it on its "
        "default port, or run a Docker daemon for testcontainers."
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _docker_answers() -> bool:
    if importlib.util.find_spec("testcontainers") is None:
        return False
    try:
        import docker  # type: ignore[import-untyped]  # noqa: PLC0415

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


async def _redis_answers(url: str) -> str | None:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
    except (OSError, aioredis.RedisError) as exc:
        return repr(exc)
    finally:
        await client.aclose()
    return None


async def _postgres_answers(dsn: str) -> str | None:
    try:
        connection = await asyncpg.connect(dsn, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return repr(exc)
    await connection.close()
    return None


@pytest.fixture(scope="session")
def _containers() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


@pytest.fixture(scope="session")
async def redis_url(_containers: contextlib.ExitStack, request: pytest.FixtureRequest) -> str:
    """URL of a Redis every test may use, isolated by ``redis_prefix``.

    ``TEST_REDIS=cluster``: the session's private 3-master Redis Cluster instead
    (``make test-cluster``), so the same suites run against both."""
    if os.environ.get("TEST_REDIS") == "cluster":
        cluster: PrivateCluster = request.getfixturevalue("redis_cluster")
        return cluster.url
    url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    problem = await _redis_answers(url)
    if problem is None:
        return url
    if "REDIS_URL" not in os.environ and _docker_answers():
        from testcontainers.redis import RedisContainer  # noqa: PLC0415

        container = _containers.enter_context(RedisContainer("redis:7-alpine"))
        host = container.get_container_host_ip()
        port = container.get_exposed_port(6379)
        return f"redis://{host}:{port}/0"
    _unavailable("Redis", "REDIS_URL", f"{url}: {problem}")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[PrivateCluster]:
    """A private 3-master Redis Cluster for the session (tests/helpers/redis_cluster.py)."""
    with private_cluster(masters=3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
async def database_url(_containers: contextlib.ExitStack) -> str:
    """DSN of a PostgreSQL database this session may create databases from."""
    url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    problem = await _postgres_answers(url)
    if problem is None:
        return url
    if "DATABASE_URL" not in os.environ and _docker_answers():
        from testcontainers.postgres import PostgresContainer  # noqa: PLC0415

        container = _containers.enter_context(PostgresContainer("postgres:15-alpine"))
        return str(container.get_connection_url(driver=None))
    _unavailable("PostgreSQL", "DATABASE_URL", f"{url}: {problem}")
    raise AssertionError("unreachable")


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses (keys are deleted by ``redis_client``)."""
    return f"ndt{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_client(redis_url: str, redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = raw_client(redis_url)
    try:
        yield client
    finally:
        # Bounded: a test writes at most a few thousand keys under its prefix.
        keys = [key async for key in client.scan_iter(match=f"{redis_prefix}*", count=500)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
        await client.aclose()


def with_database(dsn: str, database: str) -> str:
    """``dsn`` pointing at another database of the same server."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
async def pg_template(database_url: str) -> AsyncIterator[str]:
    """Name of a database migrated once per session, the template of ``pg_dsn``."""
    name = f"nd_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        # The one integration point with the API's schema: when the API
        # package provides migrations, the template carries them; until then
        # the template stays empty.
        if importlib.util.find_spec("nodedrop.api.migrations") is not None:
            from nodedrop.api import migrations  # noqa: PLC0415

            await migrations.apply(with_database(database_url, name))
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def pg_dsn(database_url: str, pg_template: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test alone, dropped afterwards."""
    name = f"nd_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(database_url)
    try:
        # CREATE DATABASE ... TEMPLATE needs no other session on the
        # template; sessions only touch it while this fixture runs.
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
        yield with_database(database_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def empty_pg_dsn(database_url: str) -> AsyncIterator[str]:
    """A fresh database with no schema (for the migrations themselves), dropped afterwards."""
    name = f"nd_empty_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(database_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
