"""The ExecutionRepository port: everything the API keeps durably.

Two adapters implement it: `repository_pg.PostgresRepository` (production)
and `repository_sqlite.SqliteRepository` (the zero-install dev default).
One conformance suite (tests/api/test_repository_conformance.py) runs
against both. Every method scoped by tenant returns nothing for another
tenant's ids, which the servicers answer with NOT_FOUND.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from nodedrop.api.model import (
    Activation,
    AdoptedExecution,
    ApiKeyRecord,
    ExecutionFilter,
    ExecutionRecord,
    NewExecution,
    RecordedEvent,
    Scope,
    StatsRow,
    Status,
    WebhookRoute,
    WorkflowRecord,
)

__all__ = ["ExecutionRepository", "InsertOutcome"]


@dataclass(frozen=True, slots=True)
class InsertOutcome:
    """What happened to one NewExecution of a batch insert."""

    execution_id: str
    created: bool
    status: Status


class ExecutionRepository(Protocol):
    async def close(self) -> None: ...

    # tenants and keys
    async def ensure_tenant(self, tenant_id: str, name: str) -> None: ...

    async def insert_api_key(
        self,
        key_id: str,
        tenant_id: str,
        *,
        name: str,
        key_hash: bytes,
        scopes: Sequence[Scope],
        prefix: str,
    ) -> ApiKeyRecord: ...

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None: ...

    async def list_api_keys(self, tenant_id: str | None) -> list[ApiKeyRecord]: ...

    async def revoke_api_key(self, key_id: str, tenant_id: str | None) -> ApiKeyRecord | None: ...

    # workflows
    async def create_workflow(
        self, tenant_id: str, workflow_id: str, name: str, definition_json: str
    ) -> WorkflowRecord: ...

    async def get_workflow(
        self, tenant_id: str, workflow_id: str, version: int | None
    ) -> WorkflowRecord | None: ...

    async def list_workflows(
        self, tenant_id: str, name_prefix: str, after: tuple[str, str] | None, limit: int
    ) -> list[WorkflowRecord]: ...

    async def update_workflow(
        self,
        tenant_id: str,
        workflow_id: str,
        name: str,
        definition_json: str,
        expected_version: int | None,
    ) -> WorkflowRecord:
        """Store a new version; raises NotFoundError or VersionConflictError."""
        ...

    async def delete_workflow(self, tenant_id: str, workflow_id: str) -> bool: ...

    async def list_workflow_versions(
        self, tenant_id: str, workflow_id: str, before_version: int | None, limit: int
    ) -> list[WorkflowRecord] | None:
        """Versions newest first; None when the workflow is unknown."""
        ...

    # active workflows and their webhook routes
    async def activate(self, activation: Activation) -> Activation | None:
        """Registers ``activation`` (its routes replace the workflow's), in one
        transaction; returns the activation it replaced. Raises RouteTakenError
        when a path is another workflow's of the tenant (nothing changes)."""
        ...

    async def deactivate(self, tenant_id: str, workflow_id: str) -> Activation | None:
        """Removes the activation and its routes; returns it, None if not active."""
        ...

    async def get_activation(self, tenant_id: str, workflow_id: str) -> Activation | None: ...

    async def active_versions(
        self, tenant_id: str, workflow_ids: Sequence[str]
    ) -> dict[str, int]: ...

    async def find_route(self, tenant_id: str, path: str) -> WebhookRoute | None: ...

    # executions
    async def insert_executions(self, batch: Sequence[NewExecution]) -> list[InsertOutcome]:
        """Insert a batch; a duplicate (tenant, idempotency key) returns the existing one.

        The outcomes are in the batch's order.
        """
        ...

    async def get_execution(
        self, tenant_id: str | None, execution_id: str, *, with_node_runs: bool = False
    ) -> ExecutionRecord | None: ...

    async def list_executions(
        self,
        tenant_id: str,
        filt: ExecutionFilter,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[ExecutionRecord]: ...

    async def set_status(self, execution_id: str, status: Status, error_json: str | None) -> bool:
        """Move an unfinished execution to `status`; False if it had finished."""
        ...

    async def list_unfinished(
        self,
        created_before: datetime,
        after: tuple[datetime, str] | None,
        limit: int,
        mode: str = "queue",
    ) -> list[ExecutionRecord]:
        """Unfinished executions of one mode, oldest first, for orphan recovery."""
        ...

    async def count_unfinished(self, tenant_id: str) -> dict[Status, int]:
        """The tenant's queued, running and retry-scheduled executions, by status."""
        ...

    async def list_failed_since(
        self, finished_since: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[ExecutionRecord]:
        """Queue-mode executions failed since ``finished_since``, oldest first (the
        failed-queue rebuild after Redis lost its data)."""
        ...

    async def reset_for_rerun(self, execution_id: str) -> bool:
        """Back to queued with no recorded events (its new run numbers events from 1).

        False when the execution has finished meanwhile (nothing changed).
        """
        ...

    def recovery_lock(self) -> AbstractAsyncContextManager[bool]:
        """Held by one API replica at a time; yields False when another holds it."""
        ...

    # history
    async def adopt_executions(self, seen: Sequence[AdoptedExecution]) -> int:
        """Store the executions among `seen` this database does not know, as queue-mode
        schedule runs of their workflow's latest version (tenant created if new);
        returns how many were new."""
        ...

    async def record_events(self, events: Sequence[RecordedEvent]) -> int:
        """Apply events idempotently; returns how many were new."""
        ...

    async def list_events(
        self, execution_id: str, after_sequence: int, limit: int
    ) -> list[RecordedEvent]: ...

    async def stats(
        self, tenant_id: str, workflow_id: str | None, start: datetime, end: datetime
    ) -> list[StatsRow]: ...

    async def stats_buckets(
        self,
        tenant_id: str,
        workflow_id: str | None,
        start: datetime,
        end: datetime,
        width: timedelta,
    ) -> list[tuple[int, Status, int]]:
        """(bucket, status, count) of the executions created in [start, end),
        bucket n holding those of [start + n * width, start + (n + 1) * width);
        buckets without executions are left out."""
        ...
