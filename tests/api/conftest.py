"""Fixtures of the API tests: both repository adapters, PostgreSQL's on the
per-test migrated database of the shared fixtures (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nodedrop.api.repository import ExecutionRepository
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.api.repository_sqlite import SqliteRepository


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


@pytest.fixture(params=["postgres", "sqlite"])
def repo(request: pytest.FixtureRequest) -> ExecutionRepository:
    name = "pg_repo" if request.param == "postgres" else "sqlite_repo"
    result: ExecutionRepository = request.getfixturevalue(name)
    return result
