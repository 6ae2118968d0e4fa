"""The failed queue rebuilt from PostgreSQL after Redis lost its data.

The failed queue (dead-lettered executions, for ListFailedJobs and
RetryFailedJobs) lives in Redis only. PostgreSQL records every execution that
failed and why, so when Redis comes back empty the API puts back each
dead-lettered execution of the last state-TTL window that Redis no longer
knows, with its reason, failed node, attempt and checkpoints: the failed-queue
commands then answer as before the loss, and a retry resumes after the
completed nodes with events numbered after the recorded ones.

Redis loss is told by a marker key set once a rebuild completed: it is gone
with the rest of the data. The rebuild runs in the orphan-recovery pass (one
API replica at a time), before unfinished executions are re-enqueued; every
step is safe to repeat (an execution Redis knows is left alone), so a pass
that stops half-way is finished by the next one.

Dead-lettered means what the workers put in the failed queue: the last
attempt failed with a retryable error (attempts exhausted), or the execution
stalled past its reclaims (code STALLED). A deliberate failure (a
non-retryable error) never was in the queue and is not put there.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from nodedrop.api.executions import stored_request
from nodedrop.api.model import ExecutionRecord
from nodedrop.api.repository import ExecutionRepository
from nodedrop.api.store_queue import job_spec
from nodedrop.common.logging import get_logger
from nodedrop.store import FailedQueueStore, RestoredFailure

__all__ = ["FailedQueueRebuild", "dead_letter_of"]

log = get_logger("nodedrop.api.failed_rebuild")


def dead_letter_of(error_json: str | None) -> tuple[str, str] | None:
    """(reason, failed node) when a recorded failure put it in the failed queue."""
    try:
        error = orjson.loads(error_json or "null")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(error, dict):
        return None
    if error.get("retryable") is not True and error.get("code") != "STALLED":
        return None
    return str(error.get("message") or "failed"), str(error.get("node_id") or "")


class FailedQueueRebuild:
    def __init__(
        self,
        repository: ExecutionRepository,
        store: FailedQueueStore,
        *,
        window_s: float,
        page: int = 200,
        max_pages: int = 500,
    ) -> None:
        self._repo = repository
        self._store = store
        self._window_s = window_s
        self._page = page
        self._max_pages = max_pages

    async def run_once(self) -> int | None:
        """Rebuilds when Redis lost its data; the number restored, None when not needed."""
        if not await self._store.failed_queue_lost():
            return None
        since = datetime.now(UTC) - timedelta(seconds=self._window_s)
        restored = 0
        cursor: tuple[datetime, str] | None = None
        for _ in range(self._max_pages):
            page = await self._repo.list_failed_since(since, cursor, self._page)
            if not page:
                break
            last = page[-1]
            assert last.finished_at is not None
            cursor = (last.finished_at, last.id)
            items = [item for r in page if (item := await self._item(r)) is not None]
            if items:
                restored += await self._store.restore_failed(items)
        else:
            # More than max_pages: leave the marker unset, the next pass goes on.
            log.warning("failed-queue rebuild not finished in one pass", restored=restored)
            return restored
        await self._store.mark_failed_queue_rebuilt()
        if restored:
            log.warning("failed queue rebuilt from PostgreSQL", restored=restored)
        return restored

    async def _item(self, record: ExecutionRecord) -> RestoredFailure | None:
        dead = dead_letter_of(record.error_json)
        if dead is None or record.finished_at is None:
            return None
        full = await self._repo.get_execution(None, record.id, with_node_runs=True)
        if full is None:
            return None
        completed = {
            run.node_id: run.outputs_json
            for run in full.node_runs
            if run.status == "completed" and run.outputs_json
        }
        try:
            request = stored_request(full, completed, max(1, full.attempt))
        except Exception as exc:  # a definition that no longer parses cannot run again
            log.warning("failed-queue rebuild skipped one", execution_id=record.id, error=str(exc))
            return None
        # The recorded error names its node only when the node's failure was
        # recorded in the same batch; the node runs always tell.
        failed_runs = sorted(
            (run.attempt, run.node_id) for run in full.node_runs if run.status == "failed"
        )
        node = dead[1] or (failed_runs[-1][1] if failed_runs else "")
        return RestoredFailure(
            spec=job_spec(request, ""),
            last_sequence=full.last_sequence,
            reason=dead[0],
            failed_node=node,
            fail_time_ms=int(record.finished_at.timestamp() * 1000),
        )
