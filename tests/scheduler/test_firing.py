"""The cron loop's step on real Redis with an injected clock: two replicas
through a daylight-saving night, overlap policies, pause, catch-up. The API is
replaced by a recorder that, like the API, gives one execution per key."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from nodedrop.common.errors import InvalidArgument, Unavailable
from nodedrop.scheduler.firing import Firing
from nodedrop.scheduler.schedules import Schedule, StoredSchedules
from nodedrop.scheduler.ticks import CatchUp, Overlap, next_tick_ms
from nodedrop.store import ExecutionStatus, StateSnapshot
from nodedrop.store.redis_store import RedisStore
from tests.helpers.queue_fixtures import store

# The store alone, with no scheduler process of its own firing on the real clock.
__all__ = ["store"]

MIN = 60_000
WF = orjson.dumps(
    {
        "name": "t",
        "nodes": [{"id": "s", "type": "schedule_trigger", "parameters": {"cron": "* * * * *"}}],
    }
).decode()


def at(local: str, tz: str) -> int:
    return int(datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(tz)).timestamp() * 1000)


class Api:
    """One execution per idempotency key, as the API's ScheduleRunService gives."""

    def __init__(self) -> None:
        self.by_key: dict[str, str] = {}
        self.calls: list[tuple[str, int]] = []

    async def start(self, schedule: Schedule, tick_ms: int, idempotency_key: str) -> str:
        self.calls.append((schedule.id, tick_ms))
        return self.by_key.setdefault(idempotency_key, str(uuid.uuid4()))

    def ticks(self) -> list[int]:
        return sorted({int(k.rsplit(":", 1)[1]) for k in self.by_key})


class States:
    """The store's execution states, with the runs the test says are unfinished."""

    def __init__(self) -> None:
        self.running: set[str] = set()

    async def states(self, ids: Sequence[str]) -> list[StateSnapshot | None]:
        return [
            StateSnapshot(x, "t1", ExecutionStatus.RUNNING, 1, False) if x in self.running else None
            for x in ids
        ]


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def replicas(store: Any, api: Api, states: States, clock: Clock, n: int = 2) -> list[Firing]:
    schedules = StoredSchedules(store)
    return [Firing(schedules, states, api, late_ms=MIN, clock=clock) for _ in range(n)]  # type: ignore[arg-type]


async def put(store: Any, cron: str, tz: str, now: int, **kw: Any) -> Schedule:
    s = Schedule(
        f"sch_{uuid.uuid4().hex[:8]}",
        "t1",
        "wf",
        WF,
        cron,
        tz,
        False,
        next_tick_ms(cron, tz, now),
        **kw,
    )
    await StoredSchedules(store).put(s)
    return s


async def run_minutes(rs: list[Firing], clock: Clock, until: int) -> None:
    while clock.ms < until:
        clock.ms += MIN // 2
        await asyncio.gather(*(r.fire_due() for r in rs))


@pytest.mark.parametrize(
    ("tz", "cron", "start", "end", "expected"),
    [
        (
            "Europe/Berlin",
            "30 2 * * *",
            "2026-03-28T23:00",
            "2026-03-29T23:00",
            ["2026-03-29T03:30"],
        ),
        (
            "America/New_York",
            "30 1 * * *",
            "2026-10-31T23:00",
            "2026-11-01T23:00",
            ["2026-11-01T01:30"],
        ),
    ],
)
async def test_two_replicas_fire_once_per_tick_through_a_dst_night(  # noqa: PLR0917
    store: RedisStore, tz: str, cron: str, start: str, end: str, expected: list[str]
) -> None:
    clock = Clock(at(start, tz))
    api = Api()
    s = await put(store, cron, tz, clock.ms)
    rs = replicas(store, api, States(), clock)
    await run_minutes(rs, clock, at(end, tz))
    assert api.ticks() == [at(x, tz) for x in expected]
    after = await StoredSchedules(store).get(s.id)
    assert after is not None and after.last_run is not None
    assert after.last_run.execution_id == api.by_key[f"schedule:{s.id}:{api.ticks()[0]}"]


async def test_every_minute_with_two_replicas_starts_one_execution_per_tick(
    store: RedisStore,
) -> None:
    clock = Clock(at("2026-06-01T10:00:30", "UTC"))
    api = Api()
    await put(store, "* * * * *", "UTC", clock.ms)
    rs = replicas(store, api, States(), clock, n=3)
    await run_minutes(rs, clock, at("2026-06-01T10:10:10", "UTC"))
    assert api.ticks() == [at(f"2026-06-01T10:{m:02d}", "UTC") for m in range(1, 11)]


async def test_paused_schedules_do_not_fire(store: RedisStore) -> None:
    clock = Clock(at("2026-06-01T10:00:30", "UTC"))
    api = Api()
    s = await put(store, "* * * * *", "UTC", clock.ms)
    await StoredSchedules(store).put(replace(s, paused=True))
    await run_minutes(replicas(store, api, States(), clock), clock, clock.ms + 5 * MIN)
    assert api.calls == []


