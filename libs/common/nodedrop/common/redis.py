"""Redis client from a URL (redis.asyncio, hiredis parser when installed)."""

from __future__ import annotations

import redis.asyncio as aioredis

from nodedrop.common.settings import RedisSettings

__all__ = ["connect_redis"]


async def connect_redis(
    settings: RedisSettings | str,
    *,
    max_connections: int = 64,
    check: bool = True,
) -> aioredis.Redis:
    """A pooled client; with ``check`` it pings first so a bad URL fails at start.

    ``decode_responses`` stays off: payloads are JSON bytes handed to orjson,
    and decoding every reply to str would cost time on the hot path.
    """
    url = settings if isinstance(settings, str) else settings.url
    client = aioredis.Redis.from_url(
        url,
        max_connections=max_connections,
        health_check_interval=30,
        socket_keepalive=True,
    )
    if check:
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
    return client
