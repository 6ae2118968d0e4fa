"""The engine's default execution settings as JobSpec keyword arguments: the store
keeps no defaults of its own, so a test's job says what it runs with."""

from __future__ import annotations

import uuid
from typing import TypedDict

from nodedrop.engine import WorkflowSettings
from nodedrop.store.keys import Keys

__all__ = ["DEFAULT_JOB_SETTINGS", "JobSettings", "ids_in"]


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


def ids_in(keys: Keys, partition: int, n: int, tag: str) -> list[str]:
    """``n`` new execution ids that land in ``partition``."""
    out: list[str] = []
    while len(out) < n:
        x = f"{tag}-{uuid.uuid4().hex[:10]}"
        if keys.partition(x) == partition:
            out.append(x)
    return out
