"""The executor's two ports, and in-memory adapters for direct mode and tests.

The executor passes NODE_COMPLETED to ``CheckpointStore.save`` and never to the
``EventSink``: a durable adapter must store the node's outputs, mark it done and
append the event in one atomic step, so a crash can never record one without
the others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from nodedrop.engine.events import EngineEvent
from nodedrop.engine.model import NodeOutputs


@runtime_checkable
class EventSink(Protocol):
    async def emit(self, event: EngineEvent) -> None: ...


@runtime_checkable
class CheckpointStore(Protocol):
    async def save(self, node_id: str, outputs: NodeOutputs, event: EngineEvent) -> None: ...


class NullSink:
    """Drops every event (sub-workflows, benchmarks)."""

    async def emit(self, event: EngineEvent) -> None:
        return None


class MemoryEventSink:
    """Keeps every event in order; optionally calls a listener as each one arrives."""

    def __init__(self, listener: Callable[[EngineEvent], None] | None = None) -> None:
        self.events: list[EngineEvent] = []
        self._listener = listener

    async def emit(self, event: EngineEvent) -> None:
        self.events.append(event)
        if self._listener is not None:
            self._listener(event)


class MemoryCheckpointStore:
    """Node outputs in a dict; NODE_COMPLETED goes on to ``sink`` (if any) in the same step."""

    def __init__(self, sink: EventSink | None = None) -> None:
        self.outputs: dict[str, NodeOutputs] = {}
        self._sink = sink

    async def save(self, node_id: str, outputs: NodeOutputs, event: EngineEvent) -> None:
        self.outputs[node_id] = outputs
        if self._sink is not None:
            await self._sink.emit(event)
