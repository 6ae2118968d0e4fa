"""What a cron schedule may be: the one check of its cron, time zone and
policies, shared by the scheduler's CreateSchedule and the ``schedule_trigger``
node (whose parameters become the schedule its workflow's activation creates),
so both refuse a bad value with the same message.
"""

from __future__ import annotations

import enum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

__all__ = [
    "MAX_CATCH_UP_WINDOW_MS",
    "MAX_JITTER_MS",
    "CatchUp",
    "Overlap",
    "ScheduleError",
    "check_schedule",
    "zone",
]

MAX_JITTER_MS = 24 * 3600 * 1000
MAX_CATCH_UP_WINDOW_MS = 31 * 24 * 3600 * 1000


class ScheduleError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Overlap(enum.StrEnum):
    SKIP = "skip"
    ALLOW = "allow"
    BUFFER_ONE = "buffer_one"


class CatchUp(enum.StrEnum):
    SKIP = "skip"
    RUN_LAST = "run_last"


def zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError("timezone", f"unknown time zone {timezone!r}") from None


def check_schedule(
    cron: str,
    timezone: str,
    *,
    jitter_ms: int = 0,
    catch_up: CatchUp = CatchUp.SKIP,
    catch_up_window_ms: int = 0,
) -> None:
    """Raises ScheduleError naming the first bad field."""
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise ScheduleError("cron", "must be a valid five-field cron expression")
    zone(timezone)
    if not 0 <= jitter_ms <= MAX_JITTER_MS:
        raise ScheduleError("jitter", "must be within 0 s..24 h")
    if not 0 <= catch_up_window_ms <= MAX_CATCH_UP_WINDOW_MS:
        raise ScheduleError("catch_up_window", "must be within 0 s..31 days")
    if catch_up is CatchUp.RUN_LAST and catch_up_window_ms == 0:
        raise ScheduleError("catch_up_window", "is required with catch-up 'run_last'")
