"""Span ids a later process can name without having seen the span.

A retry's execution span links to the attempt before it, which ran in another
process and left nothing in the queue that names its span. The attempt that
schedules a retry therefore records a marker span whose id is derived from
(trace, execution, attempt); the next attempt derives the same id and links
to it. Every other span keeps a random id.
"""

from __future__ import annotations

import hashlib
from contextvars import ContextVar

from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

__all__ = ["AttemptIdGenerator", "attempt_span_id", "forced_span_id"]

# Set only around the start of a marker span, by nodedrop.common.tracing.
forced_span_id: ContextVar[int | None] = ContextVar("nodedrop_forced_span_id", default=None)


def attempt_span_id(trace_id: int, execution_id: str, attempt: int) -> int:
    """The marker span id of ``attempt``: stable across processes, never 0."""
    digest = hashlib.blake2b(
        f"{trace_id:032x}/{execution_id}/{attempt}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") or 1


class AttemptIdGenerator(RandomIdGenerator):
    """Random ids, except for a span started while ``forced_span_id`` is set."""

    def generate_span_id(self) -> int:
        forced = forced_span_id.get()
        if forced is not None:
            return forced
        return super().generate_span_id()
