"""What the consumer needs from an engine: run one attempt, report through a JobSink."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from nodedrop.engine.cancel import CancelToken
from nodedrop.store import EventDraft, EventError, ExecutionContext


class Ending(StrEnum):
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"


@dataclass(frozen=True, slots=True)
class RunOutcome:
    ending: Ending
    # EXECUTION_COMPLETED data: terminal node id -> main output items, as JSON text.
    result_json: str = ""
    error: EventError | None = None
    failed_node: str = ""


class JobSink(Protocol):
    """Where a run reports: events are buffered, checkpoints ride the next group commit."""

    def emit(self, draft: EventDraft) -> None: ...

    def checkpoint(self, node_id: str, outputs_json: str, completed: EventDraft) -> None: ...


class Runner(Protocol):
    async def run(self, ctx: ExecutionContext, sink: JobSink, cancel: CancelToken) -> RunOutcome:
        """Runs the attempt, resuming after ``ctx.outputs``; never raises for workflow faults."""
        ...


@runtime_checkable
class InlineRunner(Runner, Protocol):
    def runs_inline(self, ctx: ExecutionContext) -> bool:
        """True when the attempt never suspends for anything of its own (no timer,
        no I/O): the consumer then runs it on a task shared with other such attempts."""
        ...
