"""Cron schedules: the value and its storage (the store's ScheduleTable).

When a schedule fires is decided in ``ticks`` (pure); a tick's run is an
ordinary execution the API commits (``runs``), with an idempotency key made
of the schedule and the tick, so replicas that fire the same tick start one
execution between them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from nodedrop.common.errors import Aborted
from nodedrop.scheduler.ticks import CatchUp, Overlap, Timing
from nodedrop.store import ScheduleTable

# Writers of one schedule are its scheduler replicas and its owner's calls:
# a handful at most, so a few rounds always settle.
_MAX_SWAPS = 20


@dataclass(frozen=True, slots=True)
class LastRun:
    execution_id: str
    tick_ms: int
    start_ms: int


@dataclass(frozen=True, slots=True)
class Schedule:
    id: str
    tenant_id: str
    workflow_id: str
    # The snapshot each tick runs (NODES.md JSON format).
    workflow_json: str
    cron: str
    timezone: str
    paused: bool
    next_fire_ms: int
    overlap: Overlap = Overlap.SKIP
    catch_up: CatchUp = CatchUp.SKIP
    catch_up_window_ms: int = 0
    jitter_ms: int = 0
    last_run: LastRun | None = None
    # The tick held back behind an unfinished run (buffer_one); 0 for none.
    buffered_tick_ms: int = 0

    @property
    def timing(self) -> Timing:
        return Timing(
            self.cron, self.timezone, self.jitter_ms, self.catch_up, self.catch_up_window_ms
        )

    def to_json(self) -> bytes:
        last = self.last_run
        return orjson.dumps(
            {
                "id": self.id,
                "tenant_id": self.tenant_id,
                "workflow_id": self.workflow_id,
                "workflow_json": self.workflow_json,
                "cron": self.cron,
                "timezone": self.timezone,
                "paused": self.paused,
                "next_fire_ms": self.next_fire_ms,
                "overlap": self.overlap.value,
                "catch_up": self.catch_up.value,
                "catch_up_window_ms": self.catch_up_window_ms,
                "jitter_ms": self.jitter_ms,
                "last_run": None
                if last is None
                else [last.execution_id, last.tick_ms, last.start_ms],
                "buffered_tick_ms": self.buffered_tick_ms,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Schedule:
        d: dict[str, Any] = orjson.loads(raw)
        last = d.get("last_run")
        # Schedules stored before the policies existed read with their defaults.
        return cls(
            d["id"],
            d["tenant_id"],
            d["workflow_id"],
            d["workflow_json"],
            d["cron"],
            d["timezone"],
            bool(d["paused"]),
            int(d["next_fire_ms"]),
            overlap=Overlap(d.get("overlap", Overlap.SKIP.value)),
            catch_up=CatchUp(d.get("catch_up", CatchUp.SKIP.value)),
            catch_up_window_ms=int(d.get("catch_up_window_ms", 0)),
            jitter_ms=int(d.get("jitter_ms", 0)),
            last_run=None if not last else LastRun(str(last[0]), int(last[1]), int(last[2])),
            buffered_tick_ms=int(d.get("buffered_tick_ms", 0)),
        )


def new_schedule_id() -> str:
    return f"sch_{uuid.uuid4().hex[:16]}"


def tick_idempotency_key(schedule_id: str, tick_ms: int) -> str:
    return f"schedule:{schedule_id}:{tick_ms}"


class ScheduleStore(Protocol):
    async def put(self, schedule: Schedule) -> None: ...

    async def get(self, schedule_id: str) -> Schedule | None: ...

    async def delete(self, schedule_id: str) -> bool: ...

    async def all(self) -> list[Schedule]: ...

    async def update(
        self, schedule_id: str, change: Callable[[Schedule], Schedule]
    ) -> Schedule | None:
        """Applies ``change`` to the stored schedule as it is now; None once deleted."""
        ...


class StoredSchedules:
    """Schedules as JSON in the store's schedule table (Redis, or the in-memory store)."""

    def __init__(self, table: ScheduleTable) -> None:
        self._t = table

    async def put(self, schedule: Schedule) -> None:
        await self._t.put_schedule(schedule.id, schedule.to_json().decode())

    async def get(self, schedule_id: str) -> Schedule | None:
        raw = await self._t.get_schedule(schedule_id)
        return Schedule.from_json(raw) if raw else None

    async def delete(self, schedule_id: str) -> bool:
        return await self._t.delete_schedule(schedule_id)

    async def all(self) -> list[Schedule]:
        return [Schedule.from_json(v) for v in await self._t.all_schedules()]

    async def update(
        self, schedule_id: str, change: Callable[[Schedule], Schedule]
    ) -> Schedule | None:
        # Compare-and-set on the value read: a pause, a delete or another
        # replica's write in between makes this one start over from it.
        for _ in range(_MAX_SWAPS):
            raw = await self._t.get_schedule(schedule_id)
            if raw is None:
                return None
            changed = change(Schedule.from_json(raw))
            if await self._t.swap_schedule(schedule_id, raw, changed.to_json().decode()):
                return changed
        raise Aborted(f"schedule {schedule_id} kept changing; try again")


__all__ = [
    "LastRun",
    "Schedule",
    "ScheduleStore",
    "StoredSchedules",
    "new_schedule_id",
    "tick_idempotency_key",
]