async def test_overlap_skip_and_buffer_one(store: RedisStore) -> None:
    states = States()
    results = {}
    for overlap in (Overlap.SKIP, Overlap.BUFFER_ONE, Overlap.ALLOW):
        clock = Clock(at("2026-06-01T10:00:30", "UTC"))
        api = Api()
        s = await put(store, "* * * * *", "UTC", clock.ms, overlap=overlap)
        (r,) = replicas(store, api, states, clock, n=1)
        start = clock.ms
        await run_minutes([r], clock, start + MIN)  # the first tick runs
        (first,) = api.by_key.values()
        states.running.add(first)
        await run_minutes([r], clock, start + 4 * MIN)  # three ticks while it runs
        states.running.discard(first)
        # It ends before the next tick.
        clock.ms += 10_000
        await r.fire_due()
        results[overlap] = api.ticks()
        await StoredSchedules(store).delete(s.id)
    # skip: only the first; buffer_one: the first, then the first tick it held back,
    # once the first run ended; allow: every tick.
    t = [at(f"2026-06-01T10:{m:02d}", "UTC") for m in range(1, 5)]
    assert results == {Overlap.SKIP: t[:1], Overlap.BUFFER_ONE: t[:2], Overlap.ALLOW: t}


async def test_catch_up_after_downtime(store: RedisStore) -> None:
    tz = "UTC"
    down = at("2026-06-01T09:59", tz)
    back = at("2026-06-01T13:20", tz)
    started = {}
    for catch_up, window in ((CatchUp.SKIP, 0), (CatchUp.RUN_LAST, 30 * MIN)):
        api = Api()
        await put(store, "0 * * * *", tz, down, catch_up=catch_up, catch_up_window_ms=window)
        clock = Clock(back)
        await asyncio.gather(*(r.fire_due() for r in replicas(store, api, States(), clock)))
        started[catch_up] = api.ticks()
        for s in await StoredSchedules(store).all():
            await StoredSchedules(store).delete(s.id)
    assert started == {CatchUp.SKIP: [], CatchUp.RUN_LAST: [at("2026-06-01T13:00", tz)]}


class Interleaved:
    """The store's schedule table, where another writer acts right after each first read."""

    def __init__(self, table: RedisStore, meanwhile: Any) -> None:
        self._t = table
        self._meanwhile = meanwhile
        self.reads = 0

    async def get_schedule(self, schedule_id: str) -> str | None:
        raw = await self._t.get_schedule(schedule_id)
        self.reads += 1
        if self.reads == 1:
            await self._meanwhile()
        return raw

    async def swap_schedule(self, schedule_id: str, expected: str, value: str) -> bool:
        return await self._t.swap_schedule(schedule_id, expected, value)


async def test_a_write_between_read_and_update_is_never_lost(store: RedisStore) -> None:
    now = at("2026-06-01T10:00:30", "UTC")
    s = await put(store, "* * * * *", "UTC", now)
    plain = StoredSchedules(store)

    async def pause() -> None:
        await plain.put(replace(s, paused=True))

    table = Interleaved(store, pause)
    moved = await StoredSchedules(table).update(s.id, lambda c: replace(c, next_fire_ms=1))  # type: ignore[arg-type]
    # The update started over from the paused schedule.
    assert moved is not None and moved.paused and moved.next_fire_ms == 1 and table.reads == 2
    t = await put(store, "* * * * *", "UTC", now)

    async def delete() -> None:
        await plain.delete(t.id)

    gone = StoredSchedules(Interleaved(store, delete))  # type: ignore[arg-type]
    assert await gone.update(t.id, lambda c: replace(c, next_fire_ms=1)) is None
    assert await plain.get(t.id) is None


class RefusingApi(Api):
    def __init__(self, error: Exception, times: int) -> None:
        super().__init__()
        self.error = error
        self.times = times

    async def start(self, schedule: Schedule, tick_ms: int, idempotency_key: str) -> str:
        if self.times > 0:
            self.times -= 1
            raise self.error
        return await super().start(schedule, tick_ms, idempotency_key)


async def test_an_api_outage_retries_the_tick_and_a_refusal_passes_it_over(
    store: RedisStore,
) -> None:
    tick = at("2026-06-01T10:01", "UTC")
    outcomes = {}
    for name, error in (
        ("outage", Unavailable("the API is away")),
        ("refusal", InvalidArgument.field("workflow", "no longer valid")),
    ):
        clock = Clock(at("2026-06-01T10:00:30", "UTC"))
        api = RefusingApi(error, times=2)
        s = await put(store, "* * * * *", "UTC", clock.ms)
        (r,) = replicas(store, api, States(), clock, n=1)
        clock.ms = tick + 1000
        for _ in range(3):
            await r.fire_due()
            clock.ms += 1000
        outcomes[name] = api.ticks()
        after = await StoredSchedules(store).get(s.id)
        assert after is not None and after.next_fire_ms == tick + MIN
        await StoredSchedules(store).delete(s.id)
    # An outage: the same tick asked for again until the API answers; a
    # refusal: the tick is passed over (the next one is asked for as usual).
    assert outcomes == {"outage": [tick], "refusal": []}
