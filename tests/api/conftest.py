"""Fixtures of the API tests: both repository adapters, PostgreSQL's on the
per-test migrated database of the shared fixtures (tests/conftest.py), both
directly and through a PgBouncer in transaction pooling mode."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from nodedrop.api.repository import ExecutionRepository
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.api.repository_sqlite import SqliteRepository
from tests.helpers.pgbouncer import PgBouncer, jit_off, pgbouncer_binary, private_pgbouncer


@pytest.fixture(scope="session")
def pgbouncer(database_url: str) -> Iterator[PgBouncer]:
    """One PgBouncer (transaction pooling) in front of the test server."""
    if pgbouncer_binary() is None:
        message = "pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with private_pgbouncer(database_url) as bouncer:
        yield bouncer


@pytest.fixture
async def bouncer_dsn(pgbouncer: PgBouncer, pg_dsn: str) -> str:
    """This test's migrated database, through PgBouncer, set up as
    docs/operations.md says (JIT off for the database)."""
    await jit_off(pg_dsn)
    return pgbouncer.dsn_for(pg_dsn)


@pytest.fixture
async def bouncer_repo(bouncer_dsn: str) -> AsyncIterator[PostgresRepository]:
    # NODEDROP_PG_STATEMENT_CACHE_SIZE=0, as docs/operations.md says to run
    # behind a transaction pooler.
    repo = await PostgresRepository.connect(
        bouncer_dsn, min_size=1, max_size=8, statement_cache_size=0
    )
    try:
        yield repo
    finally:
        await repo.close()


@pytest.fixture
async def pg_repo(pg_dsn: str) -> AsyncIterator[PostgresRepository]:
    repo = await PostgresRepository.connect(pg_dsn, min_size=1, max_size=8)
    try:
        yield repo
    finally:
        await repo.close()


@pytest.fixture
async def sqlite_repo() -> AsyncIterator[SqliteRepository]:
    repo = await SqliteRepository.open(":memory:")
    try:
        yield repo
    finally:
        await repo.close()


_REPOS = {"postgres": "pg_repo", "pgbouncer": "bouncer_repo", "sqlite": "sqlite_repo"}


@pytest.fixture(params=list(_REPOS))
def repo(request: pytest.FixtureRequest) -> ExecutionRepository:
    result: ExecutionRepository = request.getfixturevalue(_REPOS[request.param])
    return result
