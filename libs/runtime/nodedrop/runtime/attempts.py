"""The attempt runner: runs leased attempts, commits their writes, ends them.

    begin(acquired) ──> one task per attempt (engine) ── checkpoints, events ──> Committer
                          │                                            (group commit)
    heartbeat(): renew leases (or, for held jobs, read the state) and pick up cancel flags
    cancel listener: the store's cancel notices (CancelNotices), where it has them

Hosts feed it leased attempts: the worker's Consumer from the job streams,
direct mode's HeldRunner from the job its process holds.  The runner counts
what runs and gives a slot back through ``on_slot_free`` as soon as an
attempt's engine is done (its end still commits).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson
import structlog

from nodedrop.common.logging import get_logger
from nodedrop.common.metrics import Metrics
from nodedrop.common.retry import Backoff
from nodedrop.common.tracing import trace_id_of
from nodedrop.runtime.committer import Committer
from nodedrop.runtime.endings import end_of
from nodedrop.runtime.job import Job
from nodedrop.runtime.ports import Store
from nodedrop.runtime.runner import Ending, InlineRunner, Runner, RunOutcome
from nodedrop.store import (
    Acquired,
    CancelNotices,
    EventDraft,
    EventError,
    ExecutionStatus,
    Unavailable,
    cancel_reason,
)

log = get_logger("nodedrop.runtime")

BACKOFF_BASE_S = 0.05
BACKOFF_MAX_S = 5.0
# Attempts a shared inline task runs between two chances for the committer to
# send. With slots given back as engines end, 8-12 beat 4 and 16 in the peers'
# throughput scenario (concurrency 50); bench/queue.py (concurrency 2000) is
# indifferent.
INLINE_GROUP = 12


@dataclass(frozen=True, slots=True)
class AttemptConfig:
    worker_id: str
    # Attempts whose engine is done may wait this many at once for their end to
    # commit while their slot already runs the next one.
    concurrency: int
    lease_s: float
    # Held jobs (direct mode) have no stream entry: the heartbeat reads their
    # state instead of renewing a lease, and a failure is never dead-lettered
    # (there is no retry and no failed queue for them).
    held: bool = False


class _JobSink:
    """Adapts one job's buffer to the Runner's JobSink."""

    __slots__ = ("_committer", "_job")

    def __init__(self, job: Job, committer: Committer) -> None:
        self._job = job
        self._committer = committer

    def emit(self, draft: EventDraft) -> None:
        self._job.events.append(draft)
        self._committer.touch(self._job)

    def checkpoint(self, node_id: str, outputs_json: str, completed: EventDraft) -> None:
        self._job.outputs[node_id] = outputs_json
        self._job.events.append(completed)
        self._committer.touch(self._job)


_METRIC_STATUS = {
    ExecutionStatus.COMPLETED: "completed",
    ExecutionStatus.FAILED: "failed",
    ExecutionStatus.CANCELLED: "cancelled",
    ExecutionStatus.TIMED_OUT: "timed_out",
    ExecutionStatus.RETRY_SCHEDULED: "retrying",
}


def _no_slot() -> None:
    return None


class AttemptRunner:
    def __init__(
        self,
        store: Store,
        runner: Runner,
        config: AttemptConfig,
        *,
        metrics: Metrics | None = None,
        on_slot_free: Callable[[], None] = _no_slot,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._runner = runner
        self._cfg = config
        self._on_slot_free = on_slot_free
        self.jobs: dict[str, Job] = {}
        # Attempts whose engine is done and whose slot went back before their
        # end committed (see _run); at most `concurrency` of them.
        self._ends_waiting = 0
        self._committer = Committer(store, self._refused)
        self._inline = runner.runs_inline if isinstance(runner, InlineRunner) else None
        self._listener: asyncio.Task[None] | None = None
        self.completed = 0
        self.failed = 0
        self.refusals = 0

    def start(self) -> None:
        self._committer.start()
        # A store without notices leaves cancels to the heartbeat's state check.
        if isinstance(self._store, CancelNotices):
            self._listener = asyncio.create_task(self._cancel_listener(self._store), name="cancel")

    # -- running ---------------------------------------------------------------

    def begin(self, acquired: Sequence[Acquired]) -> int:
        """Starts each leased attempt; returns how many started (each holds a slot)."""
        started = 0
        inline: list[Job] = []
        for a in acquired:
            if a.lease is None or a.context is None:
                continue
            job = Job(a.lease, a.context)
            self.jobs[job.execution_id] = job
            started += 1
            if self._inline is not None and self._inline(a.context):
                inline.append(job)
            else:
                # Unnamed: naming a task formats a string per execution.
                job.task = asyncio.create_task(self._run(job))
        if inline:
            # One task for the batch's attempts that never suspend: a task per
            # attempt cost more than running a noop workflow.
            shared = asyncio.create_task(self._run_inline(inline))
            for job in inline:
                job.task = shared
        if self._metrics is not None:
            self._metrics.executions_started.inc(started)
            self._metrics.worker_active_jobs.set(len(self.jobs))
        return started

    async def _run_inline(self, jobs: list[Job]) -> None:
        started = 0
        try:
            for job in jobs:
                started += 1
                try:
                    await self._run(job)
                except Exception:
                    # _run released the slot; the others of the batch still run.
                    log.exception("job failed outside its run", execution_id=job.execution_id)
                if started % INLINE_GROUP == 0:
                    # Let the committer send the ends gathered so far: Redis
                    # applies them while the rest of the batch runs, instead of
                    # all ends waiting for the batch's last attempt.
                    await asyncio.sleep(0)
        finally:
            # Cancelled before their turn: free the slots; the entries stay
            # pending and the reclaimer hands them out again.
            for job in jobs[started:]:
                self._release(job)

    async def _run(self, job: Job) -> None:
        ctx = job.ctx
        # Each job task has its own context: its log lines carry its execution id,
        # and its trace id when its job has a traceparent (with no span at all
        # when nothing exports spans).  Inline attempts share a task, so each
        # one sets or clears both.
        trace_id = trace_id_of(ctx.traceparent)
        if trace_id:
            structlog.contextvars.bind_contextvars(execution_id=job.execution_id, trace_id=trace_id)
        else:
            structlog.contextvars.bind_contextvars(execution_id=job.execution_id)
            structlog.contextvars.unbind_contextvars("trace_id")
        ending = False
        try:
            try:
                # The runner enforces the job timeout (ctx.timeout_s) itself.
                outcome = await self._runner.run(ctx, _JobSink(job, self._committer), job.cancel)
            except Exception as e:  # a fault of the runner itself, not of the workflow
                log.exception("runner crashed", execution_id=job.execution_id)
                outcome = RunOutcome(
                    Ending.FAILED, error=EventError(f"internal error: {e}", "INTERNAL", True)
                )
            if job.handed_back or job.fenced_out:
                await self._hand_back(job)
                return
            transition, events = end_of(ctx, outcome, dead_letter=not self._cfg.held)
            job.events.extend(events)

            # The task ends here; the commit round reports the end (no task waits).
            def ended(ok: bool) -> None:
                self._ended(job, transition.status, ok)

            self._committer.finish(job, transition, ended)
            ending = True
            if self._ends_waiting < self._cfg.concurrency:
                # Its engine is done: the slot takes the next attempt while this
                # end commits, so Redis applies ends while new work runs instead
                # of the two taking turns. The job keeps its lease (and its
                # heartbeat) until the end is committed.
                job.slot_returned = True
                self._ends_waiting += 1
                self._on_slot_free()
        finally:
            if not ending:
                self._release(job)

    def _ended(self, job: Job, status: ExecutionStatus, ok: bool) -> None:
        try:
            if ok and status is ExecutionStatus.COMPLETED:
                self.completed += 1
            elif ok:
                self.failed += status is not ExecutionStatus.CANCELLED
            if ok and self._metrics is not None:
                self._metrics.observe_execution(
                    _METRIC_STATUS[status], time.monotonic() - job.started
                )
        finally:
            self._release(job)

    def _release(self, job: Job) -> None:
        # A newer attempt of the same execution (reclaimed back to this worker)
        # may hold the slot in the table by now: remove only this job.
        if self.jobs.get(job.execution_id) is job:
            del self.jobs[job.execution_id]
        if job.slot_returned:
            self._ends_waiting -= 1
        else:
            self._on_slot_free()
        if self._metrics is not None:
            self._metrics.worker_active_jobs.set(len(self.jobs))

    async def _hand_back(self, job: Job) -> None:
        if job.fenced_out:
            return
        # Checkpoint what finished, then give the attempt back with a new fence.
        # A held job has no stream entry to go back to: what finished is kept,
        # and the execution stays where its last commit left it.
        if await self._committer.end(job, None) and not self._cfg.held:
            with contextlib.suppress(Unavailable):
                await self._store.release([job.lease])

    def _refused(self, job: Job) -> None:
        self.refusals += 1
        if self._metrics is not None:
            self._metrics.fence_refusals.inc()
        log.warning("fence refused a write; another worker owns it", execution_id=job.execution_id)
        job.cancel.cancel("fenced")

    # -- stopping --------------------------------------------------------------

    async def stop(
        self, deadline: float, *, hand_back: bool, reason: str = "drain", work_share: float = 0.8
    ) -> int:
        """Running attempts get ``work_share`` of the time left before ``deadline``
        (monotonic); then, with ``hand_back``, what still runs is checkpointed and handed back,
        else it is cancelled for ``reason`` and ends CANCELLED.  Returns how many
        were stopped that way."""
        running = [j.task for j in self.jobs.values() if j.task is not None]
        # Keep a margin of the grace for the hand-back itself.
        budget = max(0.0, (deadline - time.monotonic()) * work_share)
        if running:
            await asyncio.wait(running, timeout=budget)
        left = [j for j in self.jobs.values() if j.task is not None and not j.task.done()]
        for job in left:
            job.handed_back = hand_back
            job.cancel.cancel(reason)
        tasks = [j.task for j in left if j.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=max(0.1, deadline - time.monotonic()))
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        try:
            await asyncio.wait_for(self._committer.stop(), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            log.warning("stop: commits still pending at the end of the grace period")
        return len(left)

    # -- heartbeat and cancel --------------------------------------------------

    async def heartbeat(self, min_age_s: float) -> None:
        """One round: extend the leases of attempts older than ``min_age_s`` (younger
        ones were leased moments ago) and pick up their cancel flags."""
        now = time.monotonic()
        jobs = [
            j for j in list(self.jobs.values()) if not j.fenced_out and now - j.started >= min_age_s
        ]
        if not jobs:
            return
        if self._cfg.held:
            await self._check_held(jobs)
            return
        lease_ms = int(self._cfg.lease_s * 1000)
        try:
            renewals = await self._store.renew(
                [j.lease for j in jobs], lease_ms, _now_ms(), self._cfg.worker_id
            )
        except Unavailable as e:
            log.warning("heartbeat failed", error=str(e))
            return
        except Exception:
            log.exception("heartbeat failed")
            return
        for job, r in zip(jobs, renewals, strict=True):
            if not r.ok and not job.fenced_out:
                job.fenced_out = True
                self._refused(job)
            elif r.cancel_requested:
                job.cancel.cancel(cancel_reason(r.cancel_error))

    async def _check_held(self, jobs: list[Job]) -> None:
        # The cancel flag, not a lease renewal: renewing touches the job stream
        # entry, and a held job has none (nothing reclaims it either).
        try:
            states = await self._store.states([j.execution_id for j in jobs])
        except Unavailable as e:
            log.warning("cancel check failed", error=str(e))
            return
        except Exception:
            log.exception("cancel check failed")
            return
        for job, state in zip(jobs, states, strict=True):
            if state is not None and state.cancel_requested:
                job.cancel.cancel(cancel_reason(state.cancel_error))
            elif state is None:
                job.cancel.cancel("the execution's state in the store was lost")

    async def _cancel_listener(self, source: CancelNotices) -> None:
        backoff = Backoff(BACKOFF_BASE_S, BACKOFF_MAX_S)
        while True:
            subscribed = time.monotonic()
            try:
                async for execution_id, error in source.cancel_notices():
                    job = self.jobs.get(execution_id)
                    if job is not None:
                        job.cancel.cancel(cancel_reason(_parse_error(error)))
            except Unavailable as e:
                log.warning("cancel notices lost", error=str(e))
            except Exception:
                # A bug must not end the listener silently; the heartbeat still checks.
                log.exception("cancel listener failed")
            if time.monotonic() - subscribed > BACKOFF_MAX_S:
                # It was up for a while: this loss is a new outage, not the same one.
                backoff.reset()
            await backoff.wait()


def _parse_error(text: str) -> EventError | None:
    try:
        return EventError.from_json(text) if text else None
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


def _now_ms() -> int:
    return int(time.time() * 1000)
