"""Migrations: safe to run twice and from several replicas at once."""

from __future__ import annotations

import asyncio

import asyncpg

from nodedrop.api import migrations


async def test_apply_twice_and_concurrently(empty_pg_dsn: str) -> None:
    results = await asyncio.gather(*(migrations.apply(empty_pg_dsn) for _ in range(4)))
    applied = [r for r in results if r]
    assert applied == [[m.version for m in migrations.available()]]
    assert await migrations.apply(empty_pg_dsn) == []
    conn = await asyncpg.connect(empty_pg_dsn)
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
