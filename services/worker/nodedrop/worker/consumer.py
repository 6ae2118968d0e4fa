"""The consumer: reads job batches, leases them, runs them in slots, ends them.

    read loop ──batch──> acquire (one pipeline) ──> one task per attempt (engine)
                                                        │ checkpoints, events
    heartbeat loop: renew leases, pick up cancel flags  v
    cancel listener: pub/sub nudge                   Committer (group commit)

Stopping (SIGTERM or DrainWorker): the read loop ends at once; running attempts
get the grace period; what still runs then is checkpointed and handed back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import orjson
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from nodedrop.common.logging import get_logger
from nodedrop.common.metrics import Metrics
from nodedrop.common.tracing import trace_id_of
from nodedrop.store import (
    Acquired,
    Delivery,
    EventDraft,
    EventError,
    EventType,
    ExecutionStatus,
    JobQueue,
    StateStore,
    Transition,
    cancel_reason,
)
from nodedrop.store.redis_store import RedisStore
from nodedrop.worker.committer import Committer
from nodedrop.worker.job import Job
from nodedrop.worker.runner import Ending, InlineRunner, Runner, RunOutcome

log = get_logger("nodedrop.worker")

_TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)
_BACKOFF_MAX_S = 5.0
# Attempts a shared inline task runs between two chances for the committer to
# send. With slots given back as engines end, 8-12 beat 4 and 16 in the peers'
# throughput scenario (concurrency 50); bench/queue.py (concurrency 2000) is
# indifferent.
_INLINE_GROUP = 12


class Store(JobQueue, StateStore, Protocol):
    """What the consumer needs of the store: its queue and its state."""


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    worker_id: str
    concurrency: int
    lease_s: float
    heartbeat_s: float
    read_block_s: float
    read_batch: int
    cancel_channel: str = ""


@dataclass(frozen=True, slots=True)
class Counters:
    consuming: bool
    draining: bool
    active: int
    completed: int
    failed: int
    fence_refusals: int


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


class Consumer:
    def __init__(
        self,
        store: Store,
        runner: Runner,
        config: ConsumerConfig,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._runner = runner
        self._cfg = config
        self._jobs: dict[str, Job] = {}
        self._backlog: deque[Delivery] = deque()
        self._free = config.concurrency
        # Attempts whose engine is done and whose slot went back before their
        # end committed (see _run); at most `concurrency` of them.
        self._ends_waiting = 0
        self._slot_freed = asyncio.Event()
        self._committer = Committer(store, self._refused)
        self._inline = runner.runs_inline if isinstance(runner, InlineRunner) else None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._consuming = False
        # The last read found work: refill with take (no BLOCK) until one comes back empty.
        self._busy = False
        self._completed = 0
        self._failed = 0
        self._refusals = 0
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self._committer.start()
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="read"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
        ]
        if self._cfg.cancel_channel and isinstance(self._store, RedisStore):
            self._tasks.append(asyncio.create_task(self._cancel_listener(), name="cancel"))

    def counters(self) -> Counters:
        return Counters(
            consuming=self._consuming,
            draining=self._stopping.is_set(),
            active=len(self._jobs),
            completed=self._completed,
            failed=self._failed,
            fence_refusals=self._refusals,
        )

    def begin_drain(self) -> None:
        """Stop reading at once; running attempts go on."""
        self._stopping.set()
        self._consuming = False

    async def stop(self, grace_s: float) -> None:
        """Drain: no read after this, running work gets ``grace_s``, the rest is handed back."""
        if self._stopped:
            return
        self._stopped = True
        self.begin_drain()
        deadline = time.monotonic() + grace_s
        read = self._tasks[0] if self._tasks else None
        if read is not None:
            # The loop sees the drain when its blocking read returns and gives back
            # what that read got; cancel only a read that outlives its BLOCK (it
            # could otherwise be cut between a lease and the start of the job).
            self._slot_freed.set()
            done, _ = await asyncio.wait([read], timeout=self._cfg.read_block_s + 0.5)
            if not done:
                read.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await read
        # Entries read but never started go back to the stream for others.
        if self._backlog:
            with contextlib.suppress(*_TRANSIENT):
                await self._store.requeue(list(self._backlog))
            self._backlog.clear()
        running = [j.task for j in self._jobs.values() if j.task is not None]
        # Keep a margin of the grace for the hand-back itself.
        budget = max(0.0, (deadline - time.monotonic()) * 0.8)
        if running:
            await asyncio.wait(running, timeout=budget)
        left = [j for j in self._jobs.values() if j.task is not None and not j.task.done()]
        for job in left:
            job.handed_back = True
            job.cancel.cancel("drain")
        tasks = [j.task for j in left if j.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=max(0.1, deadline - time.monotonic()))
        for t in self._tasks[1:]:
            t.cancel()
        for t in self._tasks[1:]:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        try:
            await asyncio.wait_for(self._committer.stop(), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            log.warning("drain: commits still pending at the end of the grace period")
        log.info("drained", completed=self._completed, handed_back=len(left))

    # -- reading ---------------------------------------------------------------

    async def _read_loop(self) -> None:
        delay = 0.05
        block_ms = max(1, int(self._cfg.read_block_s * 1000))
        while not self._stopping.is_set():
            if self._free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                if self._backlog:
                    batch = [
                        self._backlog.popleft() for _ in range(min(self._free, len(self._backlog)))
                    ]
                elif self._busy:
                    # Work was waiting a moment ago: read and lease in one round
                    # trip, without BLOCK (an empty take falls back to the read).
                    await self._take()
                    delay = 0.05
                    continue
                else:
                    count = min(self._free, self._cfg.read_batch)
                    self._consuming = True
                    got = await self._store.read_jobs(self._cfg.worker_id, count, block_ms)
                    if self._stopping.is_set():
                        # Read while the drain began: give it back untouched.
                        await self._store.requeue(got)
                        return
                    batch, rest = got[: self._free], got[self._free :]
                    self._backlog.extend(rest)
                    # A full read suggests more is waiting, and so does a read of
                    # several entries: fair admission keeps a busy tenant's
                    # backlog out of the streams, so reads come back partial
                    # while it drains.  After a single entry the next read blocks
                    # again, so an idle worker answers a new job from its
                    # blocking read at once.
                    self._busy = len(got) >= count or len(got) > 1
                if batch:
                    await self._start(batch)
                delay = 0.05
            except _TRANSIENT as e:
                self._consuming = False
                log.warning("redis unavailable, retrying", error=str(e), delay_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)
            except RedisError as e:
                # A server-side refusal (OOM, READONLY, ...): back off, never crash-loop.
                self._consuming = False
                log.error("redis error in the read loop", error=str(e), delay_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)
            except Exception:
                # A bug must not stop consumption silently: say so, back off, go on.
                self._consuming = False
                log.exception("read loop failed", delay_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)

    async def _take(self) -> None:
        count = min(self._free, self._cfg.read_batch)
        lease_ms = int(self._cfg.lease_s * 1000)
        acquired = await self._store.take(self._cfg.worker_id, count, lease_ms, _now_ms())
        self._busy = bool(acquired)
        if self._stopping.is_set():
            # Leased while the drain began: hand them back for another worker.
            leases = [a.lease for a in acquired if a.lease is not None]
            if leases:
                await self._store.release(leases)
            return
        self._begin(acquired)

    async def _start(self, batch: list[Delivery]) -> None:
        now = _now_ms()
        lease_ms = int(self._cfg.lease_s * 1000)
        self._begin(await self._store.acquire(batch, lease_ms, now, self._cfg.worker_id))

    def _begin(self, acquired: list[Acquired]) -> None:
        started = 0
        inline: list[Job] = []
        for a in acquired:
            if a.lease is None or a.context is None:
                continue
            job = Job(a.lease, a.context)
            self._jobs[job.execution_id] = job
            self._free -= 1
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
            self._metrics.worker_active_jobs.set(len(self._jobs))

    # -- running ---------------------------------------------------------------

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
                if started % _INLINE_GROUP == 0:
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
            transition, events = self._ending(job, outcome)
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
                self._return_slot()
        finally:
            if not ending:
                self._release(job)

    def _ended(self, job: Job, status: ExecutionStatus, ok: bool) -> None:
        try:
            if ok and status is ExecutionStatus.COMPLETED:
                self._completed += 1
            elif ok:
                self._failed += status is not ExecutionStatus.CANCELLED
            if ok and self._metrics is not None:
                self._metrics.observe_execution(
                    _METRIC_STATUS[status], time.monotonic() - job.started
                )
        finally:
            self._release(job)

    def _release(self, job: Job) -> None:
        # A newer attempt of the same execution (reclaimed back to this worker)
        # may hold the slot in the table by now: remove only this job.
        if self._jobs.get(job.execution_id) is job:
            del self._jobs[job.execution_id]
        if job.slot_returned:
            self._ends_waiting -= 1
        else:
            self._return_slot()
        if self._metrics is not None:
            self._metrics.worker_active_jobs.set(len(self._jobs))

    def _return_slot(self) -> None:
        self._free += 1
        self._slot_freed.set()

    async def _hand_back(self, job: Job) -> None:
        if job.fenced_out:
            return
        # Checkpoint what finished, then give the attempt back with a new fence.
        if await self._committer.end(job, None):
            with contextlib.suppress(*_TRANSIENT):
                await self._store.release([job.lease])

    def _ending(self, job: Job, outcome: RunOutcome) -> tuple[Transition, list[EventDraft]]:
        ctx = job.ctx
        if outcome.ending is Ending.TIMED_OUT:
            err = outcome.error or EventError(
                f"execution timed out after {ctx.timeout_s:g}s", "execution_timeout", False
            )
            return Transition(ExecutionStatus.TIMED_OUT), [
                EventDraft(EventType.EXECUTION_TIMED_OUT, outcome.failed_node, error=err)
            ]
        if outcome.ending is Ending.CANCELLED:
            return Transition(ExecutionStatus.CANCELLED), [
                EventDraft(EventType.EXECUTION_CANCELLED, error=outcome.error)
            ]
        if outcome.ending is Ending.COMPLETED:
            return Transition(ExecutionStatus.COMPLETED), [
                EventDraft(EventType.EXECUTION_COMPLETED, data_json=outcome.result_json or "{}")
            ]
        err = outcome.error or EventError("execution failed", "FAILED", True)
        if err.retryable and ctx.attempts_left > 0:
            delay = ctx.backoff_s * 2 ** (ctx.round_attempt - 1)
            data = orjson.dumps({"delay_s": delay}).decode()
            retry_at = _now_ms() + int(delay * 1000)
            return Transition(ExecutionStatus.RETRY_SCHEDULED, retry_at_ms=retry_at), [
                EventDraft(EventType.EXECUTION_RETRYING, outcome.failed_node, data, err)
            ]
        failed = [EventDraft(EventType.EXECUTION_FAILED, outcome.failed_node, error=err)]
        if not err.retryable:
            # A deliberate failure (stop_and_error, invalid workflow): retrying cannot help.
            return Transition(ExecutionStatus.FAILED), failed
        return (
            Transition(
                ExecutionStatus.FAILED,
                dead_letter_reason=err.message,
                failed_node=outcome.failed_node,
            ),
            failed,
        )

    def _refused(self, job: Job) -> None:
        self._refusals += 1
        if self._metrics is not None:
            self._metrics.fence_refusals.inc()
        log.warning("fence refused a write; another worker owns it", execution_id=job.execution_id)
        job.cancel.cancel("fenced")

    # -- heartbeat and cancel --------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        lease_ms = int(self._cfg.lease_s * 1000)
        while True:
            await asyncio.sleep(self._cfg.heartbeat_s)
            now = time.monotonic()
            if self._backlog:
                # Read but not started yet: keep the reclaimer off them.
                try:
                    await self._store.touch(list(self._backlog), self._cfg.worker_id)
                except (*_TRANSIENT, RedisError) as e:
                    log.warning("heartbeat failed", error=str(e))
            # Jobs younger than one interval were leased moments ago.
            jobs = [
                j
                for j in list(self._jobs.values())
                if not j.fenced_out and now - j.started >= self._cfg.heartbeat_s * 0.5
            ]
            if not jobs:
                continue
            try:
                renewals = await self._store.renew(
                    [j.lease for j in jobs], lease_ms, _now_ms(), self._cfg.worker_id
                )
            except (*_TRANSIENT, RedisError) as e:
                log.warning("heartbeat failed", error=str(e))
                continue
            except Exception:
                log.exception("heartbeat failed")
                continue
            for job, r in zip(jobs, renewals, strict=True):
                if not r.ok and not job.fenced_out:
                    job.fenced_out = True
                    self._refused(job)
                elif r.cancel_requested:
                    job.cancel.cancel(cancel_reason(r.cancel_error))

    async def _cancel_listener(self) -> None:
        assert isinstance(self._store, RedisStore)
        delay = 0.05
        while True:
            pubsub = self._store.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._cfg.cancel_channel)
                delay = 0.05
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is None:
                        continue
                    data = msg.get("data")
                    text = data.decode() if isinstance(data, bytes) else str(data)
                    # "<execution id>\n<error JSON>" (the error is absent in older messages).
                    execution_id, _, error = text.partition("\n")
                    job = self._jobs.get(execution_id)
                    if job is not None:
                        job.cancel.cancel(cancel_reason(_parse_error(error)))
            except (*_TRANSIENT, RedisError) as e:
                log.warning("cancel listener lost redis", error=str(e), delay_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]


def _parse_error(text: str) -> EventError | None:
    try:
        return EventError.from_json(text) if text else None
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


def _now_ms() -> int:
    return int(time.time() * 1000)
