"""The queue's ports.  Each has a Redis adapter (``redis_store``) and an
in-memory adapter (``memory``); one conformance suite (tests/store) runs on both.

``Store`` is what a service opens (``factory.open_store``): every port both
adapters implement.  ``BlobCache``, ``FailedQueueStore`` and ``CancelNotices``
are capabilities an adapter may lack; a service checks for them with
``isinstance`` against the protocol, never against an adapter class.  Every method raises
``Unavailable`` (errors.py) when the backend cannot be reached.

Batch-first on purpose: a worker acquires, commits and renews whole read
batches, so the Redis adapter turns each call into one pipeline of EVALSHAs.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Protocol, runtime_checkable

from nodedrop.store.config import StoreConfig
from nodedrop.store.model import (
    Acquired,
    Commit,
    CommitResult,
    Delivery,
    EnqueueResult,
    ExecutionStatus,
    FailedJob,
    JobSpec,
    Lease,
    QueueStats,
    ReclaimReport,
    Renewal,
    RestoredFailure,
    StateSnapshot,
    TailEntry,
)
from nodedrop.store.records import EventDraft, EventRecord

# A tail cursor: the last entry id seen per partition ("0-0" = from the start).
TailCursor = tuple[str, ...]


@runtime_checkable
class JobQueue(Protocol):
    async def enqueue(self, spec: JobSpec, now_ms: int) -> EnqueueResult:
        """Store the execution and queue attempt 1; a known id is a no-op returning its status."""
        ...

    async def enqueue_many(self, specs: Sequence[JobSpec], now_ms: int) -> list[EnqueueResult]:
        """``enqueue`` of each, in one round trip."""
        ...

    async def read_jobs(self, consumer: str, count: int, block_ms: int) -> list[Delivery]:
        """New job entries across every partition and lane, higher lanes first: about
        ``count`` in all (at most ``count`` plus one per stream, less when few wait)."""
        ...

    async def touch(self, deliveries: Sequence[Delivery], consumer: str) -> None:
        """Restart the idle clock of entries read but not started yet, so the reclaimer
        leaves them to this consumer."""
        ...

    async def requeue(self, deliveries: Sequence[Delivery]) -> int:
        """Give back entries read but never acquired; they go to the end of their stream."""
        ...

    async def release(self, leases: Sequence[Lease]) -> list[bool]:
        """Hand running attempts back (drain): fenced, requeued at once as the same attempt."""
        ...

    async def move_due(self, now_ms: int, limit: int) -> int:
        """Move delayed jobs whose time has come onto their streams."""
        ...

    async def reclaim(self, min_idle_ms: int, max_reclaims: int, limit: int) -> ReclaimReport:
        """Requeue entries idle past the lease; past ``max_reclaims`` dead-letter them."""
        ...

    async def trim(self) -> int:
        """Drop acknowledged entries from the job streams; returns how many."""
        ...

    async def pending(self) -> int:
        """Entries read but not acknowledged, over all partitions."""
        ...

    async def list_failed(self, limit: int, after: str) -> tuple[list[FailedJob], str]: ...

    async def retry_failed(self, execution_ids: Sequence[str], all_: bool, now_ms: int) -> int: ...

    async def purge_failed(self, execution_ids: Sequence[str], all_: bool) -> int: ...

    async def stats(self, now_ms: int) -> QueueStats: ...


@runtime_checkable
class StateStore(Protocol):
    async def acquire(
        self, deliveries: Sequence[Delivery], lease_ms: int, now_ms: int, consumer: str = ""
    ) -> list[Acquired]:
        """Take a lease (new fence token) on each delivered attempt and load its context.

        With ``consumer`` (the reader of the deliveries), an entry must still be
        pending in the group: one the reclaimer took over meanwhile is skipped
        as ``reclaimed``, and a leased one is claimed afresh (its idle time
        restarts with the lease)."""
        ...

    async def take(self, consumer: str, count: int, lease_ms: int, now_ms: int) -> list[Acquired]:
        """``acquire(read_jobs(consumer, count, 0), ...)`` in one step, never waiting and
        never more than ``count``: how a busy worker refills its free slots."""
        ...

    async def renew(
        self, leases: Sequence[Lease], lease_ms: int, now_ms: int, consumer: str
    ) -> list[Renewal]:
        """Extend leases and restart the entries' idle clock under ``consumer``; a refused
        renewal means another worker owns the execution.  Also returns the cancel flag."""
        ...

    async def commit(self, commits: Sequence[Commit], now_ms: int) -> list[CommitResult]:
        """Fenced atomic writes: outputs + events (+ end of attempt, TTL cut, XACK)."""
        ...

    async def cancel(
        self, execution_id: str, tenant_id: str, now_ms: int, reason: str = ""
    ) -> ExecutionStatus:
        """Flag a cancel; an execution not running ends CANCELLED at once.

        ``reason`` becomes the message of the EXECUTION_CANCELLED event's error,
        also when a worker ends a running attempt."""
        ...

    async def states(self, execution_ids: Sequence[str]) -> list[StateSnapshot | None]: ...

    async def outputs(self, execution_id: str) -> dict[str, str]:
        """Checkpointed node outputs of an execution (node id -> outputs JSON); none
        once it ended in a terminal status (nothing resumes it)."""
        ...


@runtime_checkable
class EventLog(Protocol):
    async def append(
        self, execution_id: str, drafts: Sequence[EventDraft], now_ms: int
    ) -> list[EventRecord]:
        """Unfenced append with the next sequence numbers (for writers without a lease)."""
        ...

    async def read(self, execution_id: str, after_seq: int, limit: int) -> list[EventRecord]:
        """Replay: events with sequence > ``after_seq``, in order."""
        ...

    async def tail_position(self) -> TailCursor:
        """The cursor at the current end of every partition's events stream."""
        ...

    async def tail(
        self, cursor: TailCursor, count: int, block_ms: int
    ) -> tuple[list[TailEntry], TailCursor]:
        """One blocking read over every partition's events stream after ``cursor``.

        An entry that cannot be decoded (a hand-written XADD, a writer of another
        version) is logged with its id and skipped, and the cursor moves past it:
        one bad entry never stalls a reader."""
        ...

    async def group_read(
        self, group: str, consumer: str, count: int, block_ms: int
    ) -> list[TailEntry]:
        """Consumer-group read of the partition events streams (history recorder)."""
        ...

    async def group_ack(self, group: str, entries: Sequence[TailEntry]) -> None: ...

    async def group_claim(
        self, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[TailEntry]:
        """Entries of ``group`` read but not acknowledged for ``min_idle_ms`` (their
        reader died), claimed for ``consumer``: at most ``count`` per partition."""
        ...


@runtime_checkable
class ScheduleTable(Protocol):
    """Cron schedules as opaque values (the scheduler's JSON) by id."""

    async def put_schedule(self, schedule_id: str, value: str) -> None: ...

    async def get_schedule(self, schedule_id: str) -> str | None: ...

    async def delete_schedule(self, schedule_id: str) -> bool: ...

    async def swap_schedule(self, schedule_id: str, expected: str, value: str) -> bool:
        """Writes ``value`` if the stored value is still ``expected``; False if it
        changed or the schedule is gone."""
        ...

    async def all_schedules(self) -> list[str]: ...


class Store(JobQueue, StateStore, EventLog, ScheduleTable, Protocol):
    """Everything a service runs on; both adapters are one."""

    @property
    def config(self) -> StoreConfig: ...

    async def close(self) -> None: ...


@runtime_checkable
class BlobCache(Protocol):
    """Bytes kept for a while under a key, shared by every replica (the API's cache
    of finished results).  The in-memory store has none: within one process the
    database it would spare is local anyway."""

    async def get_blob(self, key: str) -> bytes | None: ...

    async def put_blob(self, key: str, value: bytes, ttl_s: int) -> None: ...


@runtime_checkable
class FailedQueueStore(Protocol):
    """A failed queue kept apart from the API's database, which can lose it (a Redis
    restart without persistence) and have it rebuilt from the database.  The
    in-memory store (one `nodedrop dev` process) does not implement it: after a
    restart its failed queue starts empty."""

    async def failed_queue_lost(self) -> bool:
        """True until ``mark_failed_queue_rebuilt``, and again after the data was lost."""
        ...

    async def mark_failed_queue_rebuilt(self) -> None: ...

    async def restore_failed(self, items: Sequence[RestoredFailure]) -> int:
        """Puts each back in the failed queue unless the store knows the execution."""
        ...


@runtime_checkable
class CancelNotices(Protocol):
    """A push for each cancel of a running execution (``StateStore.cancel``, from any
    process): a runner stops the attempt at once instead of at its next state check.

    A notice can be missed (one sent while the iterator reconnects): the cancel
    flag in the execution's state stays the authority."""

    def cancel_notices(self) -> AsyncGenerator[tuple[str, str], None]:
        """Yields (execution id, the cancel's error as EventError JSON, "" when absent)
        for each cancel from the moment it is subscribed; raises ``Unavailable`` when
        the backend is lost (iterate again to resubscribe)."""
        ...
