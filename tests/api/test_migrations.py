"""Migrations: safe to run twice and from several replicas at once."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from nodedrop.api import migrations
from tests.api.conftest import PG_ADMIN_DSN, _dsn


async def test_apply_twice_and_concurrently() -> None:
    name = f"nd_api_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        results = await asyncio.gather(*(migrations.apply(_dsn(name)) for _ in range(4)))
        applied = [r for r in results if r]
        assert applied == [[m.version for m in migrations.available()]]
        assert await migrations.apply(_dsn(name)) == []
        conn = await asyncpg.connect(_dsn(name))
        try:
            assert await migrations.applied_versions(conn) == {
                m.version for m in migrations.available()
            }
            # 0002: room in each page for the recorder's heap-only updates.
            options = await conn.fetchval(
                "SELECT reloptions FROM pg_class WHERE relname = 'executions'"
            )
            assert "fillfactor=75" in options
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
