"""Held jobs: a process runs an execution itself, through the store (direct mode).

The execution is stored with the store's own ports, exactly as a worker would
see it, so its events carry the same types and sequences as in queue mode
(EXECUTION_QUEUED from the enqueue, EXECUTION_STARTED from the acquire, node
events and the end from fenced commits):

1. ``JobQueue.enqueue`` with ``run_at`` a hold period in the future: the
   execution exists (context, QUEUED event) but sits on the delayed set, so
   no worker takes it while this process runs it;
2. ``StateStore.acquire`` with a delivery that has no stream entry takes the
   lease (RUNNING, STARTED event);
3. the attempt runs on this process's AttemptRunner, like a worker's.

When the hold period ends the scheduler's mover drops the id from the delayed
set, since the execution is no longer QUEUED.  A heartbeat reads the
execution's state and sees a cancel flag set through any process
(``StateStore.cancel``), so cancellation works from anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from nodedrop.common.logging import get_logger
from nodedrop.runtime.attempts import AttemptConfig, AttemptRunner
from nodedrop.runtime.ports import Store
from nodedrop.runtime.runner import Runner
from nodedrop.store import (
    DEFAULT_CANCEL_REASON,
    Delivery,
    ExecutionStatus,
    JobSpec,
)
from nodedrop.store import NotFound as StoreNotFound
from nodedrop.store import PermissionDenied as StorePermissionDenied
from nodedrop.store.config import StoreConfig

__all__ = ["FailureHook", "HeldOptions", "HeldRunner"]

log = get_logger("nodedrop.runtime.held")

# Called with (execution id, reason) when a run cannot start on an infrastructure error.
FailureHook = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class HeldOptions:
    lease_ms: int = 30_000
    # How often a run checks the store's cancel flag (set through any process).
    heartbeat_s: float = 0.5
    # How long past its timeout the delayed entry keeps workers off the execution.
    hold_margin_s: float = 60.0


class HeldRunner:
    """Runs held executions as background work of this process."""

    def __init__(
        self,
        store: Store,
        store_config: StoreConfig,
        runner: Runner,
        *,
        options: HeldOptions | None = None,
        on_failure: FailureHook | None = None,
        worker_id: str = "direct",
    ) -> None:
        self._store = store
        self._config = store_config
        self._opts = options or HeldOptions()
        self._on_failure = on_failure
        self._attempts = AttemptRunner(
            store,
            runner,
            AttemptConfig(
                worker_id=worker_id,
                concurrency=0,
                lease_s=self._opts.lease_ms / 1000,
                held=True,
            ),
        )
        # Executions between their start and their lease.
        self._starting: dict[str, asyncio.Task[None]] = {}
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def running(self) -> int:
        return len(self._starting) + len(self._attempts.jobs)

    def _ensure_started(self) -> None:
        if self._heartbeat is None:
            self._attempts.start()
            self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="held-heartbeat")

    def start(self, spec: JobSpec) -> None:
        """Holds ``spec``'s execution for this process and runs it in the background."""
        self._ensure_started()
        task = asyncio.create_task(self._hold(spec), name=f"held-{spec.execution_id}")
        self._starting[spec.execution_id] = task
        task.add_done_callback(lambda _t: self._starting.pop(spec.execution_id, None))

    async def _hold(self, spec: JobSpec) -> None:
        try:
            now = _now_ms()
            hold_s = spec.timeout_s + self._opts.hold_margin_s
            await self._store.enqueue(
                replace(spec, run_at_ms=now + int(hold_s * 1000), max_attempts=1), now
            )
            delivery = Delivery(
                partition=self._config.keys.partition(spec.execution_id),
                lane=self._config.lane_of(spec.priority),
                entry_id="",
                execution_id=spec.execution_id,
                attempt=spec.attempt,
                traceparent=spec.traceparent,
                enqueued_at_ms=now,
            )
            acquired = await self._store.acquire([delivery], self._opts.lease_ms, _now_ms())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a background task must not die silently
            log.error(
                "held execution could not start", execution_id=spec.execution_id, error=repr(exc)
            )
            if self._on_failure is not None:
                # The store could not take it (Redis down, ...): say so now
                # rather than leave it queued until recovery.
                await self._on_failure(
                    spec.execution_id, f"the direct run could not proceed: {exc}"
                )
            return
        if not self._attempts.begin(acquired):
            # Cancelled (or otherwise ended) between the enqueue and the lease.
            log.info(
                "held execution not started",
                execution_id=spec.execution_id,
                why=acquired[0].skipped,
            )

    async def cancel(
        self, execution_id: str, tenant_id: str, reason: str
    ) -> ExecutionStatus | None:
        """Flags the cancel in the store (any process's run sees it); None when unknown there."""
        job = self._attempts.jobs.get(execution_id)
        if job is not None:
            job.cancel.cancel(reason or DEFAULT_CANCEL_REASON)
        try:
            return await self._store.cancel(execution_id, tenant_id, _now_ms(), reason)
        except (StoreNotFound, StorePermissionDenied):
            # Not in the store (lost, or never started), or another tenant's id.
            return None

    async def stop(self, grace_s: float = 5.0, reason: str = "the process is stopping") -> None:
        """Cancels what still runs (each ends CANCELLED, recorded) and waits for the ends."""
        deadline = time.monotonic() + grace_s
        if self._starting:
            await asyncio.wait(list(self._starting.values()), timeout=grace_s)
        if self._heartbeat is None:
            return
        # No grace for the work itself: it is cancelled at once and ends CANCELLED.
        await self._attempts.stop(deadline, hand_back=False, reason=reason, work_share=0.0)
        self._heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._heartbeat

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._opts.heartbeat_s)
            await self._attempts.heartbeat(0.0)


def _now_ms() -> int:
    return int(time.time() * 1000)
