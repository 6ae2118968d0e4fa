"""Orphan recovery: PostgreSQL says which executions exist; Redis may forget.

A pass, run by one API replica at a time (the repository's recovery lock,
a PostgreSQL advisory lock in production):

- queue mode: every execution PostgreSQL holds as queued, running or
  retry_scheduled, older than ``min_age_s``, that the scheduler does not
  know (Redis lost its data, or the enqueue after the insert failed) is
  enqueued again from its stored definition and trigger data, resuming
  after the nodes the recorder saw complete, at the attempt it recorded. Its recorded events are
  dropped first: the new run numbers its events from 1 again. When that
  cannot work (the stored definition no longer parses, the scheduler
  refuses it) the execution is failed with the reason.
- the other way round, an execution the scheduler knows as ended that
  PostgreSQL still holds as unfinished (the recorder missed its events) has
  its events replayed from its own event log, so both agree;
- after Redis lost its data, the failed queue is rebuilt from PostgreSQL
  first (nodedrop.api.failed_rebuild);
- direct mode: an execution still unfinished well past its timeout was
  running in an API process that is gone; it is failed with that reason.

A pass stops at the first unavailable dependency and leaves the rest to the
next pass; every step is safe to repeat (an enqueue of a known id is a no-op).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from nodedrop.api.errors import StoreUnavailableError
from nodedrop.api.executions import ExecutionManager
from nodedrop.api.failed_rebuild import FailedQueueRebuild
from nodedrop.api.model import TERMINAL_STATUSES, ExecutionRecord, Status
from nodedrop.api.queueing import QueuePort
from nodedrop.api.recorder import to_recorded
from nodedrop.api.repository import ExecutionRepository
from nodedrop.common.errors import FailedPrecondition, Unavailable
from nodedrop.common.logging import get_logger
from nodedrop.contract import from_json
from nodedrop.engine import ValidationError, WorkflowSettings
from nodedrop.engine.parse import parse_workflow
from nodedrop.store import EventLog
from nodedrop.store import Unavailable as QueueStoreUnavailable

__all__ = ["OrphanRecovery", "RecoveryReport"]

log = get_logger("nodedrop.api.recovery")

# Events replayed per execution when the history catches up with the queue.
MAX_REPLAY = 100_000


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    ran: bool
    checked: int = 0
    requeued: int = 0
    failed: int = 0


def _error(message: str, code: str) -> str:
    return orjson.dumps({"message": message, "code": code, "retryable": False}).decode()


def _timeout_s(record: ExecutionRecord) -> float:
    try:
        return from_json(record.definition_json).settings.timeout_s
    except (orjson.JSONDecodeError, ValueError):
        return WorkflowSettings().timeout_s


def _resume_attempt(record: ExecutionRecord) -> int:
    """The attempt a re-run starts at: the recorded one, which was running or
    about to (a lost attempt is run again, as the reclaimer does), or the next
    after a recorded retry. Starting from 1 again would run a failing node more
    than max_attempts times."""
    attempt = max(1, record.attempt)
    if record.status is Status.RETRY_SCHEDULED:
        return attempt + 1
    return attempt


class OrphanRecovery:
    def __init__(
        self,
        repository: ExecutionRepository,
        queue: QueuePort | None,
        manager: ExecutionManager,
        *,
        interval_s: float,
        min_age_s: float,
        page: int = 200,
        max_pages: int = 50,
        direct_margin_s: float = 120.0,
        events: EventLog | None = None,
        failed_rebuild: FailedQueueRebuild | None = None,
    ) -> None:
        self._repo = repository
        self._failed_rebuild = failed_rebuild
        self._events = events
        self._queue = queue
        self._manager = manager
        self._interval_s = interval_s
        self._min_age_s = min_age_s
        self._page = page
        self._max_pages = max_pages
        self._direct_margin_s = direct_margin_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="nodedrop-orphan-recovery")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                report = await self.run_once()
            except (StoreUnavailableError, Unavailable, QueueStoreUnavailable) as exc:
                log.warning("orphan recovery pass stopped", error=str(exc))
                continue
            except Exception as exc:  # the loop must outlive one bad pass
                log.error("orphan recovery pass failed", error=repr(exc))
                continue
            if report.requeued or report.failed:
                log.info(
                    "orphan recovery",
                    checked=report.checked,
                    requeued=report.requeued,
                    failed=report.failed,
                )

    async def run_once(self) -> RecoveryReport:
        async with self._repo.recovery_lock() as held:
            if not held:
                return RecoveryReport(ran=False)
            now = datetime.now(UTC)
            checked = requeued = failed = 0
            if self._failed_rebuild is not None:
                # Before the re-enqueues: they would make the queue look intact.
                await self._failed_rebuild.run_once()
            if self._queue is not None:
                c, r, f = await self._queue_mode(now - timedelta(seconds=self._min_age_s))
                checked, requeued, failed = checked + c, requeued + r, failed + f
            c, f = await self._direct_mode(now)
            return RecoveryReport(True, checked + c, requeued, failed + f)

    async def _queue_mode(self, before: datetime) -> tuple[int, int, int]:
        assert self._queue is not None
        checked = requeued = failed = 0
        cursor: tuple[datetime, str] | None = None
        for _ in range(self._max_pages):
            page = await self._repo.list_unfinished(before, cursor, self._page, "queue")
            if not page:
                break
            cursor = (page[-1].created_at, page[-1].id)
            states = await self._queue.states([r.id for r in page])
            known = {s.execution_id for s in states if s.known}
            ended = {s.execution_id for s in states if s.known and s.status in TERMINAL_STATUSES}
            for record in page:
                checked += 1
                if record.id in ended:
                    await self._catch_up(record)
                if record.id in known:
                    continue
                if await self._rerun(record):
                    requeued += 1
                else:
                    failed += 1
        return checked, requeued, failed

    async def _catch_up(self, record: ExecutionRecord) -> None:
        """The queue says it ended, PostgreSQL does not: the recorder missed its events
        (a partition stream trimmed before they were read). Replay them from the
        execution's own event log; applying them is idempotent."""
        if self._events is None:
            return
        records = await self._events.read(record.id, 0, MAX_REPLAY)
        if records:
            await self._repo.record_events([to_recorded(r) for r in records])
            log.info("history caught up", execution_id=record.id, events=len(records))

    async def _rerun(self, record: ExecutionRecord) -> bool:
        """True when enqueued again, False when failed with a reason."""
        try:
            parse_workflow(orjson.loads(record.definition_json))
        except (ValidationError, orjson.JSONDecodeError) as exc:
            await self._fail(record, f"lost by the queue and cannot run again: {exc}")
            return False
        full = await self._repo.get_execution(None, record.id, with_node_runs=True)
        if full is None or full.finished:
            return True
        completed = {
            run.node_id: run.outputs_json
            for run in full.node_runs
            if run.status == "completed" and run.outputs_json
        }
        if not await self._repo.reset_for_rerun(record.id):
            return True  # it finished meanwhile
        try:
            await self._manager.enqueue_existing(full, completed, _resume_attempt(full))
        except FailedPrecondition as exc:
            await self._fail(record, f"lost by the queue and refused on re-enqueue: {exc}")
            return False
        log.info("orphan re-enqueued", execution_id=record.id, resumed_nodes=len(completed))
        return True

    async def _direct_mode(self, now: datetime) -> tuple[int, int]:
        checked = failed = 0
        cursor: tuple[datetime, str] | None = None
        # Nothing younger than the shortest possible hold can be stale.
        before = now - timedelta(seconds=self._direct_margin_s)
        for _ in range(self._max_pages):
            page = await self._repo.list_unfinished(before, cursor, self._page, "direct")
            if not page:
                break
            cursor = (page[-1].created_at, page[-1].id)
            for record in page:
                checked += 1
                deadline = record.created_at + timedelta(
                    seconds=_timeout_s(record) + self._direct_margin_s
                )
                if deadline < now:
                    await self._fail(
                        record,
                        "the API process running this direct execution stopped before it ended",
                    )
                    failed += 1
        return checked, failed

    async def _fail(self, record: ExecutionRecord, reason: str) -> None:
        log.warning("orphan failed", execution_id=record.id, reason=reason)
        await self._repo.set_status(record.id, Status.FAILED, _error(reason, "orphaned"))
