"""Fixtures of the API tests: a migrated PostgreSQL database per test, cloned
from a template migrated once per session, and both repository adapters."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from nodedrop.api import migrations
from nodedrop.api.repository import ExecutionRepository
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.api.repository_sqlite import SqliteRepository

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _dsn(db: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{db}"


@pytest.fixture(scope="session")
async def api_template_db() -> AsyncIterator[str]:
    name = f"nd_api_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        await migrations.apply(_dsn(name))
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def api_dsn(api_template_db: str) -> AsyncIterator[str]:
    name = f"nd_api_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{api_template_db}"')
        yield _dsn(name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def pg_repo(api_dsn: str) -> AsyncIterator[PostgresRepository]:
    repo = await PostgresRepository.connect(api_dsn, min_size=1, max_size=8)
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
