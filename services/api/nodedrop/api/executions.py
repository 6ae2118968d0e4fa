"""Executions as a domain: submit (queue or direct), read, cancel, retry.

The servicer has already checked the request's shape and the caller's
scope; this module works in domain values and raises nodedrop.common errors.
An execution row is committed to the repository before the id is returned
and before anything runs, so PostgreSQL is the source of truth for which
executions exist (orphan recovery relies on it).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from nodedrop.api.batching import Insert, InsertBatcher
from nodedrop.api.errors import StoreUnavailableError
from nodedrop.api.model import ExecutionRecord, NewExecution, Status
from nodedrop.api.queueing import EnqueueRequest, QueuePort
from nodedrop.api.repository import ExecutionRepository
from nodedrop.api.subworkflows import carries_pins
from nodedrop.common.errors import FailedPrecondition, NodedropError, NotFound, Unavailable
from nodedrop.common.logging import get_logger
from nodedrop.contract import Definition, from_json
from nodedrop.store import ExecutionStatus as StoreStatus
from nodedrop.store import cancel_error

__all__ = ["DirectRunner", "ExecutionManager", "Submission", "Submitted"]

log = get_logger("nodedrop.api.executions")


class DirectRunner(Protocol):
    """Runs an execution inside the API process (direct mode)."""

    def start(self, record: ExecutionRecord, completed_outputs: Mapping[str, str]) -> None:
        """Schedules the run in the background and returns at once."""
        ...

    async def cancel(self, execution_id: str, tenant_id: str, reason: str) -> StoreStatus | None:
        """Flags the cancel in the store; its status after the call, None if unknown there."""
        ...


@dataclass(frozen=True, slots=True)
class Submission:
    tenant_id: str
    definition: Definition
    workflow_id: str | None
    workflow_version: int
    trigger_data_json: str
    mode: str
    trigger_kind: str
    priority: int
    delay_s: float
    idempotency_key: str | None
    retry_of: str | None = None
    completed_outputs: Mapping[str, str] | None = None
    trace_id: str = ""
    traceparent: str = ""


@dataclass(frozen=True, slots=True)
class Submitted:
    execution_id: str
    status: Status
    deduplicated: bool


def _enqueue_failed(new: NewExecution, exc: Exception) -> None:
    # The row is committed, so the execution is acknowledged: orphan
    # recovery enqueues it once the scheduler or the store is back.
    log.warning("enqueue failed; left to orphan recovery", execution_id=new.id, error=str(exc))


def _unavailable(exc: StoreUnavailableError) -> Unavailable:
    return Unavailable(f"the execution store is unavailable: {exc.message}")


class ExecutionManager:
    def __init__(
        self,
        repository: ExecutionRepository,
        batcher: InsertBatcher,
        queue: QueuePort | None,
        direct: DirectRunner | None,
    ) -> None:
        self._repo = repository
        self._batcher = batcher
        self._queue = queue
        self._direct = direct

    def _require_mode(self, mode: str) -> None:
        if mode == "queue" and self._queue is None:
            raise FailedPrecondition("queue mode is not configured on this API (no scheduler)")
        if mode == "direct" and self._direct is None:
            raise FailedPrecondition("direct mode is not available on this API")

    async def submit(self, s: Submission) -> Submitted:
        self._require_mode(s.mode)
        now = datetime.now(UTC)
        new = NewExecution(
            id=str(uuid.uuid4()),
            tenant_id=s.tenant_id,
            workflow_id=s.workflow_id,
            workflow_version=s.workflow_version,
            definition_json=s.definition.json,
            mode=s.mode,
            trigger_kind=s.trigger_kind,
            trigger_data_json=s.trigger_data_json,
            max_attempts=s.definition.settings.max_attempts,
            priority=s.priority,
            run_at=now + timedelta(seconds=s.delay_s),
            idempotency_key=s.idempotency_key,
            retry_of=s.retry_of,
            trace_id=s.trace_id,
            # A stored workflow's definition is that version's, whether it
            # came from the workflow cache or from a stored execution (retry).
            definition_is_version=s.workflow_id is not None
            and s.workflow_version > 0
            and not carries_pins(s.definition.document),
        )
        if s.mode == "queue" and self._batcher.hands_on:
            job = self._batcher.prepared(self._request(new, s.definition, s.delay_s, s))
            if job is not None:
                return await self._insert_then_enqueue(Insert(new, job))
        try:
            outcome = await self._batcher.insert(new)
        except StoreUnavailableError as exc:
            raise _unavailable(exc) from exc
        if not outcome.created:
            return Submitted(outcome.execution_id, outcome.status, True)
        if s.mode == "direct":
            assert self._direct is not None
            record = await self._get(s.tenant_id, new.id)
            self._direct.start(record, s.completed_outputs or {})
            return Submitted(new.id, Status.QUEUED, False)
        status = await self._enqueue(new, s.definition, s.delay_s, s)
        return Submitted(new.id, status, False)

    async def _insert_then_enqueue(self, item: Insert) -> Submitted:
        new = item.execution
        try:
            status = await self._batcher.insert_then_enqueue(item)
        except NodedropError as exc:
            if item.outcome is None:
                # The INSERT failed: nothing is acknowledged.
                if isinstance(exc, StoreUnavailableError):
                    raise _unavailable(exc) from exc
                raise
            _enqueue_failed(new, exc)
            status = Status.QUEUED
        outcome = item.outcome
        assert outcome is not None
        if not outcome.created:
            return Submitted(outcome.execution_id, outcome.status, True)
        return Submitted(new.id, status, False)

    @staticmethod
    def _request(
        new: NewExecution, definition: Definition, delay_s: float, s: Submission
    ) -> EnqueueRequest:
        return EnqueueRequest(
            execution_id=new.id,
            tenant_id=new.tenant_id,
            definition=definition,
            workflow_id=new.workflow_id or "",
            workflow_version=new.workflow_version,
            trigger_data_json=new.trigger_data_json,
            priority=new.priority,
            run_at=new.run_at if delay_s > 0 else None,
            traceparent=s.traceparent,
            completed_outputs=dict(s.completed_outputs or {}),
        )

    async def _enqueue(
        self, new: NewExecution, definition: Definition, delay_s: float, s: Submission
    ) -> Status:
        assert self._queue is not None
        try:
            return await self._queue.enqueue(self._request(new, definition, delay_s, s))
        except NodedropError as exc:
            _enqueue_failed(new, exc)
            return Status.QUEUED

    async def enqueue_existing(
        self,
        record: ExecutionRecord,
        completed_outputs: Mapping[str, str] | None = None,
        attempt: int = 1,
    ) -> Status:
        """Re-enqueue a stored execution from its definition and trigger data,
        resuming after `completed_outputs` (node id -> outputs JSON) at `attempt`."""
        assert self._queue is not None
        return await self._queue.enqueue(stored_request(record, completed_outputs, attempt))

    async def _get(self, tenant_id: str, execution_id: str) -> ExecutionRecord:
        try:
            record = await self._repo.get_execution(tenant_id, execution_id, with_node_runs=True)
        except StoreUnavailableError as exc:
            raise _unavailable(exc) from exc
        if record is None:
            raise NotFound(f"execution {execution_id!r} not found")
        return record

    async def get(self, tenant_id: str, execution_id: str) -> ExecutionRecord:
        return await self._get(tenant_id, execution_id)

    async def cancel(self, tenant_id: str, execution_id: str, reason: str) -> Status:
        record = await self._get(tenant_id, execution_id)
        if record.finished:
            return record.status
        error = cancel_error(reason).to_json()
        if record.mode == "direct":
            known = (
                await self._direct.cancel(execution_id, tenant_id, reason)
                if self._direct is not None
                else None
            )
            if known is not None and known.value.lower() != Status.CANCELLED.value:
                # Running (it ends CANCELLED within a heartbeat) or already ended.
                return Status(known.value.lower())
            # Cancelled before it started, or the process running it is gone:
            # either way nothing runs it any more.
            await self._repo.set_status(execution_id, Status.CANCELLED, error)
            return Status.CANCELLED
        if self._queue is None:
            raise FailedPrecondition("queue mode is not configured on this API (no scheduler)")
        status = await self._queue.cancel(execution_id, tenant_id, reason)
        if status is Status.CANCELLED:
            # The recorder will write the same from the event; writing it now
            # makes an immediate GetExecution agree with the answer given here.
            await self._repo.set_status(execution_id, Status.CANCELLED, error)
        return status

    async def retry(
        self, tenant_id: str, execution_id: str, from_failed_node: bool, mode: str | None
    ) -> Submitted:
        record = await self._get(tenant_id, execution_id)
        if record.status not in (Status.FAILED, Status.CANCELLED, Status.TIMED_OUT):
            raise FailedPrecondition(
                f"execution {execution_id!r} is {record.status.value}; only failed, cancelled "
                "or timed-out executions can be retried"
            )
        completed: dict[str, str] = {}
        if from_failed_node:
            for run in record.node_runs:
                if run.status == "completed" and run.outputs_json:
                    completed[run.node_id] = run.outputs_json
        return await self.submit(
            Submission(
                tenant_id=tenant_id,
                definition=from_json(record.definition_json),
                workflow_id=record.workflow_id,
                workflow_version=record.workflow_version,
                trigger_data_json=record.trigger_data_json,
                mode=mode or record.mode,
                trigger_kind="retry",
                priority=record.priority,
                delay_s=0.0,
                idempotency_key=None,
                retry_of=record.id,
                completed_outputs=completed,
            )
        )


def stored_request(
    record: ExecutionRecord, completed_outputs: Mapping[str, str] | None, attempt: int
) -> EnqueueRequest:
    """The enqueue request of a stored execution, from its definition and trigger data."""
    delay = max(0.0, (record.run_at - datetime.now(UTC)).total_seconds())
    return EnqueueRequest(
        execution_id=record.id,
        tenant_id=record.tenant_id,
        definition=from_json(record.definition_json),
        workflow_id=record.workflow_id or "",
        workflow_version=record.workflow_version,
        trigger_data_json=record.trigger_data_json,
        priority=record.priority,
        run_at=record.run_at if delay > 0 else None,
        completed_outputs=dict(completed_outputs or {}),
        attempt=attempt,
    )
