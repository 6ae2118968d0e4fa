"""When a schedule fires, as pure functions of its settings and an injected "now".

Ticks are wall-clock times of the schedule's IANA time zone, found by
croniter on naive local times and only then placed on the time line, so a
daylight-saving change neither repeats nor loses a day's run:

- a wall time that does not exist that day (02:30 when clocks jump from
  02:00 to 03:00) fires once, as far after the jump as it was after 02:00
  (03:30 in the new offset);
- a wall time that occurs twice (01:30 when clocks go back from 02:00 to
  01:00) fires once, at its first occurrence.

Everything here is deterministic: every scheduler replica computes the same
ticks, jitter and decisions from the same schedule, which is what lets them
fire a tick once between them.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from nodedrop.engine.schedule_rules import CatchUp, Overlap, ScheduleError, check_schedule, zone

__all__ = [
    "Action",
    "CatchUp",
    "Overlap",
    "Plan",
    "ScheduleError",
    "Timing",
    "check_timing",
    "jitter_offset_ms",
    "next_tick_ms",
    "on_tick",
    "plan",
    "previous_tick_ms",
]

# Candidates a search may skip (instants that fall before the start after a
# backward change, or repeat one already passed after a forward one) before
# it gives up; two are ever needed.
_MAX_SKIPS = 8


class Action(enum.Enum):
    START = "start"
    SKIP = "skip"
    BUFFER = "buffer"


@dataclass(frozen=True, slots=True)
class Timing:
    cron: str
    timezone: str
    jitter_ms: int = 0
    catch_up: CatchUp = CatchUp.SKIP
    catch_up_window_ms: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    """What a due check decided: the tick to run now (if any) and the next one to wait for."""

    fire_tick_ms: int | None
    next_tick_ms: int
    # Ticks passed over without a run (missed during downtime, or too late).
    missed: int


def check_timing(t: Timing) -> None:
    """Raises ScheduleError naming the first bad field (the engine's one check)."""
    check_schedule(
        t.cron,
        t.timezone,
        jitter_ms=t.jitter_ms,
        catch_up=t.catch_up,
        catch_up_window_ms=t.catch_up_window_ms,
    )


def _wall(ms: int, tz: ZoneInfo) -> datetime:
    """The naive local wall time at instant ``ms``."""
    return datetime.fromtimestamp(ms / 1000, tz=tz).replace(tzinfo=None)


def _instant(wall: datetime, tz: ZoneInfo) -> int:
    # fold=0: a repeated wall time is its first occurrence; a missing one
    # takes the offset from before the change, which lands after the jump.
    return int(wall.replace(tzinfo=tz, fold=0).timestamp() * 1000)


def next_tick_ms(cron: str, timezone: str, after_ms: int) -> int:
    """The first tick strictly after ``after_ms``."""
    tz = zone(timezone)
    it = croniter(cron, _wall(after_ms, tz))
    for _ in range(_MAX_SKIPS):
        at = _instant(it.get_next(datetime), tz)
        if at > after_ms:
            return at
    raise ScheduleError("cron", "no tick found after the given time")


def previous_tick_ms(cron: str, timezone: str, at_or_before_ms: int) -> int:
    """The last tick at or before ``at_or_before_ms``."""
    tz = zone(timezone)
    # croniter's get_prev is strictly before its start: start a minute on.
    start = _wall(at_or_before_ms, tz).replace(second=0, microsecond=0) + timedelta(minutes=1)
    it = croniter(cron, start)
    for _ in range(_MAX_SKIPS):
        at = _instant(it.get_prev(datetime), tz)
        if at <= at_or_before_ms:
            return at
    raise ScheduleError("cron", "no tick found before the given time")


def jitter_offset_ms(schedule_id: str, tick_ms: int, jitter_ms: int) -> int:
    """A delay in [0, jitter_ms], the same on every replica for this schedule and tick."""
    if jitter_ms <= 0:
        return 0
    digest = hashlib.sha256(f"{schedule_id}:{tick_ms}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (jitter_ms + 1)


def plan(t: Timing, schedule_id: str, next_ms: int, now_ms: int, late_ms: int) -> Plan:
    """Which tick runs at ``now_ms`` for a schedule waiting for tick ``next_ms``.

    A tick is due once its jitter has passed. Of the ticks due, only the
    latest may run: it runs if it is at most ``late_ms`` late (the
    scheduler's own tolerance, so a slow poll is not a missed tick) or, with
    catch-up ``run_last``, at most the catch-up window late. The others are
    missed.
    """
    if now_ms < next_ms + jitter_offset_ms(schedule_id, next_ms, t.jitter_ms):
        return Plan(None, next_ms, 0)
    # The caller's next tick need not lie on the cron (it may have been set
    # by hand); any cron tick after it counts too.
    latest = max(next_ms, previous_tick_ms(t.cron, t.timezone, now_ms))
    missed = 0 if latest == next_ms else 1 + _ticks_between(t, next_ms, latest)
    due_at = latest + jitter_offset_ms(schedule_id, latest, t.jitter_ms)
    if now_ms < due_at:
        # The latest tick's jitter is still running: wait for it.
        return Plan(None, latest, missed)
    allowed = late_ms
    if t.catch_up is CatchUp.RUN_LAST:
        allowed = max(allowed, t.catch_up_window_ms)
    following = next_tick_ms(t.cron, t.timezone, latest)
    if now_ms - due_at <= allowed:
        return Plan(latest, following, missed)
    return Plan(None, following, missed + 1)


def _ticks_between(t: Timing, after_ms: int, before_ms: int, limit: int = 1000) -> int:
    """Ticks strictly between the two instants, counted up to ``limit``."""
    n = 0
    at = after_ms
    while n < limit:
        at = next_tick_ms(t.cron, t.timezone, at)
        if at >= before_ms:
            break
        n += 1
    return n


def on_tick(overlap: Overlap, previous_running: bool, buffered: bool) -> Action:
    """What a due tick does, given whether the schedule's last run is still unfinished
    and whether a tick is already buffered behind it."""
    if not previous_running or overlap is Overlap.ALLOW:
        return Action.START
    if overlap is Overlap.BUFFER_ONE and not buffered:
        return Action.BUFFER
    return Action.SKIP
