"""In-memory adapter of the store's ports (ports.Store), for direct mode and
``nodedrop dev`` without Redis.  One process only; same semantics as the Redis
adapter (the conformance suite runs on both), including fencing, so the worker
code cannot tell them apart.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

from nodedrop.store.config import StoreConfig
from nodedrop.store.errors import InvalidJob, NotFound, PermissionDenied
from nodedrop.store.model import (
    TERMINAL_STATUSES,
    Acquired,
    Commit,
    CommitResult,
    Delivery,
    EnqueueResult,
    ExecutionContext,
    ExecutionStatus,
    FailedJob,
    JobSpec,
    LaneStats,
    Lease,
    QueueStats,
    ReclaimReport,
    Renewal,
    StateSnapshot,
    TailEntry,
    cancel_error,
)
from nodedrop.store.ports import TailCursor
from nodedrop.store.records import EventDraft, EventError, EventRecord, EventType
from nodedrop.store.validation import validate_spec

S = ExecutionStatus


@dataclass
class _Exec:
    spec: JobSpec
    lane: int
    status: ExecutionStatus = S.QUEUED
    attempt: int = 1
    attempt_base: int = 1
    fence: int = 0
    cancel: bool = False
    cancel_error: EventError | None = None
    reclaims: int = 0
    commit_number: int = 0
    outputs: dict[str, str] = field(default_factory=dict)
    events: list[EventRecord] = field(default_factory=list)
    fail_reason: str = ""
    fail_node: str = ""
    fail_time: int = 0
    expires_at: float = 0.0


@dataclass
class _Entry:
    entry_id: str
    execution_id: str
    attempt: int
    traceparent: str
    enqueued_at: int
    # Set once delivered: (consumer, monotonic ms of the last delivery or claim).
    owner: str = ""
    touched_ms: float = 0.0


class _Stream:
    def __init__(self) -> None:
        self.entries: OrderedDict[str, _Entry] = OrderedDict()
        self.undelivered: OrderedDict[str, _Entry] = OrderedDict()


class MemoryStore:
    def __init__(self, config: StoreConfig | None = None) -> None:
        self.config = config or StoreConfig()
        self._k = self.config.keys
        self._execs: dict[str, _Exec] = {}
        self._streams = {
            (p, lane): _Stream() for lane in self.config.lanes for p in range(self._k.partitions)
        }
        self._delayed: dict[str, int] = {}
        self._failed: dict[str, int] = {}
        self._completed = 0
        self._ids = itertools.count(1)
        self._events: list[list[tuple[str, EventRecord]]] = [[] for _ in range(self._k.partitions)]
        self._groups: dict[str, list[int]] = {}
        self._changed = asyncio.Event()
        # Fairness (docs/redis-layout.md): per (partition, tenant) the executions
        # in the streams, and the parked ones as (lane rank, arrival ms, id): the
        # order Redis keeps them in (score, then member).
        self._admitted: dict[tuple[int, str], set[str]] = {}
        self._parked: dict[tuple[int, str], list[tuple[int, int, str]]] = {}
        self._schedules: dict[str, str] = {}
        # One queue per cancel_notices iterator.
        self._cancel_subscribers: set[asyncio.Queue[tuple[str, str]]] = set()

    async def close(self) -> None:
        """Nothing to release; the data stays for the other services of the process."""

    # -- helpers ----------------------------------------------------------------

    def _live(self, execution_id: str) -> _Exec | None:
        e = self._execs.get(execution_id)
        if e is not None and e.expires_at and e.expires_at < time.monotonic():
            del self._execs[execution_id]
            return None
        return e

    def _next_id(self) -> str:
        return f"{int(time.time() * 1000)}-{next(self._ids)}"

    def _push(self, e: _Exec, now_ms: int) -> None:
        p = self._k.partition(e.spec.execution_id)
        entry = _Entry(self._next_id(), e.spec.execution_id, e.attempt, e.spec.traceparent, now_ms)
        s = self._streams[(p, e.lane)]
        s.entries[entry.entry_id] = entry
        s.undelivered[entry.entry_id] = entry
        self._wake()

    def _admit(self, e: _Exec, now_ms: int) -> bool:
        """Into the stream when the tenant has a free place, else parked (a tenant
        with parked jobs has none: see lua/_fair.lua)."""
        cap = self.config.tenant_cap
        if not cap:
            self._push(e, now_ms)
            return True
        key = (self._k.partition(e.spec.execution_id), e.spec.tenant_id)
        admitted = self._admitted.setdefault(key, set())
        if len(admitted) < cap:
            admitted.add(e.spec.execution_id)
            self._push(e, now_ms)
            return True
        rank = self.config.lane_rank(e.lane)
        bisect.insort(self._parked.setdefault(key, []), (rank, now_ms, e.spec.execution_id))
        return False

    def _promote(self, key: tuple[int, str], now_ms: int, hold: bool) -> bool:
        """The tenant's next parked job that still waits, into its stream."""
        backlog = self._parked.get(key, [])
        while backlog:
            x = backlog.pop(0)[2]
            e = self._live(x)
            if e is not None and e.status in (S.QUEUED, S.RETRY_SCHEDULED):
                if hold:
                    self._admitted.setdefault(key, set()).add(x)
                self._push(e, now_ms)
                return True
        return False

    def _fill(self, key: tuple[int, str], now_ms: int) -> int:
        """Promote the tenant's parked jobs while it has room (all without a cap)."""
        cap = self.config.tenant_cap
        moved = 0
        while (not cap or len(self._admitted.get(key, ())) < cap) and self._promote(
            key, now_ms, bool(cap)
        ):
            moved += 1
        return moved

    def _leave(self, e: _Exec, now_ms: int) -> None:
        if not self.config.tenant_cap:
            return
        key = (self._k.partition(e.spec.execution_id), e.spec.tenant_id)
        admitted = self._admitted.get(key)
        if admitted is not None and e.spec.execution_id in admitted:
            admitted.discard(e.spec.execution_id)
            self._promote(key, now_ms, True)

    def _unpark(self, e: _Exec) -> None:
        key = (self._k.partition(e.spec.execution_id), e.spec.tenant_id)
        backlog = self._parked.get(key)
        if backlog:
            backlog[:] = [b for b in backlog if b[2] != e.spec.execution_id]

    def _sweep(self, now_ms: int) -> int:
        """The scheduler's pass: tenants with a backlog get their free places
        filled, after places of ended or vanished executions are given back."""
        cap = self.config.tenant_cap
        moved = 0
        for key in list(self._parked):
            if not self._parked[key]:
                del self._parked[key]
                continue
            admitted = self._admitted.get(key, set())
            if cap and len(admitted) >= cap:
                for x in list(admitted):
                    e = self._live(x)
                    if e is None or e.status in TERMINAL_STATUSES:
                        admitted.discard(x)
            moved += self._fill(key, now_ms)
        return moved

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _emit(self, e: _Exec, now_ms: int, d: EventDraft) -> int:
        seq = len(e.events) + 1
        rec = EventRecord(
            execution_id=e.spec.execution_id,
            sequence=seq,
            type=d.type,
            time_ms=now_ms,
            workflow_id=e.spec.workflow_id,
            tenant_id=e.spec.tenant_id,
            node_id=d.node_id,
            attempt=e.attempt,
            data_json=d.data_json,
            error=d.error,
        )
        e.events.append(rec)
        p = self._k.partition(e.spec.execution_id)
        log = self._events[p]
        log.append((self._next_id(), rec))
        if len(log) > self.config.events_maxlen:
            del log[: len(log) - self.config.events_maxlen]
        self._wake()
        return seq

    def _ack(self, partition: int, lane: int, entry_id: str) -> None:
        s = self._streams[(partition, lane)]
        s.entries.pop(entry_id, None)
        s.undelivered.pop(entry_id, None)

    def _finish(self, e: _Exec, status: ExecutionStatus) -> None:
        e.status = status
        # Nothing resumes a terminal execution: its checkpoints go (as in Redis).
        e.outputs.clear()
        if status is S.COMPLETED:
            self._completed += 1
        e.expires_at = time.monotonic() + self.config.completion_ttl_s

    def _dead_letter(self, e: _Exec, now_ms: int, reason: str, node: str) -> None:
        e.status = S.FAILED
        e.fail_reason, e.fail_node, e.fail_time = reason, node, now_ms
        self._failed[e.spec.execution_id] = now_ms

    # -- JobQueue ---------------------------------------------------------------

    async def enqueue(self, spec: JobSpec, now_ms: int) -> EnqueueResult:
        validate_spec(spec)
        known = self._live(spec.execution_id)
        if known is not None:
            return EnqueueResult(spec.execution_id, known.status, False)
        e = _Exec(spec, self.config.lane_of(spec.priority), outputs=dict(spec.completed_outputs))
        e.attempt, e.attempt_base = spec.attempt, spec.attempt_base
        e.expires_at = time.monotonic() + self.config.state_ttl_s
        self._execs[spec.execution_id] = e
        self._emit(e, now_ms, EventDraft(EventType.EXECUTION_QUEUED))
        if spec.run_at_ms > now_ms:
            self._delayed[spec.execution_id] = spec.run_at_ms
        else:
            self._admit(e, now_ms)
        return EnqueueResult(spec.execution_id, S.QUEUED, True)

    async def enqueue_many(self, specs: Sequence[JobSpec], now_ms: int) -> list[EnqueueResult]:
        return [await self.enqueue(spec, now_ms) for spec in specs]

    async def read_jobs(self, consumer: str, count: int, block_ms: int) -> list[Delivery]:
        deadline = time.monotonic() + block_ms / 1000
        while True:
            out = self._take(consumer, count)
            remaining = deadline - time.monotonic()
            if out or remaining <= 0 or not block_ms:
                return out
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return self._take(consumer, count)

    def _take(self, consumer: str, count: int, cap: int | None = None) -> list[Delivery]:
        out: list[Delivery] = []
        now = time.monotonic() * 1000
        per_stream = max(1, -(-count // len(self._streams)))
        limit = cap if cap is not None else len(self._streams) * per_stream
        for lane in self.config.lanes:
            for p in range(self._k.partitions):
                s = self._streams[(p, lane)]
                taken = 0
                while s.undelivered and taken < per_stream and len(out) < limit:
                    _, entry = s.undelivered.popitem(last=False)
                    entry.owner, entry.touched_ms = consumer, now
                    out.append(
                        Delivery(
                            p,
                            lane,
                            entry.entry_id,
                            entry.execution_id,
                            entry.attempt,
                            entry.traceparent,
                            entry.enqueued_at,
                        )
                    )
                    taken += 1
        return out

    async def touch(self, deliveries: Sequence[Delivery], consumer: str) -> None:
        mono = time.monotonic() * 1000
        for d in deliveries:
            entry = self._streams[(d.partition, d.lane)].entries.get(d.entry_id)
            if entry is not None:
                entry.owner, entry.touched_ms = consumer, mono

    async def requeue(self, deliveries: Sequence[Delivery]) -> int:
        n = 0
        for d in deliveries:
            s = self._streams[(d.partition, d.lane)]
            entry = s.entries.pop(d.entry_id, None)
            if entry is None or d.entry_id in s.undelivered:
                continue
            fresh = _Entry(
                self._next_id(), d.execution_id, d.attempt, d.traceparent, d.enqueued_at_ms
            )
            s.entries[fresh.entry_id] = fresh
            s.undelivered[fresh.entry_id] = fresh
            n += 1
        if n:
            self._wake()
        return n

    async def release(self, leases: Sequence[Lease]) -> list[bool]:
        out = []
        for lz in leases:
            e = self._live(lz.execution_id)
            if e is None or e.fence != lz.fence or e.status is not S.RUNNING:
                out.append(False)
                continue
            e.fence += 1
            e.status = S.QUEUED
            self._ack(lz.partition, lz.lane, lz.entry_id)
            self._push(e, _now_ms())
            out.append(True)
        return out

    async def move_due(self, now_ms: int, limit: int) -> int:
        due = sorted((t, x) for x, t in self._delayed.items() if t <= now_ms)[:limit]
        moved = 0
        for _, x in due:
            del self._delayed[x]
            e = self._live(x)
            if e is not None and e.status in (S.QUEUED, S.RETRY_SCHEDULED):
                moved += self._admit(e, now_ms)
        return moved + self._sweep(now_ms)

    async def reclaim(self, min_idle_ms: int, max_reclaims: int, limit: int) -> ReclaimReport:
        now = time.monotonic() * 1000
        requeued = dead = dropped = 0
        for (p, lane), s in self._streams.items():
            stalled = [
                en for en in s.entries.values() if en.owner and now - en.touched_ms >= min_idle_ms
            ][:limit]
            for en in stalled:
                self._ack(p, lane, en.entry_id)
                e = self._live(en.execution_id)
                if e is None or e.status in TERMINAL_STATUSES or e.attempt != en.attempt:
                    dropped += 1
                    continue
                e.reclaims += 1
                if e.reclaims > max_reclaims:
                    e.fence += 1
                    reason = f"stalled: lease expired {e.reclaims} times"
                    err = EventError(reason, "STALLED", False)
                    self._emit(e, _now_ms(), EventDraft(EventType.EXECUTION_FAILED, error=err))
                    self._dead_letter(e, _now_ms(), reason, "")
                    self._leave(e, _now_ms())
                    dead += 1
                else:
                    self._push(e, _now_ms())
                    requeued += 1
        return ReclaimReport(requeued, dead, dropped)

    async def trim(self) -> int:
        # Acknowledged entries are removed at once here.
        return 0

    async def pending(self) -> int:
        return sum(len(s.entries) - len(s.undelivered) for s in self._streams.values())

    async def list_failed(self, limit: int, after: str) -> tuple[list[FailedJob], str]:
        if limit <= 0:
            raise InvalidJob("page_size", "must be positive")
        after_key = _parse_token(after)
        ordered = sorted((t, x) for x, t in self._failed.items() if (t, x) > after_key)
        page = ordered[:limit]
        jobs = []
        for t, x in page:
            e = self._live(x)
            jobs.append(
                FailedJob(
                    x,
                    e.spec.tenant_id if e else "",
                    e.spec.workflow_id if e else "",
                    e.attempt if e else 0,
                    e.fail_reason if e else "state expired",
                    e.fail_node if e else "",
                    t,
                )
            )
        token = f"{page[-1][0]}:{page[-1][1]}" if len(ordered) > limit else ""
        return jobs, token

    async def retry_failed(self, execution_ids: Sequence[str], all_: bool, now_ms: int) -> int:
        ids = list(self._failed) if all_ else list(execution_ids)
        n = 0
        for x in ids:
            if self._failed.pop(x, None) is None:
                continue
            e = self._live(x)
            if e is None or e.status is not S.FAILED:
                continue
            e.attempt += 1
            e.attempt_base = e.attempt
            e.status, e.reclaims, e.cancel, e.cancel_error = S.QUEUED, 0, False, None
            e.fail_reason, e.fail_node, e.fail_time = "", "", 0
            e.fence += 1
            e.expires_at = time.monotonic() + self.config.state_ttl_s
            self._emit(e, now_ms, EventDraft(EventType.EXECUTION_QUEUED))
            self._admit(e, now_ms)
            n += 1
        return n

    async def purge_failed(self, execution_ids: Sequence[str], all_: bool) -> int:
        ids = list(self._failed) if all_ else list(execution_ids)
        n = 0
        for x in ids:
            if self._failed.pop(x, None) is not None:
                e = self._live(x)
                if e is not None:
                    e.expires_at = time.monotonic() + self.config.completion_ttl_s
                n += 1
        return n

    async def stats(self, now_ms: int) -> QueueStats:
        waiting = dict.fromkeys(self.config.lanes, 0)
        oldest = dict.fromkeys(self.config.lanes, 0)
        active = 0
        for (_, lane), s in self._streams.items():
            waiting[lane] += len(s.undelivered)
            active += len(s.entries) - len(s.undelivered)
            if s.undelivered:
                first = next(iter(s.undelivered.values()))
                oldest[lane] = max(oldest[lane], now_ms - first.enqueued_at)
        # Parked jobs wait too.
        for backlog in self._parked.values():
            for rank, arrived, _ in backlog:
                lane = self.config.lanes[rank]
                waiting[lane] += 1
                oldest[lane] = max(oldest[lane], now_ms - arrived)
        return QueueStats(
            waiting=sum(waiting.values()),
            active=active,
            delayed=len(self._delayed),
            completed=self._completed,
            failed=len(self._failed),
            oldest_waiting_age_ms=max(oldest.values()),
            lanes=tuple(LaneStats(lane, waiting[lane], oldest[lane]) for lane in self.config.lanes),
            partitions=self._k.partitions,
        )

    # -- StateStore -------------------------------------------------------------

    async def acquire(
        self, deliveries: Sequence[Delivery], lease_ms: int, now_ms: int, consumer: str = ""
    ) -> list[Acquired]:
        out = []
        mono = time.monotonic() * 1000
        for d in deliveries:
            if consumer and d.entry_id:
                entry = self._streams[(d.partition, d.lane)].entries.get(d.entry_id)
                if entry is None or d.entry_id in self._streams[(d.partition, d.lane)].undelivered:
                    out.append(Acquired(d, None, None, skipped="reclaimed"))
                    continue
                entry.owner, entry.touched_ms = consumer, mono
            e = self._live(d.execution_id)
            skip = ""
            if e is None:
                skip = "unknown"
            elif e.status in TERMINAL_STATUSES:
                skip = "terminal"
            elif e.attempt != d.attempt:
                skip = "stale"
            elif e.cancel:
                e.fence += 1
                self._emit(
                    e, now_ms, EventDraft(EventType.EXECUTION_CANCELLED, error=e.cancel_error)
                )
                self._finish(e, S.CANCELLED)
                # Its place is given back; the scheduler's sweep promotes the next.
                key = (d.partition, e.spec.tenant_id)
                self._admitted.get(key, set()).discard(d.execution_id)
                skip = "cancelled"
            if skip or e is None:
                self._ack(d.partition, d.lane, d.entry_id)
                out.append(Acquired(d, None, None, skipped=skip))
                continue
            e.fence += 1
            e.commit_number = 0
            if not d.entry_id:
                # Leased without a stream entry (a direct run): no longer held back.
                self._delayed.pop(d.execution_id, None)
            was = e.status
            e.status = S.RUNNING
            if was is not S.RUNNING:
                self._emit(e, now_ms, EventDraft(EventType.EXECUTION_STARTED))
            sp = e.spec
            ctx = ExecutionContext(
                execution_id=sp.execution_id,
                tenant_id=sp.tenant_id,
                workflow_id=sp.workflow_id,
                workflow_json=sp.workflow_json,
                trigger_json=sp.trigger_json,
                attempt=e.attempt,
                max_attempts=sp.max_attempts,
                backoff_s=sp.backoff_s,
                timeout_s=sp.timeout_s,
                traceparent=sp.traceparent,
                round_attempt=e.attempt - e.attempt_base + 1,
                outputs=dict(e.outputs),
            )
            lease = Lease(d.execution_id, d.partition, d.lane, d.entry_id, e.fence)
            out.append(Acquired(d, lease, ctx))
        return out

    async def take(self, consumer: str, count: int, lease_ms: int, now_ms: int) -> list[Acquired]:
        return await self.acquire(self._take(consumer, count, cap=count), lease_ms, now_ms)

    async def renew(
        self, leases: Sequence[Lease], lease_ms: int, now_ms: int, consumer: str
    ) -> list[Renewal]:
        out = []
        mono = time.monotonic() * 1000
        for lz in leases:
            e = self._live(lz.execution_id)
            if e is None:
                out.append(Renewal(False, False))
                continue
            if e.fence != lz.fence:
                out.append(Renewal(False, e.cancel, e.cancel_error))
                continue
            if e.status is not S.RUNNING:
                # The attempt ended under this fence; nothing to renew, nothing refused.
                out.append(Renewal(True, False))
                continue
            entry = self._streams[(lz.partition, lz.lane)].entries.get(lz.entry_id)
            if entry is not None:
                entry.touched_ms = mono
            out.append(Renewal(True, e.cancel, e.cancel_error))
        return out

    async def commit(self, commits: Sequence[Commit], now_ms: int) -> list[CommitResult]:
        out = []
        for c in commits:
            lz = c.lease
            e = self._live(lz.execution_id)
            if e is None or e.fence != lz.fence:
                out.append(CommitResult(False))
                continue
            if c.number and e.commit_number >= c.number:
                out.append(CommitResult(True, duplicate=True))
                continue
            if e.status in TERMINAL_STATUSES:
                out.append(CommitResult(False))
                continue
            if c.number:
                e.commit_number = c.number
            e.outputs.update(c.outputs)
            first = 0
            for d in c.events:
                seq = self._emit(e, now_ms, d)
                first = first or seq
            t = c.transition
            if t is not None:
                if t.status is S.RETRY_SCHEDULED:
                    e.status, e.reclaims = S.RETRY_SCHEDULED, 0
                    e.attempt += 1
                    self._delayed[lz.execution_id] = t.retry_at_ms
                elif t.status is S.FAILED and t.dead_letter_reason:
                    self._dead_letter(e, now_ms, t.dead_letter_reason, t.failed_node)
                else:
                    self._finish(e, t.status)
                self._ack(lz.partition, lz.lane, lz.entry_id)
                self._leave(e, now_ms)
            out.append(CommitResult(True, first))
        return out

    async def cancel(
        self, execution_id: str, tenant_id: str, now_ms: int, reason: str = ""
    ) -> ExecutionStatus:
        e = self._live(execution_id)
        if e is None:
            raise NotFound(f"execution {execution_id} not found")
        if tenant_id and e.spec.tenant_id != tenant_id:
            raise PermissionDenied(f"execution {execution_id} belongs to another tenant")
        if e.status in TERMINAL_STATUSES:
            return e.status
        error = cancel_error(reason)
        e.cancel, e.cancel_error = True, error
        if e.status is S.RUNNING:
            notice = (execution_id, error.to_json())
            for q in self._cancel_subscribers:
                q.put_nowait(notice)
            self._wake()
            return S.RUNNING
        self._delayed.pop(execution_id, None)
        e.fence += 1
        self._emit(e, now_ms, EventDraft(EventType.EXECUTION_CANCELLED, error=e.cancel_error))
        self._finish(e, S.CANCELLED)
        self._unpark(e)
        self._leave(e, now_ms)
        return S.CANCELLED

    async def cancel_notices(self) -> AsyncGenerator[tuple[str, str], None]:
        """CancelNotices: each cancel of a running execution, as the Redis adapter publishes it."""
        q: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._cancel_subscribers.add(q)
        try:
            while True:
                yield await q.get()
        finally:
            self._cancel_subscribers.discard(q)

    async def states(self, execution_ids: Sequence[str]) -> list[StateSnapshot | None]:
        out: list[StateSnapshot | None] = []
        for x in execution_ids:
            e = self._live(x)
            out.append(
                None
                if e is None
                else StateSnapshot(
                    x, e.spec.tenant_id, e.status, e.attempt, e.cancel, e.cancel_error
                )
            )
        return out

    async def outputs(self, execution_id: str) -> dict[str, str]:
        e = self._live(execution_id)
        return dict(e.outputs) if e else {}

    # -- ScheduleTable ----------------------------------------------------------

    async def put_schedule(self, schedule_id: str, value: str) -> None:
        self._schedules[schedule_id] = value

    async def get_schedule(self, schedule_id: str) -> str | None:
        return self._schedules.get(schedule_id)

    async def delete_schedule(self, schedule_id: str) -> bool:
        return self._schedules.pop(schedule_id, None) is not None

    async def swap_schedule(self, schedule_id: str, expected: str, value: str) -> bool:
        if self._schedules.get(schedule_id) != expected:
            return False
        self._schedules[schedule_id] = value
        return True

    async def all_schedules(self) -> list[str]:
        return list(self._schedules.values())

    # -- EventLog ---------------------------------------------------------------

    async def append(
        self, execution_id: str, drafts: Sequence[EventDraft], now_ms: int
    ) -> list[EventRecord]:
        e = self._live(execution_id)
        if e is None:
            raise NotFound(f"execution {execution_id} not found")
        first = len(e.events)
        for d in drafts:
            self._emit(e, now_ms, d)
        return e.events[first:]

    async def read(self, execution_id: str, after_seq: int, limit: int) -> list[EventRecord]:
        e = self._live(execution_id)
        if e is None:
            return []
        return e.events[max(0, after_seq) : max(0, after_seq) + limit]

    async def tail_position(self) -> TailCursor:
        return tuple(log[-1][0] if log else "0-0" for log in self._events)

    async def tail(
        self, cursor: TailCursor, count: int, block_ms: int
    ) -> tuple[list[TailEntry], TailCursor]:
        deadline = time.monotonic() + block_ms / 1000
        while True:
            out, pos = self._after(cursor, count)
            remaining = deadline - time.monotonic()
            if out or remaining <= 0 or not block_ms:
                return out, pos
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return self._after(cursor, count)

    def _after(self, cursor: TailCursor, count: int) -> tuple[list[TailEntry], TailCursor]:
        out: list[TailEntry] = []
        pos = list(cursor)
        for p, log in enumerate(self._events):
            last = _id_key(cursor[p])
            taken = 0
            for entry_id, rec in log:
                if taken >= count:
                    break
                if _id_key(entry_id) > last:
                    out.append(TailEntry(p, entry_id, rec))
                    pos[p] = entry_id
                    taken += 1
        return out, tuple(pos)

    async def group_read(
        self, group: str, consumer: str, count: int, block_ms: int
    ) -> list[TailEntry]:
        offsets = self._groups.setdefault(group, [0] * self._k.partitions)
        cursor = tuple(
            self._events[p][offsets[p] - 1][0] if offsets[p] else "0-0"
            for p in range(self._k.partitions)
        )
        out, _ = await self.tail(cursor, count, block_ms)
        for e in out:
            offsets[e.partition] += 1
        return out

    async def group_ack(self, group: str, entries: Sequence[TailEntry]) -> None:
        # Delivery is in order within a process; nothing is redelivered.
        return None

    async def group_claim(
        self, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[TailEntry]:
        # One process holds every reader: nothing read is ever left behind.
        return []


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _parse_token(token: str) -> tuple[int, str]:
    if not token:
        return 0, ""
    score, sep, member = token.partition(":")
    if not sep or not score.isdigit():
        raise InvalidJob("page_token", "malformed page token")
    return int(score), member


def _now_ms() -> int:
    return int(time.time() * 1000)
