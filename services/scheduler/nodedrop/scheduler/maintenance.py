"""The scheduler's background loops: move due delayed jobs, reclaim stalled ones,
fire cron ticks.  Each loop survives store outages with the services' back-off
(nodedrop.common.retry)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from nodedrop.common.logging import get_logger
from nodedrop.common.metrics import LaneSample, Metrics, QueueSample
from nodedrop.common.retry import Backoff
from nodedrop.scheduler.firing import Firing
from nodedrop.store import JobQueue, Unavailable

log = get_logger("nodedrop.scheduler")

_BACKOFF_BASE_S = 0.05
_BACKOFF_MAX_S = 5.0
_MOVE_LIMIT = 1000
_RECLAIM_LIMIT = 500


class Maintenance:
    def __init__(
        self,
        queue: JobQueue,
        firing: Firing,
        *,
        lease_s: float,
        max_reclaims: int,
        mover_interval_s: float,
        reclaim_interval_s: float,
        cron_interval_s: float,
        metrics: Metrics | None = None,
        sample_interval_s: float = 5.0,
    ) -> None:
        self._metrics = metrics
        self._sample_interval_s = sample_interval_s
        self._q = queue
        self._firing = firing
        self._lease_ms = int(lease_s * 1000)
        self._max_reclaims = max_reclaims
        self._intervals = (mover_interval_s, reclaim_interval_s, cron_interval_s)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        mover, reclaim, cron = self._intervals
        self._tasks = [
            asyncio.create_task(self._every("mover", mover, self.move_due), name="mover"),
            asyncio.create_task(self._every("reclaimer", reclaim, self.reclaim), name="reclaim"),
            asyncio.create_task(self._every("cron", cron, self.fire_due), name="cron"),
        ]
        if self._metrics is not None:
            self._tasks.append(
                asyncio.create_task(
                    self._every("metrics", self._sample_interval_s, self.sample), name="sample"
                )
            )

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def _every(self, name: str, interval: float, step: Callable[[], Awaitable[bool]]) -> None:
        backoff = Backoff(_BACKOFF_BASE_S, _BACKOFF_MAX_S)
        while True:
            try:
                more = await step()
            except Unavailable as e:
                delay = backoff.next_delay()
                log.warning("maintenance step failed", loop=name, error=str(e), delay_s=delay)
                await backoff.wait(delay)
                continue
            except Exception:
                # A bug in one step must not end the loop for good: log it loudly.
                delay = backoff.next_delay()
                log.exception("maintenance step crashed", loop=name, delay_s=delay)
                await backoff.wait(delay)
                continue
            backoff.reset()
            # A full batch: go on at once, the backlog is not empty.
            await asyncio.sleep(0 if more else interval)

    async def move_due(self) -> bool:
        moved = await self._q.move_due(_now_ms(), _MOVE_LIMIT)
        return moved >= _MOVE_LIMIT

    async def reclaim(self) -> bool:
        report = await self._q.reclaim(self._lease_ms, self._max_reclaims, _RECLAIM_LIMIT)
        await self._q.trim()
        if self._metrics is not None and report.requeued:
            self._metrics.executions_reclaimed.inc(report.requeued)
        if report.requeued or report.dead_lettered:
            log.info(
                "reclaimed stalled jobs",
                requeued=report.requeued,
                dead_lettered=report.dead_lettered,
                dropped=report.dropped,
            )
        return False

    async def sample(self) -> bool:
        """Publishes the queue's depth, lag and ages (the worker autoscaling signal)."""
        assert self._metrics is not None
        s = await self._q.stats(_now_ms())
        self._metrics.record_queue(
            QueueSample(
                lanes=tuple(
                    LaneSample(
                        lane=str(lane.priority),
                        depth=lane.waiting,
                        lag=lane.waiting,
                        oldest_waiting_age_s=lane.oldest_waiting_age_ms / 1000,
                    )
                    for lane in s.lanes
                ),
                active=s.active,
                delayed=s.delayed,
                failed=s.failed,
            )
        )
        return False

    async def fire_due(self) -> bool:
        await self._firing.fire_due()
        return False


def _now_ms() -> int:
    return int(time.time() * 1000)
