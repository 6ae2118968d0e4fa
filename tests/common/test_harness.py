"""The harness itself: isolation of Redis keys and PostgreSQL databases."""

from __future__ import annotations

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.helpers.redis_server import private_redis


async def test_redis_prefix_is_unique(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    await redis_client.set(f"{redis_prefix}:probe", b"1")
    assert await redis_client.get(f"{redis_prefix}:probe") == b"1"


async def test_pg_dsn_is_a_fresh_database_of_its_own(pg_dsn: str, pg_template: str) -> None:
    connection = await asyncpg.connect(pg_dsn)
    try:
        name = await connection.fetchval("SELECT current_database()")
        assert name not in (pg_template, "postgres")
        await connection.execute("CREATE TABLE harness_probe (id int)")
    finally:
        await connection.close()


@pytest.mark.parametrize("run", [1, 2])
async def test_each_test_gets_a_new_database(pg_dsn: str, run: int) -> None:
    connection = await asyncpg.connect(pg_dsn)
    try:
        exists = await connection.fetchval("SELECT to_regclass('harness_probe') IS NOT NULL")
        assert exists is False, "a table from another test leaked into this database"
    finally:
        await connection.close()


async def test_private_redis_server() -> None:
    with private_redis() as server:
        client = aioredis.Redis.from_url(server.url)
        try:
            assert await client.ping()
        finally:
            await client.aclose()
        server.stop()
        client = aioredis.Redis.from_url(server.url, socket_connect_timeout=1)
        try:
            with pytest.raises(aioredis.ConnectionError):
                await client.ping()
        finally:
            await client.aclose()
