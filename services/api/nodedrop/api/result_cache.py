"""A cache of finished executions as returned by GetExecution (the store's BlobCache).

A finished execution changes only when a failed-queue retry starts it again,
so its serialized protobuf is cached for `ttl_s` and served only while the
store's live state of the execution (status and attempt) still agrees with it;
repeated reads (dashboards polling a result) then skip PostgreSQL. The live
state is in the store, shared by every API replica, so a retry through any of
them (or straight through the scheduler) ends every replica's cached answer at
once. An execution the store no longer holds has ended for good: its entry
stands.

The key carries the tenant, so a cached entry can never answer another
tenant, and the read options (outputs, cap) since they change the answer.
A store outage falls back to the database: the cache is an optimisation,
never a dependency.
"""

from __future__ import annotations

import asyncio

from nodedrop.api.model import Status
from nodedrop.api.queueing import status_to_proto
from nodedrop.common.logging import get_logger
from nodedrop.execution.v1 import execution_pb2
from nodedrop.store import BlobCache, StateSnapshot, StateStore, Unavailable

__all__ = ["ResultCache"]

log = get_logger("nodedrop.api.result_cache")


class ResultCache:
    def __init__(self, blobs: BlobCache, states: StateStore, *, ttl_s: int = 300) -> None:
        self._blobs = blobs
        self._states = states
        self._ttl_s = ttl_s

    def _key(self, tenant_id: str, execution_id: str, outputs: bool, cap: int) -> str:
        # One hash tag per execution keeps the key valid on Redis Cluster.
        return f"api:result:{{{execution_id}}}:{tenant_id}:{int(outputs)}:{cap}"

    async def get(
        self, tenant_id: str, execution_id: str, outputs: bool, cap: int
    ) -> execution_pb2.Execution | None:
        try:
            raw, (live,) = await asyncio.gather(
                self._blobs.get_blob(self._key(tenant_id, execution_id, outputs, cap)),
                self._states.states([execution_id]),
            )
        except Unavailable as exc:
            log.warning("result cache read failed", error=str(exc))
            return None
        if raw is None:
            return None
        message = execution_pb2.Execution.FromString(raw)
        return message if _current(message, live) else None

    async def put(
        self,
        tenant_id: str,
        execution_id: str,
        outputs: bool,
        cap: int,
        message: execution_pb2.Execution,
    ) -> None:
        try:
            # PostgreSQL trails the store: an answer the store already moved past
            # (the end of a retried attempt not yet recorded) is not kept.
            (live,) = await self._states.states([execution_id])
            if not _current(message, live):
                return
            await self._blobs.put_blob(
                self._key(tenant_id, execution_id, outputs, cap),
                message.SerializeToString(),
                self._ttl_s,
            )
        except Unavailable as exc:
            log.warning("result cache write failed", error=str(exc))


def _current(message: execution_pb2.Execution, live: StateSnapshot | None) -> bool:
    """Whether ``message`` still tells the execution as the store knows it."""
    if live is None:
        return True
    status = status_to_proto(Status(live.status.value.lower()))
    return (message.status, message.attempt) == (status, live.attempt)
