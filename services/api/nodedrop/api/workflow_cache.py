"""Stored workflows as ExecuteWorkflow reads them, cached per API process.

A numbered version never changes, so it stays cached (LRU) until evicted;
"the latest version" is cached for ``latest_ttl_s`` only, and this
replica's own UpdateWorkflow/DeleteWorkflow drop it at once. So a submission
on another replica may use the previous latest version for up to
``latest_ttl_s`` after an update; a deleted workflow may still be executed
there for as long, from its stored definition.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass

from nodedrop.api.model import WorkflowRecord
from nodedrop.api.repository import ExecutionRepository
from nodedrop.contract import Definition, from_json

__all__ = ["CachedWorkflow", "WorkflowCache"]


@dataclass(frozen=True, slots=True)
class CachedWorkflow:
    record: WorkflowRecord
    definition: Definition


_PendingKey = tuple[str, str, int | None]


class WorkflowCache:
    def __init__(
        self,
        repository: ExecutionRepository,
        *,
        latest_ttl_s: float = 1.0,
        max_entries: int = 4096,
    ) -> None:
        self._repo = repository
        self._latest_ttl_s = latest_ttl_s
        self._max_entries = max_entries
        self._versions: OrderedDict[tuple[str, str, int], CachedWorkflow] = OrderedDict()
        self._latest: dict[tuple[str, str], tuple[float, int]] = {}
        self._pending: dict[_PendingKey, asyncio.Future[CachedWorkflow | None]] = {}

    async def get(
        self, tenant_id: str, workflow_id: str, version: int | None
    ) -> CachedWorkflow | None:
        if version is None:
            latest = self._latest.get((tenant_id, workflow_id))
            if latest is not None and latest[0] > time.monotonic():
                version = latest[1]
        if version is not None:
            hit = self._versions.get((tenant_id, workflow_id, version))
            if hit is not None:
                self._versions.move_to_end((tenant_id, workflow_id, version))
                return hit
        # One read per key at a time: when "the latest" expires under load,
        # every call in flight would otherwise read the same row. The read is
        # a task of its own, so a caller that goes away cancels no one else's.
        key = (tenant_id, workflow_id, version)
        read = self._pending.get(key)
        if read is None:
            read = asyncio.ensure_future(self._read(tenant_id, workflow_id, version))
            self._pending[key] = read
            read.add_done_callback(lambda done: self._settled(key, done))
        return await asyncio.shield(read)

    def _settled(self, key: _PendingKey, read: asyncio.Future[CachedWorkflow | None]) -> None:
        if self._pending.get(key) is read:
            del self._pending[key]
        if not read.cancelled():
            # Retrieved here too, so a read nobody awaits any more logs nothing.
            read.exception()

    async def _read(
        self, tenant_id: str, workflow_id: str, version: int | None
    ) -> CachedWorkflow | None:
        record = await self._repo.get_workflow(tenant_id, workflow_id, version)
        if record is None:
            return None
        entry = CachedWorkflow(record, from_json(record.definition_json))
        self._versions[(tenant_id, workflow_id, record.version)] = entry
        while len(self._versions) > self._max_entries:
            self._versions.popitem(last=False)
        if version is None:
            if len(self._latest) >= self._max_entries:
                self._latest.clear()
            self._latest[(tenant_id, workflow_id)] = (
                time.monotonic() + self._latest_ttl_s,
                record.version,
            )
        return entry

    def invalidate(self, tenant_id: str, workflow_id: str) -> None:
        """This replica changed the workflow: forget which version is the latest."""
        self._latest.pop((tenant_id, workflow_id), None)
        # A read begun before the change answers only those already waiting.
        self._pending.pop((tenant_id, workflow_id, None), None)

    def forget(self, tenant_id: str, workflow_id: str) -> None:
        """This replica deleted the workflow: drop every cached version."""
        self.invalidate(tenant_id, workflow_id)
        for key in [k for k in self._versions if k[0] == tenant_id and k[1] == workflow_id]:
            del self._versions[key]
