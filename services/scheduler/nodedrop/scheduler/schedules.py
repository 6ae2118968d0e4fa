"""Cron schedules: the value, its storage (the store's ScheduleTable) and the firing rule.

A tick fires once however many scheduler replicas run: the execution id is
derived from (schedule, tick), so enqueueing it twice is a no-op, and a
``SET NX`` claim on the tick keeps replicas from even trying twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from croniter import croniter

from nodedrop.store import ScheduleTable


class ScheduleError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


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

    def to_json(self) -> bytes:
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
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Schedule:
        d = orjson.loads(raw)
        return cls(
            d["id"],
            d["tenant_id"],
            d["workflow_id"],
            d["workflow_json"],
            d["cron"],
            d["timezone"],
            bool(d["paused"]),
            int(d["next_fire_ms"]),
        )


def new_schedule_id() -> str:
    return f"sch_{uuid.uuid4().hex[:16]}"


def check_cron(cron: str, timezone: str) -> None:
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise ScheduleError("schedule.cron", "must be a valid five-field cron expression")
    _zone(timezone)


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError("schedule.timezone", f"unknown time zone {timezone!r}") from None


def next_fire_ms(cron: str, timezone: str, after_ms: int) -> int:
    """The first tick strictly after ``after_ms``, in the schedule's time zone."""
    start = datetime.fromtimestamp(after_ms / 1000, tz=_zone(timezone))
    nxt: datetime = croniter(cron, start).get_next(datetime)
    return int(nxt.timestamp() * 1000)


def tick_execution_id(schedule_id: str, tick_ms: int) -> str:
    return f"{schedule_id}-{tick_ms}"


def tick_time_iso(tick_ms: int) -> str:
    return datetime.fromtimestamp(tick_ms / 1000, tz=UTC).isoformat()


class ScheduleStore(Protocol):
    async def put(self, schedule: Schedule) -> None: ...

    async def get(self, schedule_id: str) -> Schedule | None: ...

    async def delete(self, schedule_id: str) -> bool: ...

    async def all(self) -> list[Schedule]: ...

    async def claim_tick(self, schedule_id: str, tick_ms: int) -> bool:
        """True for exactly one caller per (schedule, tick)."""
        ...

    async def advance(self, schedule: Schedule, new_next_ms: int) -> None:
        """Moves next_fire forward unless the schedule changed meanwhile."""
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

    async def claim_tick(self, schedule_id: str, tick_ms: int) -> bool:
        return await self._t.claim_tick(schedule_id, tick_ms)

    async def advance(self, schedule: Schedule, new_next_ms: int) -> None:
        # Compare-and-set in one script would be stricter; a lost race only rewrites
        # the same next tick, since every replica computes it alike.
        current = await self.get(schedule.id)
        if current is not None and current.next_fire_ms == schedule.next_fire_ms:
            await self.put(replace(current, next_fire_ms=new_next_ms))
