"""The trigger data of a cron run: its schedule and the tick it ran for.

Written once by ScheduleRunService and read back for GetExecution, so an
execution carries its schedule without a column of its own. ``scheduled_at``
is also what the ``schedule_trigger`` node adds to its items.
"""

from __future__ import annotations

from datetime import datetime

import orjson

__all__ = ["schedule_of", "trigger_data"]


def trigger_data(schedule_id: str, scheduled: datetime) -> dict[str, str]:
    return {"schedule_id": schedule_id, "scheduled_at": scheduled.isoformat()}


def schedule_of(trigger_kind: str, trigger_data_json: str) -> tuple[str, datetime] | None:
    """The schedule id and tick of a cron run's trigger data; None for any other execution."""
    if trigger_kind != "schedule" or not trigger_data_json:
        return None
    try:
        data = orjson.loads(trigger_data_json)
        schedule_id = data["schedule_id"]
        at = datetime.fromisoformat(data["scheduled_at"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        # A cron run recorded from its events before schedules named themselves.
        return None
    if not isinstance(schedule_id, str) or at.tzinfo is None:
        return None
    return schedule_id, at
