"""Checks of a job spec, shared by both adapters so they refuse the same things."""

from __future__ import annotations

import math
import re

from nodedrop.store.errors import InvalidJob
from nodedrop.store.model import JobSpec

# What can name an execution or a tenant: the API's UUIDs and the scheduler's
# cron run ids (``sch_<id>-<tick ms>``) alike.
ID_PATTERN = "[A-Za-z0-9_.:-]{1,128}"
_ID = re.compile(ID_PATTERN)


def is_valid_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


def validate_spec(spec: JobSpec) -> None:
    if not is_valid_id(spec.execution_id):
        raise InvalidJob("execution_id", f"must match {ID_PATTERN}")
    if not spec.workflow_json:
        raise InvalidJob("workflow", "is required")
    if spec.max_attempts < 1 or spec.max_attempts > 100:
        raise InvalidJob("max_attempts", "must be within 1..100")
    if not math.isfinite(spec.backoff_s) or spec.backoff_s < 0:
        raise InvalidJob("backoff", "must be a finite duration >= 0")
    if not math.isfinite(spec.timeout_s) or spec.timeout_s <= 0:
        raise InvalidJob("timeout", "must be a finite duration > 0")
    if spec.attempt < 1:
        raise InvalidJob("attempt", "must be >= 1")
    if spec.run_at_ms < 0:
        raise InvalidJob("run_time", "must not be before the epoch")
    if not is_valid_id(spec.tenant_id or "-"):
        raise InvalidJob("tenant_id", f"must match {ID_PATTERN}")
