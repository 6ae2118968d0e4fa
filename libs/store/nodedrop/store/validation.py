"""Checks of a job spec, shared by both adapters so they refuse the same things."""

from __future__ import annotations

import math
import re

from nodedrop.store.errors import InvalidJob
from nodedrop.store.model import JobSpec

_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def validate_spec(spec: JobSpec) -> None:
    if not _ID.match(spec.execution_id):
        raise InvalidJob("execution_id", "must match [A-Za-z0-9_.:-]{1,128}")
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
    if not _ID.match(spec.tenant_id or "-"):
        raise InvalidJob("tenant_id", "must match [A-Za-z0-9_.:-]{1,128}")
