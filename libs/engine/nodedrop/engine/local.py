"""Direct mode: run a workflow in this process with in-memory ports.

Emits the execution-level events around the executor's node events, each with
a gap-free per-execution sequence number starting at 1.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nodedrop.engine.cancel import CancelToken
from nodedrop.engine.config import EngineConfig
from nodedrop.engine.events import EngineEvent, EventType
from nodedrop.engine.executor import run_workflow
from nodedrop.engine.model import NodeOutputs, Workflow
from nodedrop.engine.results import ExecutionInfo, ExecutionResult, ExecutionStatus

_END_EVENTS = {
    ExecutionStatus.COMPLETED: EventType.EXECUTION_COMPLETED,
    ExecutionStatus.FAILED: EventType.EXECUTION_FAILED,
    ExecutionStatus.CANCELLED: EventType.EXECUTION_CANCELLED,
    ExecutionStatus.TIMED_OUT: EventType.EXECUTION_TIMED_OUT,
}


@dataclass(frozen=True, slots=True)
class SequencedEvent:
    execution_id: str
    sequence: int
    attempt: int
    event: EngineEvent

    def to_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "sequence": self.sequence,
            "attempt": self.attempt,
            **self.event.to_dict(),
        }


class SequencingSink:
    """Numbers events in arrival order; NODE_COMPLETED arrives through ``save``."""

    def __init__(
        self, info: ExecutionInfo, listener: Callable[[SequencedEvent], None] | None = None
    ) -> None:
        self.info = info
        self.events: list[SequencedEvent] = []
        self.outputs: dict[str, NodeOutputs] = {}
        self._listener = listener

    async def emit(self, event: EngineEvent) -> None:
        seq = SequencedEvent(self.info.id, len(self.events) + 1, self.info.attempt, event)
        self.events.append(seq)
        if self._listener is not None:
            self._listener(seq)

    async def save(self, node_id: str, outputs: NodeOutputs, event: EngineEvent) -> None:
        self.outputs[node_id] = outputs
        await self.emit(event)


@dataclass(frozen=True, slots=True)
class LocalRun:
    execution_id: str
    result: ExecutionResult
    events: list[SequencedEvent] = field(default_factory=list)
    # Every node's outputs per port, as checkpointed.
    node_outputs: dict[str, NodeOutputs] = field(default_factory=dict)


async def run_local(
    workflow: Workflow,
    trigger_data: Any = None,
    *,
    execution_id: str | None = None,
    attempt: int = 1,
    workflow_id: str = "",
    config: EngineConfig | None = None,
    cancel: CancelToken | asyncio.Event | None = None,
    timeout_s: float | None = None,
    completed: Mapping[str, NodeOutputs] | None = None,
    on_event: Callable[[SequencedEvent], None] | None = None,
) -> LocalRun:
    """Run ``workflow`` in process; raises ValidationError before any event if it is invalid."""
    info = ExecutionInfo(execution_id or str(uuid.uuid4()), attempt, workflow_id)
    sink = SequencingSink(info, on_event)
    if config is not None:
        # Validate (and compile) first, so an invalid workflow emits nothing.
        from nodedrop.engine.plan import get_plan  # noqa: PLC0415

        get_plan(workflow, config.registry, config.limits)
    await sink.emit(EngineEvent(EventType.EXECUTION_STARTED, None, time.time()))
    result = await run_workflow(
        workflow,
        execution=info,
        trigger_data=trigger_data,
        sink=sink,
        checkpoints=sink,
        completed=completed,
        cancel=cancel,
        timeout_s=timeout_s,
        config=config,
    )
    await sink.emit(
        EngineEvent(
            _END_EVENTS[result.status],
            None,
            time.time(),
            result.outputs if result.ok else None,
            result.error,
        )
    )
    return LocalRun(info.id, result, sink.events, sink.outputs)
