"""A cache of finished executions as returned by GetExecution (the store's BlobCache).

A finished execution never changes, so its serialized protobuf is cached
for `ttl_s`; repeated reads (dashboards polling a result) then skip
PostgreSQL. The key carries the tenant, so a cached entry can never answer
another tenant, and the read options (outputs, cap) since they change the
answer. A store outage falls back to the database: the cache is an
optimisation, never a dependency.
"""

from __future__ import annotations

from nodedrop.common.logging import get_logger
from nodedrop.execution.v1 import execution_pb2
from nodedrop.store import BlobCache, Unavailable

__all__ = ["ResultCache"]

log = get_logger("nodedrop.api.result_cache")


class ResultCache:
    def __init__(self, blobs: BlobCache, *, ttl_s: int = 300) -> None:
        self._blobs = blobs
        self._ttl_s = ttl_s

    def _key(self, tenant_id: str, execution_id: str, outputs: bool, cap: int) -> str:
        # One hash tag per execution keeps the key valid on Redis Cluster.
        return f"api:result:{{{execution_id}}}:{tenant_id}:{int(outputs)}:{cap}"

    async def get(
        self, tenant_id: str, execution_id: str, outputs: bool, cap: int
    ) -> execution_pb2.Execution | None:
        try:
            raw = await self._blobs.get_blob(self._key(tenant_id, execution_id, outputs, cap))
        except Unavailable as exc:
            log.warning("result cache read failed", error=str(exc))
            return None
        if raw is None:
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
            await self._blobs.put_blob(
                self._key(tenant_id, execution_id, outputs, cap),
                message.SerializeToString(),
                self._ttl_s,
            )
        except Unavailable as exc:
            log.warning("result cache write failed", error=str(exc))
