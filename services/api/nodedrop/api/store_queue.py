"""The queue port with enqueues straight into the store (NODEDROP_API_ENQUEUE=store,
the default).

The other path enqueues through the scheduler's EnqueueExecution RPC: one
gRPC call per submission, each costing the scheduler a gRPC handler's CPU,
and the scheduler validates the workflow again. This adapter writes the same job
with the store's own enqueue script (the one the scheduler runs),
coalescing the submissions that arrive together into one pipelined
``enqueue_many``: under load, N round trips and N gRPC calls become about
N / batch round trips. The API has validated the
definition with the engine already. Cancel, states and queue figures still
go to the scheduler.

Guarantees are the scheduler path's: the execution row is committed before
the enqueue, so a crash between the two leaves a queued row that orphan
recovery enqueues; each enqueue runs in the same PRODUCER span as the
scheduler's, whose traceparent the job entry keeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from opentelemetry import trace

from nodedrop.api.batching import MicroBatcher
from nodedrop.api.model import Status
from nodedrop.api.queueing import EnqueueRequest, KnownState, QueueFigures, QueuePort
from nodedrop.common.errors import FailedPrecondition, Unavailable
from nodedrop.common.telemetry import spans_exported
from nodedrop.common.tracing import (
    TRACER_NAME,
    current_traceparent,
    enqueue_span,
    unrecorded_enqueue_traceparent,
)
from nodedrop.store import InvalidJob, JobQueue, JobSpec
from nodedrop.store import Unavailable as StoreUnavailable

__all__ = ["StoreQueue"]


def job_spec(request: EnqueueRequest, traceparent: str) -> JobSpec:
    settings = request.definition.settings
    return JobSpec(
        execution_id=request.execution_id,
        tenant_id=request.tenant_id,
        workflow_id=request.workflow_id,
        workflow_json=request.definition.json,
        trigger_json=request.trigger_data_json,
        priority=request.priority,
        run_at_ms=int(request.run_at.timestamp() * 1000) if request.run_at else 0,
        max_attempts=settings.max_attempts,
        backoff_s=settings.backoff_s,
        timeout_s=settings.timeout_s,
        traceparent=traceparent,
        completed_outputs=dict(request.completed_outputs),
        attempt=request.attempt,
    )


class StoreQueue:
    def __init__(self, store: JobQueue, scheduler: QueuePort, *, max_batch: int = 256) -> None:
        self._store = store
        self._scheduler = scheduler
        self._batcher: MicroBatcher[JobSpec, Status] = MicroBatcher(
            self._send, name="nodedrop-store-enqueue", max_batch=max_batch, concurrency=1
        )
        # Looked up once: get_tracer per call showed in the API's profile. A
        # tracer taken before the provider is configured follows it later.
        self._tracer = trace.get_tracer(TRACER_NAME)

    def start(self) -> None:
        self._batcher.start()

    async def stop(self) -> None:
        await self._batcher.stop()

    async def enqueue(self, request: EnqueueRequest) -> Status:
        if not spans_exported():
            # The span would be dropped: only its traceparent is needed, for
            # the job entry; building an unrecorded span per call is not free.
            spec = job_spec(request, unrecorded_enqueue_traceparent(request.traceparent))
            return await self._batcher.submit(spec)
        with enqueue_span(
            request.execution_id, parent_traceparent=request.traceparent, tracer=self._tracer
        ):
            # Taken inside the span: the worker's execution span is its child.
            spec = job_spec(request, current_traceparent())
            return await self._batcher.submit(spec)

    def prepared(self, request: EnqueueRequest) -> JobSpec | None:
        """The job built before its row is committed, for the INSERT flush to hand
        on (``hand_on``); None when spans are exported: the enqueue span must
        then start once the row is committed, and the job carries its context."""
        if spans_exported() or not self._batcher.running:
            return None
        return job_spec(request, unrecorded_enqueue_traceparent(request.traceparent))

    def hand_on(self, job: JobSpec, future: asyncio.Future[Status]) -> None:
        self._batcher.push(job, future)

    async def _send(self, specs: Sequence[JobSpec]) -> list[Status]:
        try:
            results = await self._store.enqueue_many(specs, int(time.time() * 1000))
        except InvalidJob as exc:
            raise FailedPrecondition(f"the store refused the job: {exc}") from exc
        except StoreUnavailable as exc:
            # The rows are committed: the caller acknowledges, recovery enqueues.
            raise Unavailable(f"enqueue into the store failed: {exc}") from exc
        return [Status(r.status.value.lower()) for r in results]

    async def cancel(self, execution_id: str, tenant_id: str, reason: str) -> Status:
        return await self._scheduler.cancel(execution_id, tenant_id, reason)

    async def states(self, execution_ids: Sequence[str]) -> list[KnownState]:
        return await self._scheduler.states(execution_ids)

    async def figures(self) -> QueueFigures:
        return await self._scheduler.figures()
