"""A Redis cache of finished executions as returned by GetExecution.

A finished execution never changes, so its serialized protobuf is cached
for `ttl_s`; repeated reads (dashboards polling a result) then skip
PostgreSQL. The key carries the tenant, so a cached entry can never answer
another tenant, and the read options (outputs, cap) since they change the
answer. Redis errors fall back to the database: the cache is an optimisation,
never a dependency.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from nodedrop.common.logging import get_logger
from nodedrop.execution.v1 import execution_pb2

__all__ = ["ResultCache"]

log = get_logger("nodedrop.api.result_cache")


class ResultCache:
    def __init__(self, client: aioredis.Redis, prefix: str, *, ttl_s: int = 300) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_s = ttl_s

    def _key(self, tenant_id: str, execution_id: str, outputs: bool, cap: int) -> str:
        # One hash tag per execution keeps the key valid on Redis Cluster.
        return f"{self._prefix}:api:result:{{{execution_id}}}:{tenant_id}:{int(outputs)}:{cap}"

    async def get(
        self, tenant_id: str, execution_id: str, outputs: bool, cap: int
    ) -> execution_pb2.Execution | None:
        try:
            raw = await self._redis.get(self._key(tenant_id, execution_id, outputs, cap))
        except RedisError as exc:
            log.warning("result cache read failed", error=str(exc))
            return None
        if not isinstance(raw, bytes):
            return None
        return execution_pb2.Execution.FromString(raw)

    async def put(
        self,
        tenant_id: str,
        execution_id: str,
        outputs: bool,
        cap: int,
        message: execution_pb2.Execution,
    ) -> None:
        try:
            await self._redis.set(
                self._key(tenant_id, execution_id, outputs, cap),
                message.SerializeToString(),
                ex=self._ttl_s,
            )
        except RedisError as exc:
            log.warning("result cache write failed", error=str(exc))
