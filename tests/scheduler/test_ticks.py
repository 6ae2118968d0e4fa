"""The pure schedule rules: ticks across daylight-saving changes, catch-up,
jitter and overlap, all on an injected "now"."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from nodedrop.common.settings import SettingsError
from nodedrop.scheduler.settings import QueueSettings
from nodedrop.scheduler.ticks import (
    Action,
    CatchUp,
    Overlap,
    ScheduleError,
    Timing,
    check_timing,
    jitter_offset_ms,
    next_tick_ms,
    on_tick,
    plan,
    previous_tick_ms,
)

MIN = 60_000
HOUR = 60 * MIN


def at(local: str, tz: str, fold: int = 0) -> int:
    return int(
        datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(tz), fold=fold).timestamp() * 1000
    )


def local(ms: int, tz: str) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).isoformat()


def ticks(cron: str, tz: str, start: int, n: int) -> list[str]:
    out = []
    for _ in range(n):
        start = next_tick_ms(cron, tz, start)
        out.append(local(start, tz))
    return out


@pytest.mark.parametrize(
    ("tz", "day_before", "expected"),
    [
        # Clocks jump 02:00 -> 03:00: 02:30 does not exist that day.
        (
            "Europe/Berlin",
            "2026-03-28T12:00",
            ["2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"],
        ),
        (
            "America/New_York",
            "2026-03-07T12:00",
            ["2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00"],
        ),
    ],
)
def test_spring_forward_runs_a_missing_time_once_after_the_jump(
    tz: str, day_before: str, expected: list[str]
) -> None:
    assert ticks("30 2 * * *", tz, at(day_before, tz), 2) == expected


@pytest.mark.parametrize(
    ("tz", "day_before", "expected"),
    [
        # Clocks go back 02:00 -> 01:00: 01:30 happens twice; it runs once, the first time.
        (
            "America/New_York",
            "2026-10-31T12:00",
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
        ),
        (
            "Europe/Berlin",
            "2026-10-24T12:00",
            ["2026-10-25T01:30:00+02:00", "2026-10-26T01:30:00+01:00"],
        ),
    ],
)
def test_fall_back_runs_a_repeated_time_once(tz: str, day_before: str, expected: list[str]) -> None:
    assert ticks("30 1 * * *", tz, at(day_before, tz), 2) == expected


def test_fall_back_from_inside_the_repeated_hour_does_not_run_again() -> None:
    tz = "America/New_York"
    first = at("2026-11-01T01:30", tz)
    # 01:10 of the second pass (EST) comes after the 01:30 that already ran.
    second_pass = at("2026-11-01T01:10", tz, fold=1)
    assert second_pass > first
    assert local(next_tick_ms("30 1 * * *", tz, second_pass), tz) == "2026-11-02T01:30:00-05:00"
    assert next_tick_ms("30 1 * * *", tz, first) == at("2026-11-02T01:30", tz)


def test_a_daily_schedule_fires_once_a_day_through_both_changes() -> None:
    # A scheduler polling every minute of 2026 in New York: 365 runs of 01:30 and of 02:30.
    tz = "America/New_York"
    for cron in ("30 1 * * *", "30 2 * * *"):
        t = at("2025-12-31T12:00", tz)
        days = set()
        runs = 0
        while True:
            t = next_tick_ms(cron, tz, t)
            if t >= at("2027-01-01T00:00", tz):
                break
            runs += 1
            days.add(local(t, tz)[:10])
        assert runs == len(days) == 365


def test_previous_tick_is_at_or_before() -> None:
    tz = "Europe/Berlin"
    assert previous_tick_ms("0 * * * *", tz, at("2026-06-01T10:00", tz)) == at(
        "2026-06-01T10:00", tz
    )
    assert previous_tick_ms("0 * * * *", tz, at("2026-06-01T10:59", tz)) == at(
        "2026-06-01T10:00", tz
    )
    assert previous_tick_ms("30 2 * * *", tz, at("2026-03-29T04:00", tz)) == at(
        "2026-03-29T03:30", tz
    )


def test_jitter_is_bounded_deterministic_and_spread() -> None:
    offsets = [jitter_offset_ms("sch_a", t * MIN, 30_000) for t in range(500)]
    assert all(0 <= o <= 30_000 for o in offsets)
    # Replicas agree: the same inputs, the same offset.
    assert offsets == [jitter_offset_ms("sch_a", t * MIN, 30_000) for t in range(500)]
    assert len(set(offsets)) > 400
    assert jitter_offset_ms("sch_b", 0, 30_000) != jitter_offset_ms("sch_a", 0, 30_000)
    assert jitter_offset_ms("sch_a", 0, 0) == 0


HOURLY = Timing("0 * * * *", "UTC")
T0 = at("2026-06-01T10:00", "UTC")


def test_not_due_before_the_tick_and_its_jitter() -> None:
    assert plan(HOURLY, "s", T0, T0 - 1, MIN).fire_tick_ms is None
    jittered = Timing("0 * * * *", "UTC", jitter_ms=10 * MIN)
    offset = jitter_offset_ms("s", T0, 10 * MIN)
    assert offset > 0
    waiting = plan(jittered, "s", T0, T0 + offset - 1, MIN)
    assert waiting.fire_tick_ms is None and waiting.next_tick_ms == T0
    fired = plan(jittered, "s", T0, T0 + offset, MIN)
    assert fired.fire_tick_ms == T0 and fired.next_tick_ms == T0 + HOUR


def test_on_time_tick_fires_and_moves_to_the_next() -> None:
    p = plan(HOURLY, "s", T0, T0 + 500, MIN)
    assert (p.fire_tick_ms, p.next_tick_ms, p.missed) == (T0, T0 + HOUR, 0)


def test_catch_up_skip_runs_nothing_missed() -> None:
    # Down from before 10:00 until 13:20: 10:00 .. 13:00 were missed.
    p = plan(HOURLY, "s", T0, T0 + 3 * HOUR + 20 * MIN, MIN)
    assert p.fire_tick_ms is None
    assert p.next_tick_ms == T0 + 4 * HOUR
    assert p.missed == 4


def test_catch_up_run_last_runs_the_last_missed_tick_within_the_window() -> None:
    t = Timing("0 * * * *", "UTC", catch_up=CatchUp.RUN_LAST, catch_up_window_ms=30 * MIN)
    p = plan(t, "s", T0, T0 + 3 * HOUR + 20 * MIN, MIN)
    assert (p.fire_tick_ms, p.next_tick_ms, p.missed) == (T0 + 3 * HOUR, T0 + 4 * HOUR, 3)
    # Outside the window: nothing runs.
    late = plan(t, "s", T0, T0 + 3 * HOUR + 40 * MIN, MIN)
    assert late.fire_tick_ms is None and late.next_tick_ms == T0 + 4 * HOUR


def test_a_tick_set_off_the_cron_still_fires() -> None:
    p = plan(HOURLY, "s", T0 + 17, T0 + 20, MIN)
    assert p.fire_tick_ms == T0 + 17 and p.next_tick_ms == T0 + HOUR


def test_catch_up_across_spring_forward_with_an_injected_clock() -> None:
    tz = "Europe/Berlin"
    t = Timing("30 2 * * *", tz, catch_up=CatchUp.RUN_LAST, catch_up_window_ms=2 * HOUR)
    before = at("2026-03-28T02:30", tz)
    nxt = next_tick_ms(t.cron, tz, before)
    # The scheduler was down over the change and is back at 04:00 CEST.
    p = plan(t, "s", nxt, at("2026-03-29T04:00", tz), MIN)
    assert p.fire_tick_ms == at("2026-03-29T03:30", tz)
    assert local(p.next_tick_ms, tz) == "2026-03-30T02:30:00+02:00"


@pytest.mark.parametrize(
    ("overlap", "running", "buffered", "action"),
    [
        (Overlap.SKIP, False, False, Action.START),
        (Overlap.SKIP, True, False, Action.SKIP),
        (Overlap.ALLOW, True, False, Action.START),
        (Overlap.BUFFER_ONE, True, False, Action.BUFFER),
        (Overlap.BUFFER_ONE, True, True, Action.SKIP),
        (Overlap.BUFFER_ONE, False, False, Action.START),
    ],
)
def test_overlap(overlap: Overlap, running: bool, buffered: bool, action: Action) -> None:
    assert on_tick(overlap, running, buffered) is action


@pytest.mark.parametrize(
    ("timing", "field"),
    [
        (Timing("61 * * * *", "UTC"), "cron"),
        (Timing("* * * *", "UTC"), "cron"),
        (Timing("* * * * *", "Mars/Base"), "timezone"),
        (Timing("* * * * *", "UTC", jitter_ms=-1), "jitter"),
        (Timing("* * * * *", "UTC", catch_up=CatchUp.RUN_LAST), "catch_up_window"),
    ],
)
def test_check_timing(timing: Timing, field: str) -> None:
    with pytest.raises(ScheduleError) as e:
        check_timing(timing)
    assert e.value.field == field


def test_the_late_tolerance_setting() -> None:
    assert QueueSettings.from_env({}).schedule_late_s == 60.0
    assert QueueSettings.from_env({"NODEDROP_SCHEDULE_LATE_S": "5"}).schedule_late_s == 5.0
    for bad in ("0", "-1", "soon", "7200"):
        with pytest.raises(SettingsError, match="NODEDROP_SCHEDULE_LATE_S"):
            QueueSettings.from_env({"NODEDROP_SCHEDULE_LATE_S": bad})
