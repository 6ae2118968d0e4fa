"""Opening the store a service runs on: Redis, or in `nodedrop dev` without Redis,
the one in-memory store every service of the process shares."""

from __future__ import annotations

import asyncio

import structlog

from nodedrop.store.config import StoreConfig
from nodedrop.store.errors import Unavailable
from nodedrop.store.memory import MemoryStore
from nodedrop.store.redis_store import RedisStore

log = structlog.get_logger("nodedrop.store")

_SHARED: dict[tuple[str, int], MemoryStore] = {}


def shared_memory_store(config: StoreConfig) -> MemoryStore:
    """The process-wide in-memory store for a prefix: the scheduler, the workers and
    the API of one `nodedrop dev` process must see the same queue."""
    key = (config.keys.prefix, config.keys.partitions)
    store = _SHARED.get(key)
    if store is None:
        store = _SHARED[key] = MemoryStore(config)
    return store


async def open_store(url: str, config: StoreConfig, *, dev: bool) -> RedisStore | MemoryStore:
    """Redis at ``url`` (scripts loaded, groups created).

    A Redis that is not what the URL and settings say (a cluster node behind a
    single-node URL, another partition count than the deployment's) raises
    ``Misconfigured``: the service must not start.

    With ``dev``, an unreachable Redis falls back to the shared in-memory store.
    Otherwise an unreachable Redis is not fatal: the service starts, its loops
    retry with backoff, and scripts and groups are created on first use, so a
    Redis that comes up later (or restarts) causes no crash loop.
    """
    store = RedisStore.from_url(url, config)
    try:
        await asyncio.wait_for(store.connect(), 0.5 if dev else 5.0)
    except (Unavailable, TimeoutError) as e:
        if dev:
            await store.close()
            return shared_memory_store(config)
        log.warning(
            "redis unavailable at start; retrying in the background",
            error=str(e),
            setting="REDIS_URL",
        )
    return store
