"""Rows of either repository (asyncpg records, sqlite3 rows) as records.

The two stores name their columns alike and differ in how they keep times
(PostgreSQL ``timestamptz``; SQLite microseconds since the epoch) and scopes
(a text array; a comma-separated string): each repository gives its
conversions once, and the mapping of columns to fields lives here only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nodedrop.api.model import (
    ApiKeyRecord,
    ExecutionRecord,
    NodeRunRecord,
    RecordedEvent,
    Scope,
    Status,
    WorkflowRecord,
)

__all__ = ["RowReader"]

# A row: anything indexable by column name (asyncpg.Record, sqlite3.Row).
Row = Any


@dataclass(frozen=True, slots=True)
class RowReader:
    # A stored time (or NULL) as a datetime (or None).
    time: Callable[[Any], datetime | None]
    # A stored list of scope names as its scope names.
    scope_names: Callable[[Any], Iterable[str]]

    def required_time(self, value: Any) -> datetime:
        result = self.time(value)
        if result is None:
            raise ValueError("a NOT NULL time column held NULL")
        return result

    def key(self, row: Row) -> ApiKeyRecord:
        return ApiKeyRecord(
            id=row["id"],
            tenant_id=row["tenant_id"],
            name=row["name"],
            key_hash=bytes(row["key_hash"]),
            scopes=tuple(Scope(s) for s in self.scope_names(row["scopes"])),
            prefix=row["prefix"],
            created_at=self.required_time(row["created_at"]),
            revoked_at=self.time(row["revoked_at"]),
        )

    def workflow(self, row: Row) -> WorkflowRecord:
        return WorkflowRecord(
            id=row["id"],
            tenant_id=row["tenant_id"],
            version=row["version"],
            name=row["name"],
            definition_json=row["definition"],
            created_at=self.required_time(row["created_at"]),
            updated_at=self.required_time(row["updated_at"]),
        )

    def execution(
        self, row: Row, definition_json: str, runs: tuple[NodeRunRecord, ...] = ()
    ) -> ExecutionRecord:
        return ExecutionRecord(
            id=row["id"],
            tenant_id=row["tenant_id"],
            workflow_id=row["workflow_id"],
            workflow_version=row["workflow_version"],
            definition_json=definition_json,
            status=Status(row["status"]),
            mode=row["mode"],
            trigger_kind=row["trigger_kind"],
            trigger_data_json=row["trigger_data"],
            attempt=row["attempt"],
            max_attempts=row["max_attempts"],
            priority=row["priority"],
            idempotency_key=row["idempotency_key"],
            retry_of=row["retry_of"],
            trace_id=row["trace_id"],
            created_at=self.required_time(row["created_at"]),
            run_at=self.required_time(row["run_at"]),
            started_at=self.time(row["started_at"]),
            finished_at=self.time(row["finished_at"]),
            error_json=row["error"],
            result_json=row["result"],
            last_sequence=row["last_sequence"],
            node_runs=runs,
        )

    def node_run(self, row: Row) -> NodeRunRecord:
        return NodeRunRecord(
            node_id=row["node_id"],
            attempt=row["attempt"],
            status=row["status"],
            started_at=self.time(row["started_at"]),
            finished_at=self.time(row["finished_at"]),
            error_json=row["error"],
            output_item_count=row["output_item_count"],
            outputs_json=row["outputs"],
        )

    def event(self, row: Row) -> RecordedEvent:
        return RecordedEvent(
            execution_id=row["execution_id"],
            sequence=row["sequence"],
            type=row["type"],
            time=self.required_time(row["time"]),
            node_id=row["node_id"],
            attempt=row["attempt"],
            data_json=row["data"],
            error_json=row["error"],
        )
