"""asyncpg pool helper: command timeout and json/jsonb codecs through orjson."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from nodedrop.common.settings import PostgresSettings

__all__ = ["create_pool", "init_connection"]


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def init_connection(connection: asyncpg.Connection) -> None:
    """Columns of type json/jsonb read and write Python values directly."""
    for typename in ("json", "jsonb"):
        await connection.set_type_codec(
            typename, schema="pg_catalog", encoder=_dumps, decoder=orjson.loads, format="text"
        )


async def create_pool(settings: PostgresSettings, *, dsn: str | None = None) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn=dsn or settings.url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        command_timeout=settings.command_timeout_s,
        statement_cache_size=settings.statement_cache_size,
        init=init_connection,
    )
    return pool
