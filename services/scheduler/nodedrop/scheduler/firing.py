"""The cron loop's step: for each schedule, apply the pure decisions of
``ticks`` (due tick, catch-up, jitter, overlap) and start the runs they call for.

Every replica runs this step on the same schedules; a tick's run is started
with an idempotency key of (schedule, tick), so however many replicas start
it, the API commits one execution and every replica records the same id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from nodedrop.common.errors import NodedropError
from nodedrop.common.errors import Unavailable as ServiceUnavailable
from nodedrop.common.logging import get_logger
from nodedrop.scheduler.runs import RunStarter
from nodedrop.scheduler.schedules import LastRun, Schedule, ScheduleStore, tick_idempotency_key
from nodedrop.scheduler.ticks import Action, Overlap, on_tick, plan
from nodedrop.store import ExecutionStatus, StateStore, Unavailable

__all__ = ["UNFINISHED", "Firing"]

log = get_logger("nodedrop.scheduler")

UNFINISHED = frozenset(
    {ExecutionStatus.QUEUED, ExecutionStatus.RUNNING, ExecutionStatus.RETRY_SCHEDULED}
)


class Firing:
    def __init__(
        self,
        schedules: ScheduleStore,
        state: StateStore,
        starter: RunStarter,
        *,
        late_ms: int,
        clock: Callable[[], int],
    ) -> None:
        """``late_ms``: how late a tick may still run with catch-up 'skip';
        ``clock``: now in epoch milliseconds (injected so tests need not wait)."""
        self._schedules = schedules
        self._state = state
        self._starter = starter
        self._late_ms = late_ms
        self._clock = clock

    async def fire_due(self) -> None:
        for s in await self._schedules.all():
            if s.paused:
                continue
            try:
                await self._step(s)
            except Unavailable:
                raise
            except ServiceUnavailable as e:
                # The API is away: the tick stays due and the next pass tries again.
                log.warning("schedule could not start its run", schedule_id=s.id, error=str(e))
            except Exception:
                # One broken schedule must not hold back the others.
                log.exception("schedule could not fire", schedule_id=s.id)

    async def previous_running(self, s: Schedule) -> bool:
        if s.last_run is None:
            return False
        (state,) = await self._state.states([s.last_run.execution_id])
        return state is not None and state.status in UNFINISHED

    async def start(self, s: Schedule, tick_ms: int, key: str) -> Schedule | None:
        """Starts the run and records it as the schedule's last; None if deleted meanwhile."""
        execution_id = await self._starter.start(s, tick_ms, key)
        last = LastRun(execution_id, tick_ms, self._clock())
        log.info("schedule fired", schedule_id=s.id, execution_id=execution_id, tick_ms=tick_ms)
        return await self._schedules.update(s.id, lambda c: replace(c, last_run=last))

    async def _start_tick(self, s: Schedule, tick_ms: int) -> None:
        try:
            await self.start(s, tick_ms, tick_idempotency_key(s.id, tick_ms))
        except ServiceUnavailable:
            raise
        except NodedropError as e:
            # The API refused this run (say, its snapshot no longer validates
            # against the node types deployed): asking again will not help,
            # so the tick is passed over rather than retried every pass.
            log.error("schedule's run refused", schedule_id=s.id, tick_ms=tick_ms, error=str(e))

    async def _step(self, s: Schedule) -> None:
        p = plan(s.timing, s.id, s.next_fire_ms, self._clock(), self._late_ms)
        due = p.fire_tick_ms is not None
        if not due and not s.buffered_tick_ms and p.next_tick_ms == s.next_fire_ms:
            # Most passes: nothing due, nothing held back, no store read.
            return
        running = bool(
            s.buffered_tick_ms or (due and s.overlap is not Overlap.ALLOW)
        ) and await self.previous_running(s)
        if s.buffered_tick_ms and not running:
            tick = s.buffered_tick_ms
            await self._start_tick(s, tick)
            cleared = await self._schedules.update(s.id, _unbuffer(tick))
            if cleared is None:
                return
            s = cleared
            running = True
        if p.missed:
            log.info("schedule missed ticks", schedule_id=s.id, missed=p.missed)
        buffered = 0
        if p.fire_tick_ms is not None:
            action = on_tick(s.overlap, running, bool(s.buffered_tick_ms))
            if action is Action.START:
                await self._start_tick(s, p.fire_tick_ms)
            elif action is Action.BUFFER:
                buffered = p.fire_tick_ms
            else:
                log.info("tick skipped: the previous run is unfinished", schedule_id=s.id)
        if p.next_tick_ms == s.next_fire_ms and not buffered:
            return
        expected = s.next_fire_ms

        def advance(c: Schedule) -> Schedule:
            if c.next_fire_ms != expected:
                # Another replica (or a resume) moved it first.
                return c
            return replace(
                c, next_fire_ms=p.next_tick_ms, buffered_tick_ms=buffered or c.buffered_tick_ms
            )

        await self._schedules.update(s.id, advance)


def _unbuffer(tick_ms: int) -> Callable[[Schedule], Schedule]:
    def change(c: Schedule) -> Schedule:
        return replace(c, buffered_tick_ms=0) if c.buffered_tick_ms == tick_ms else c

    return change
