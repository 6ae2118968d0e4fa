"""Folding execution events into stored state, for the history recorder.

Both repository adapters insert each event keyed by (execution, sequence)
first and fold only the events that were new, so a replayed event changes
nothing. Folding is pure: events in, row patches out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import orjson

from nodedrop.api.model import RecordedEvent, Status

__all__ = ["ExecutionPatch", "NodeRunUpsert", "fold"]

_EXECUTION_STATUS = {
    "execution_queued": Status.QUEUED,
    "execution_started": Status.RUNNING,
    "execution_retrying": Status.RETRY_SCHEDULED,
    "execution_completed": Status.COMPLETED,
    "execution_failed": Status.FAILED,
    "execution_cancelled": Status.CANCELLED,
    "execution_timed_out": Status.TIMED_OUT,
}
_TERMINAL_EVENTS = frozenset(
    {"execution_completed", "execution_failed", "execution_cancelled", "execution_timed_out"}
)
_ENDED = frozenset(_EXECUTION_STATUS[t] for t in _TERMINAL_EVENTS)
_NODE_STATUS = {
    "node_started": "running",
    "node_completed": "completed",
    "node_failed": "failed",
    "node_skipped": "skipped",
}


@dataclass(frozen=True, slots=True)
class ExecutionPatch:
    execution_id: str
    status: Status | None
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    error_json: str | None
    result_json: str | None
    last_sequence: int


@dataclass(frozen=True, slots=True)
class NodeRunUpsert:
    execution_id: str
    node_id: str
    attempt: int
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    error_json: str | None
    output_item_count: int
    outputs_json: str | None


def _main_count(data_json: str) -> int:
    if not data_json:
        return 0
    try:
        ports = orjson.loads(data_json)
    except orjson.JSONDecodeError:
        return 0
    main = ports.get("main") if isinstance(ports, dict) else None
    return len(main) if isinstance(main, list) else 0


def _with_node(error_json: str | None, node_id: str | None) -> str | None:
    if not error_json or not node_id:
        return error_json
    try:
        error = orjson.loads(error_json)
    except orjson.JSONDecodeError:
        return error_json
    if not isinstance(error, dict) or error.get("node_id"):
        return error_json
    error["node_id"] = node_id
    return orjson.dumps(error).decode()


class _Folding:
    """An execution's patch while its batch is folded (mutable: one object per
    execution instead of a frozen copy per event, the recorder's hot loop)."""

    __slots__ = (
        "attempt",
        "ended_attempt",
        "error_json",
        "execution_id",
        "failed_node",
        "finished_at",
        "last_sequence",
        "result_json",
        "started_at",
        "status",
    )

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        self.status: Status | None = None
        self.attempt = 0
        self.ended_attempt = 0
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.error_json: str | None = None
        self.result_json: str | None = None
        self.last_sequence = 0
        # The store's event error has no node field: the execution's error
        # names the node whose NODE_FAILED came last (seen in the same batch).
        self.failed_node: str | None = None

    def patch(self) -> ExecutionPatch:
        return ExecutionPatch(
            self.execution_id,
            self.status,
            self.attempt,
            self.started_at,
            self.finished_at,
            self.error_json,
            self.result_json,
            self.last_sequence,
        )


_OPEN = frozenset({Status.QUEUED, Status.RUNNING, Status.RETRY_SCHEDULED})


def fold(events: Iterable[RecordedEvent]) -> tuple[list[ExecutionPatch], list[NodeRunUpsert]]:
    """One patch per execution and one upsert per node-run event, in sequence order."""
    folding: dict[str, _Folding] = {}
    runs: list[NodeRunUpsert] = []
    for ev in sorted(events, key=lambda e: (e.execution_id, e.sequence)):
        f = folding.get(ev.execution_id)
        if f is None:
            f = folding[ev.execution_id] = _Folding(ev.execution_id)
        f.attempt = max(f.attempt, ev.attempt)
        f.last_sequence = max(f.last_sequence, ev.sequence)
        status = _EXECUTION_STATUS.get(ev.type)
        if status is not None:
            if f.status in _ENDED and ev.attempt > f.ended_attempt:
                # A failed-queue retry: the same execution again, a new round at
                # a later attempt; what the earlier round ended with is gone.
                f.status = f.finished_at = f.error_json = f.result_json = f.failed_node = None
            if f.status is None or f.status in _OPEN:
                f.status = status
            if ev.type == "execution_started" and f.started_at is None:
                f.started_at = ev.time
            if ev.type in _TERMINAL_EVENTS:
                f.ended_attempt = ev.attempt
                f.finished_at = f.finished_at or ev.time
                f.error_json = _with_node(ev.error_json, f.failed_node) or f.error_json
                if ev.type == "execution_completed":
                    f.result_json = ev.data_json
            continue
        node_status = _NODE_STATUS.get(ev.type)
        if ev.type == "node_failed" and ev.node_id:
            f.failed_node = ev.node_id
        if node_status is not None and ev.node_id:
            done = ev.type != "node_started"
            runs.append(
                NodeRunUpsert(
                    execution_id=ev.execution_id,
                    node_id=ev.node_id,
                    attempt=ev.attempt,
                    status=node_status,
                    started_at=ev.time if ev.type in ("node_started", "node_skipped") else None,
                    finished_at=ev.time if done else None,
                    error_json=ev.error_json if ev.type == "node_failed" else None,
                    output_item_count=(
                        _main_count(ev.data_json) if ev.type == "node_completed" else 0
                    ),
                    outputs_json=(ev.data_json or None if ev.type == "node_completed" else None),
                )
            )
    return [f.patch() for f in folding.values()], runs
