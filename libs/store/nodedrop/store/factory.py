"""Opening the store a service runs on: Redis, or in `nodedrop dev` without Redis,
the one in-memory store every service of the process shares."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Iterator

import structlog
from redis.exceptions import AskError, ClusterDownError, MovedError, RedisError

from nodedrop.store.config import StoreConfig
from nodedrop.store.errors import Misconfigured, StoreError, Unavailable, Unusable
from nodedrop.store.memory import MemoryStore
from nodedrop.store.redis_store import RedisStore

log = structlog.get_logger("nodedrop.store")

_SHARED: dict[tuple[str, int], MemoryStore] = {}

# How long a start waits for Redis to answer PING and load the scripts.
_CONNECT_S = 5.0

# Socket errors that mean nothing listens at the address (or there is no route
# to it): on the default address, `nodedrop dev` then runs on memory.
_NOTHING_THERE = frozenset(
    {errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.ENOENT}
)


# redis-py's exceptions for a cluster's redirections, and the replies they stand
# for (their own text drops the reply's first word).
_CLUSTER_REPLIES: dict[type[BaseException], str] = {
    MovedError: "MOVED",
    AskError: "ASK",
    ClusterDownError: "CLUSTERDOWN",
}


def shared_memory_store(config: StoreConfig) -> MemoryStore:
    """The process-wide in-memory store for a prefix: the scheduler, the workers and
    the API of one `nodedrop dev` process must see the same queue."""
    key = (config.keys.prefix, config.keys.partitions)
    store = _SHARED.get(key)
    if store is None:
        store = _SHARED[key] = MemoryStore(config)
    return store


async def open_store(
    url: str, config: StoreConfig, *, dev: bool, url_set: bool
) -> RedisStore | MemoryStore:
    """Redis at ``url`` (scripts loaded, groups created).

    A Redis that is not what the URL and settings say (a cluster node behind a
    single-node URL, another partition count than the deployment's) raises
    ``Misconfigured``: the service must not start.

    With ``dev`` (`nodedrop dev`), the in-memory store when REDIS_URL is not
    set (``url_set``) and nothing listens on the default address, said in one
    log line; any other failure raises ``Unusable`` with the reason, so a
    Redis the user named (or one on the default address that refuses) is
    never silently replaced by memory. Otherwise an unreachable Redis is not
    fatal: the service starts, its loops retry with backoff, and scripts and
    groups are created on first use, so a Redis that comes up later (or
    restarts) causes no crash loop.
    """
    store = RedisStore.from_url(url, config)
    if dev:
        return await _open_dev(store, url, config, url_set=url_set)
    try:
        await asyncio.wait_for(store.connect(), _CONNECT_S)
    except (Unavailable, TimeoutError) as e:
        log.warning(
            "redis unavailable at start; retrying in the background",
            error=str(e),
            setting="REDIS_URL",
        )
    return store


async def _open_dev(
    store: RedisStore, url: str, config: StoreConfig, *, url_set: bool
) -> RedisStore | MemoryStore:
    try:
        await asyncio.wait_for(store.connect(), _CONNECT_S)
    except (StoreError, RedisError, OSError, TimeoutError) as e:
        await store.close()
        if url_set or not _nothing_there(e):
            raise Unusable(_reason(e)) from e
        key = (config.keys.prefix, config.keys.partitions)
        if key not in _SHARED:
            # Once per process: every service of `nodedrop dev` gets here.
            log.warning(
                "REDIS_URL is not set and nothing answers at the default address: "
                "running on the in-memory store (this process only, lost at exit)",
                address=url,
            )
        return shared_memory_store(config)
    return store


def _chain(e: BaseException) -> Iterator[BaseException]:
    """``e`` and the exceptions it was raised from, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = e
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _nothing_there(e: BaseException) -> bool:
    return any(isinstance(c, OSError) and c.errno in _NOTHING_THERE for c in _chain(e))


def _reason(e: BaseException) -> str:
    """One line for the failed start: what Redis (or the socket) said."""
    if isinstance(e, TimeoutError) and not isinstance(e, Unavailable):
        return f"no answer within {_CONNECT_S:g} s"
    if isinstance(e, Misconfigured):
        # The store's own check (a cluster node, another partition count) says why.
        return str(e)
    for c in _chain(e):
        reply = _CLUSTER_REPLIES.get(type(c))
        if reply is not None:
            return f"a Redis Cluster node ({reply} {c}): name a cluster with a redis+cluster:// URL"
    # Unavailable wraps redis-py's error: name that one.
    inner = e.__cause__ if isinstance(e, Unavailable) and e.__cause__ is not None else e
    text = " ".join(str(inner).split())
    return f"{type(inner).__name__}: {text}" if text else type(inner).__name__
