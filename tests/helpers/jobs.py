"""The engine's default execution settings as JobSpec keyword arguments: the store
keeps no defaults of its own, so a test's job says what it runs with."""

from __future__ import annotations

from typing import TypedDict

from nodedrop.engine import WorkflowSettings

__all__ = ["DEFAULT_JOB_SETTINGS", "JobSettings"]


class JobSettings(TypedDict):
    max_attempts: int
    backoff_s: float
    timeout_s: float


_DEFAULTS = WorkflowSettings()
DEFAULT_JOB_SETTINGS = JobSettings(
    max_attempts=_DEFAULTS.max_attempts,
    backoff_s=_DEFAULTS.backoff_s,
    timeout_s=_DEFAULTS.timeout_s,
)
