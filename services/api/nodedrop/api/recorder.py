"""The history recorder: a consumer group on the partitions' event streams
that writes execution and node-run state to the repository.

Idempotent end to end: the repository keys each event by (execution,
sequence) and applies only new ones, so a redelivered or replayed entry
changes nothing. A batch is acknowledged only after it is committed; while
the database is down the recorder keeps retrying the same batch (with
backoff) instead of reading further, so nothing is acknowledged unrecorded.

Each process reads under its own consumer name, so what a process had read
when it died stays pending in the group under that name. Every recorder
claims, now and then, the group's entries left unacknowledged longer than
``claim_idle_s`` (XAUTOCLAIM), whichever replica read them, and records them
like new ones; applying them is idempotent, so a slow replica that still
commits its batch afterwards changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from nodedrop.api.errors import StoreUnavailableError
from nodedrop.api.model import AdoptedExecution, RecordedEvent
from nodedrop.api.repository import ExecutionRepository
from nodedrop.common.logging import get_logger
from nodedrop.common.retry import Backoff
from nodedrop.store import EventLog, EventRecord, TailEntry, Unavailable

__all__ = ["GROUP", "HistoryRecorder", "to_recorded"]

GROUP = "history"
log = get_logger("nodedrop.api.recorder")


def to_recorded(record: EventRecord) -> RecordedEvent:
    return RecordedEvent(
        execution_id=record.execution_id,
        sequence=record.sequence,
        type=record.type.value.lower(),
        time=datetime.fromtimestamp(record.time_ms / 1000, UTC),
        node_id=record.node_id,
        attempt=record.attempt,
        data_json=record.data_json,
        error_json=None if record.error is None else record.error.to_json(),
    )


def _first_seen(entries: list[TailEntry]) -> list[AdoptedExecution]:
    """One candidate per execution of the batch, in case PostgreSQL does not know it
    (a cron run the scheduler started): its tenant and workflow come from the event."""
    seen: dict[str, AdoptedExecution] = {}
    for e in entries:
        r = e.record
        if r.execution_id not in seen and r.tenant_id:
            seen[r.execution_id] = AdoptedExecution(
                r.execution_id,
                r.tenant_id,
                r.workflow_id,
                datetime.fromtimestamp(r.time_ms / 1000, UTC),
            )
    return list(seen.values())


class HistoryRecorder:
    def __init__(
        self,
        events: EventLog,
        repository: ExecutionRepository,
        *,
        consumer: str,
        batch: int = 500,
        block_ms: int = 1000,
        max_backoff_s: float = 5.0,
        gather_s: float = 0.05,
        claim_idle_s: float = 30.0,
        claim_every_s: float | None = None,
    ) -> None:
        self._events = events
        self._repo = repository
        self._consumer = consumer
        self._batch = batch
        self._block_ms = block_ms
        self._max_backoff_s = max_backoff_s
        # After a partial batch, the next read waits until this long after the
        # previous one began, so the events arriving meanwhile share one
        # batch: each batch costs five PostgreSQL round trips and an XACK
        # pipeline however few events it holds. History lags by at most this.
        self._gather_s = gather_s
        self._claim_idle_ms = int(claim_idle_s * 1000)
        # Often enough that an orphaned entry waits at most about 1.25 idle periods.
        self._claim_every_s = claim_every_s if claim_every_s is not None else claim_idle_s / 4
        self._task: asyncio.Task[None] | None = None
        self.recorded = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="nodedrop-history-recorder")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def step(self) -> int:
        """One read-record-ack round; returns the number of entries handled."""
        entries = await self._events.group_read(GROUP, self._consumer, self._batch, self._block_ms)
        if entries:
            await self._commit(entries)
        return len(entries)

    async def claim(self) -> int:
        """Records the group's entries whose reader left them pending; returns how many."""
        entries = await self._events.group_claim(
            GROUP, self._consumer, self._claim_idle_ms, self._batch
        )
        if entries:
            log.info("history: claimed entries another reader left pending", entries=len(entries))
            await self._commit(entries)
        return len(entries)

    async def _commit(self, entries: list[TailEntry]) -> None:
        backoff = Backoff(0.1, self._max_backoff_s)
        while True:
            try:
                await self._repo.adopt_executions(_first_seen(entries))
                self.recorded += await self._repo.record_events(
                    [to_recorded(e.record) for e in entries]
                )
                break
            except StoreUnavailableError as exc:
                delay = backoff.next_delay()
                log.warning("recording failed; retrying", error=str(exc), delay_s=delay)
                await backoff.wait(delay)
        await self._events.group_ack(GROUP, entries)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_claim = loop.time()
        backoff = Backoff(0.1, self._max_backoff_s)
        while True:
            began = loop.time()
            try:
                if began >= next_claim:
                    next_claim = began + self._claim_every_s
                    await self.claim()
                handled = await self.step()
            except Unavailable as exc:
                delay = backoff.next_delay()
                log.warning("history read failed", error=str(exc), delay_s=delay)
                await backoff.wait(delay)
                continue
            except Exception:
                # A bug must not end recording for good: log it loudly, go on.
                delay = backoff.next_delay()
                log.exception("history read crashed", delay_s=delay)
                await backoff.wait(delay)
                continue
            backoff.reset()
            if 0 < handled < self._batch:
                await asyncio.sleep(max(0.0, began + self._gather_s - loop.time()))
