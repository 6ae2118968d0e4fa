"""Direct mode: the API process runs an execution itself, through the store.

The execution is stored with the store's own ports, exactly as a worker
would see it, so its events carry the same types and sequences as in queue
mode (EXECUTION_QUEUED from the enqueue, EXECUTION_STARTED from the
acquire, node events and the end from fenced commits) and reach the events
service and the history recorder through the partition streams:

1. ``JobQueue.enqueue`` with ``run_at`` a hold period in the future: the
   execution exists (context, QUEUED event) but sits on the delayed set, so
   no worker takes it while this process runs it;
2. ``StateStore.acquire`` with a delivery that has no stream entry takes the
   lease (RUNNING, STARTED event);
3. the engine runs here; its events and checkpoints go out as fenced commits,
   the last one with the terminal transition (TTL cut, counters).

When the hold period ends the scheduler's mover drops the id from the delayed
set, since the execution is no longer QUEUED. A check of the execution's
state every ``heartbeat_s`` sees a cancel flag set through any API replica
(``StateStore.cancel``), so cancellation works from anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from nodedrop.api.model import ExecutionRecord
from nodedrop.common.logging import get_logger
from nodedrop.engine import (
    CancelToken,
    EngineConfig,
    EngineEvent,
    ErrorInfo,
    ExecutionInfo,
    ExecutionStatus,
    NodeOutputs,
    ValidationError,
    run_workflow,
)
from nodedrop.engine.parse import parse_workflow
from nodedrop.store import (
    DEFAULT_CANCEL_REASON,
    Commit,
    Delivery,
    EventDraft,
    EventType,
    ExecutionContext,
    JobQueue,
    JobSpec,
    Keys,
    Lease,
    StateStore,
    Transition,
    cancel_reason,
)
from nodedrop.store import ExecutionStatus as StoreStatus
from nodedrop.store import NotFound as StoreNotFound
from nodedrop.store import PermissionDenied as StorePermissionDenied
from nodedrop.store.config import StoreConfig
from nodedrop.store.engine_events import event_draft, event_error

__all__ = ["DirectOptions", "DirectRunner", "FailureHook"]

log = get_logger("nodedrop.api.direct")

_TRANSIENT = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError)

_ENDINGS = {
    ExecutionStatus.COMPLETED: (StoreStatus.COMPLETED, EventType.EXECUTION_COMPLETED),
    ExecutionStatus.FAILED: (StoreStatus.FAILED, EventType.EXECUTION_FAILED),
    ExecutionStatus.CANCELLED: (StoreStatus.CANCELLED, EventType.EXECUTION_CANCELLED),
    ExecutionStatus.TIMED_OUT: (StoreStatus.TIMED_OUT, EventType.EXECUTION_TIMED_OUT),
}


# How long a commit is retried while Redis does not answer.
COMMIT_RETRY_S = 60.0

# Called with (execution id, reason) when a run dies on an infrastructure error.
FailureHook = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DirectOptions:
    lease_ms: int = 30_000
    # How often a run checks the store's cancel flag (set through any replica).
    heartbeat_s: float = 0.5
    # How long past its timeout the delayed entry keeps workers off the execution.
    hold_margin_s: float = 60.0
    default_timeout_s: float = 300.0


class _Sink:
    """The engine's EventSink and CheckpointStore: buffers drafts, one flusher commits them
    in order (one fenced commit per round, so a burst of node events costs one round trip)."""

    def __init__(self, store: StateStore, lease: Lease) -> None:
        self._store = store
        self._lease = lease
        self._drafts: list[EventDraft] = []
        self._outputs: dict[str, str] = {}
        self._number = 0
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._flush_loop(), name="nodedrop-direct-commit")
        self.fenced_out = False
        self._closing = False

    async def emit(self, event: EngineEvent) -> None:
        self._drafts.append(event_draft(event))
        self._wake.set()

    async def save(self, node_id: str, outputs: NodeOutputs, event: EngineEvent) -> None:
        data = event.checkpoint_json or orjson.dumps(outputs).decode()
        self._outputs[node_id] = data
        self._drafts.append(event_draft(event))
        self._wake.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._commit(None)
            if self._closing:
                return

    async def _commit(self, transition: Transition | None, last: EventDraft | None = None) -> None:
        drafts, self._drafts = self._drafts, []
        outputs, self._outputs = self._outputs, {}
        if last is not None:
            drafts.append(last)
        if not drafts and not outputs and transition is None:
            return
        self._number += 1
        commit = Commit(self._lease, outputs, tuple(drafts), transition, self._number)
        delay = 0.05
        give_up = time.monotonic() + COMMIT_RETRY_S
        while True:
            try:
                (result,) = await self._store.commit([commit], _now_ms())
                break
            except _TRANSIENT as exc:
                # Numbered commits make the resend safe. Past the retry window
                # the error ends the run, which records it as failed.
                if time.monotonic() > give_up:
                    raise
                log.warning("direct commit failed; retrying", error=str(exc))
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)
        if not result.ok:
            self.fenced_out = True

    async def finish(self, transition: Transition, last: EventDraft) -> None:
        # Let a commit in flight complete (cancelling it could drop the drafts
        # it took), then send what is left with the end of the execution.
        self._closing = True
        self._wake.set()
        await self._task
        await self._commit(transition, last)

    async def abandon(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class DirectRunner:
    """Runs direct-mode executions as background tasks of this process."""

    def __init__(
        self,
        queue: JobQueue,
        state: StateStore,
        store_config: StoreConfig,
        *,
        engine: EngineConfig | None = None,
        options: DirectOptions | None = None,
        on_failure: FailureHook | None = None,
    ) -> None:
        self._queue = queue
        self._state = state
        self._keys: Keys = store_config.keys
        self._store_config = store_config
        self._engine = engine or EngineConfig()
        self._opts = options or DirectOptions()
        self._on_failure = on_failure
        self._running: dict[str, tuple[asyncio.Task[None], CancelToken]] = {}
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        return len(self._running)

    def start(self, record: ExecutionRecord, completed_outputs: Mapping[str, str]) -> None:
        token = CancelToken()
        task = asyncio.create_task(
            self._run(record, dict(completed_outputs), token), name=f"direct-{record.id}"
        )
        self._running[record.id] = (task, token)
        task.add_done_callback(lambda _t: self._running.pop(record.id, None))

    async def cancel(self, execution_id: str, tenant_id: str, reason: str) -> StoreStatus | None:
        """Flags the cancel in the store (any replica's run sees it); None when unknown there."""
        local = self._running.get(execution_id)
        if local is not None:
            local[1].cancel(reason or DEFAULT_CANCEL_REASON)
        try:
            return await self._state.cancel(execution_id, tenant_id, _now_ms(), reason)
        except (StoreNotFound, StorePermissionDenied):
            # Not in the store (lost, or never started), or another tenant's id.
            return None

    async def stop(self, grace_s: float = 5.0) -> None:
        """Cancels what still runs (each ends CANCELLED, recorded) and waits for the ends."""
        tasks = [t for t, _ in self._running.values()]
        for _, token in self._running.values():
            token.cancel("the API process is stopping")
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)

    async def _run(
        self, record: ExecutionRecord, completed: dict[str, str], token: CancelToken
    ) -> None:
        try:
            await self._execute(record, completed, token)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a background task must not die silently
            log.error("direct execution failed to run", execution_id=record.id, error=repr(exc))
            if self._on_failure is not None:
                # The store could not take it (Redis down, ...): say so in the
                # record now rather than leave it queued until recovery.
                await self._on_failure(record.id, f"the direct run could not proceed: {exc}")

    async def _execute(
        self, record: ExecutionRecord, completed: dict[str, str], token: CancelToken
    ) -> None:
        settings = _settings(record.definition_json)
        timeout_s = float(settings.get("timeout_s") or self._opts.default_timeout_s)
        now = _now_ms()
        spec = JobSpec(
            execution_id=record.id,
            tenant_id=record.tenant_id,
            workflow_id=record.workflow_id or "",
            workflow_json=record.definition_json,
            trigger_json=record.trigger_data_json,
            priority=record.priority,
            run_at_ms=now + int((timeout_s + self._opts.hold_margin_s) * 1000),
            max_attempts=1,
            timeout_s=timeout_s,
            completed_outputs=completed,
        )
        await self._queue.enqueue(spec, now)
        delivery = Delivery(
            partition=self._keys.partition(record.id),
            lane=self._store_config.lane_of(record.priority),
            entry_id="",
            execution_id=record.id,
            attempt=1,
            traceparent="",
            enqueued_at_ms=now,
        )
        (acquired,) = await self._state.acquire([delivery], self._opts.lease_ms, _now_ms())
        if acquired.lease is None or acquired.context is None:
            # Cancelled (or otherwise ended) between the enqueue and the lease.
            log.info("direct execution not started", execution_id=record.id, why=acquired.skipped)
            return
        await self._drive(acquired.lease, acquired.context, token)

    async def _drive(self, lease: Lease, ctx: ExecutionContext, token: CancelToken) -> None:
        sink = _Sink(self._state, lease)
        heartbeat = asyncio.create_task(self._heartbeat(lease, token, sink))
        try:
            status, data_json, error = await self._engine_run(ctx, sink, token)
        except BaseException:
            heartbeat.cancel()
            await sink.abandon()
            raise
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
        store_status, event_type = _ENDINGS[status]
        await sink.finish(
            Transition(store_status, failed_node=(error.node_id or "") if error else ""),
            EventDraft(event_type, "", data_json, event_error(error) if error else None),
        )

    async def _engine_run(
        self, ctx: ExecutionContext, sink: _Sink, token: CancelToken
    ) -> tuple[ExecutionStatus, str, ErrorInfo | None]:
        try:
            workflow = parse_workflow(orjson.loads(ctx.workflow_json))
            trigger: Any = orjson.loads(ctx.trigger_json) if ctx.trigger_json else None
            done = {node: orjson.loads(out) for node, out in ctx.outputs.items()}
            result = await run_workflow(
                workflow,
                execution=ExecutionInfo(ctx.execution_id, ctx.attempt, ctx.workflow_id),
                trigger_data=trigger,
                sink=sink,
                checkpoints=sink,
                completed=done,
                cancel=token,
                timeout_s=ctx.timeout_s,
                config=self._engine,
            )
        except (ValidationError, orjson.JSONDecodeError) as exc:
            info = ErrorInfo(str(exc), "invalid_workflow", None, retryable=False)
            return ExecutionStatus.FAILED, "", info
        if result.ok:
            return result.status, orjson.dumps(result.outputs).decode(), None
        return result.status, "", result.error

    async def _heartbeat(self, lease: Lease, token: CancelToken, sink: _Sink) -> None:
        # The cancel flag, not a lease renewal: renewing touches the job stream
        # entry, and a direct execution has none (nothing reclaims it either).
        while not token.cancelled:
            await asyncio.sleep(self._opts.heartbeat_s)
            try:
                (state,) = await self._state.states([lease.execution_id])
            except _TRANSIENT as exc:
                log.warning("direct cancel check failed", error=str(exc))
                continue
            if state is not None and state.cancel_requested:
                token.cancel(cancel_reason(state.cancel_error))
            elif state is None or sink.fenced_out:
                token.cancel("the execution's state in the store was lost")


def _settings(definition_json: str) -> Mapping[str, Any]:
    try:
        doc = orjson.loads(definition_json)
    except orjson.JSONDecodeError:
        return {}
    settings = doc.get("settings") if isinstance(doc, dict) else None
    return settings if isinstance(settings, dict) else {}


def _now_ms() -> int:
    return int(time.time() * 1000)
