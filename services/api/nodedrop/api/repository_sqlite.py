"""Embedded adapter of the ExecutionRepository port (stdlib sqlite3).

For `nodedrop dev` on a machine with only Python. One connection, used from
one dedicated thread, so the event loop never blocks on disk and SQLite's
single-writer rule holds without locking games.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, TypeVar

import orjson

from nodedrop.api.errors import NotFoundError, RouteTakenError, VersionConflictError
from nodedrop.api.history import fold
from nodedrop.api.model import (
    Activation,
    AdoptedExecution,
    ApiKeyRecord,
    ExecutionFilter,
    ExecutionRecord,
    NewExecution,
    NodeRunRecord,
    RecordedEvent,
    Scope,
    StatsRow,
    Status,
    WebhookRoute,
    WorkflowRecord,
)
from nodedrop.api.queries import SQLITE as Q
from nodedrop.api.repository import InsertOutcome
from nodedrop.api.repository_pg import build_stats
from nodedrop.api.rows import RowReader

__all__ = ["SqliteRepository"]

T = TypeVar("T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _dt(value: int | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value // 1_000_000, UTC).replace(microsecond=value % 1_000_000)


def _dt_req(value: int) -> datetime:
    result = _dt(value)
    assert result is not None
    return result


def _now_us() -> int:
    now = _us(datetime.now(UTC))
    assert now is not None
    return now


def _percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks, as percentile_cont does."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# Times are microseconds since the epoch; scopes a comma-separated string.
_ROWS = RowReader(time=_dt, scope_names=lambda value: (s for s in value.split(",") if s))


class SqliteRepository:
    def __init__(self, path: str) -> None:
        """`path` is a file name, or ":memory:" for a store that lives as long as this object."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nodedrop-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._path = path
        self._recovery = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> SqliteRepository:
        repo = cls(path)
        await repo._run(repo._open)
        return repo

    def _open(self) -> None:
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        schema = resources.files("nodedrop.api").joinpath("sql").joinpath("sqlite_schema.sql")
        conn.executescript(schema.read_text(encoding="utf-8"))
        self._conn = conn

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("SqliteRepository is closed or was not opened")
        return self._conn

    async def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._run(_close)
        self._executor.shutdown(wait=True)

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    # tenants and keys

    async def ensure_tenant(self, tenant_id: str, name: str) -> None:
        await self._run(
            lambda: self._db.execute(
                Q["ensure_tenant"], {"id": tenant_id, "name": name, "now": _now_us()}
            )
        )

    async def insert_api_key(
        self,
        key_id: str,
        tenant_id: str,
        *,
        name: str,
        key_hash: bytes,
        scopes: Sequence[Scope],
        prefix: str,
    ) -> ApiKeyRecord:
        params = {
            "id": key_id,
            "tenant_id": tenant_id,
            "name": name,
            "key_hash": key_hash,
            "scopes": ",".join(str(s) for s in scopes),
            "prefix": prefix,
            "now": _now_us(),
        }
        row = await self._run(lambda: self._db.execute(Q["insert_api_key"], params).fetchone())
        return _ROWS.key(row)

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        row = await self._run(lambda: self._db.execute(Q["get_api_key"], {"id": key_id}).fetchone())
        return _ROWS.key(row) if row is not None else None

    async def list_api_keys(self, tenant_id: str | None) -> list[ApiKeyRecord]:
        rows = await self._run(
            lambda: self._db.execute(Q["list_api_keys"], {"tenant_id": tenant_id}).fetchall()
        )
        return [_ROWS.key(r) for r in rows]

    async def revoke_api_key(self, key_id: str, tenant_id: str | None) -> ApiKeyRecord | None:
        params = {"id": key_id, "tenant_id": tenant_id, "now": _now_us()}
        row = await self._run(lambda: self._db.execute(Q["revoke_api_key"], params).fetchone())
        return _ROWS.key(row) if row is not None else None

    # workflows

    async def create_workflow(
        self, tenant_id: str, workflow_id: str, name: str, definition_json: str
    ) -> WorkflowRecord:
        now = _now_us()

        def work(db: sqlite3.Connection) -> None:
            params = {"id": workflow_id, "tenant_id": tenant_id, "name": name, "now": now}
            db.execute(Q["insert_workflow"], params)
            db.execute(
                Q["insert_workflow_version"],
                {
                    "id": workflow_id,
                    "version": 1,
                    "name": name,
                    "definition": definition_json,
                    "now": now,
                },
            )

        await self._run(self._tx, work)
        created = _dt_req(now)
        return WorkflowRecord(workflow_id, tenant_id, 1, name, definition_json, created, created)

    async def get_workflow(
        self, tenant_id: str, workflow_id: str, version: int | None
    ) -> WorkflowRecord | None:
        params = {"id": workflow_id, "tenant_id": tenant_id, "version": version}
        row = await self._run(lambda: self._db.execute(Q["get_workflow"], params).fetchone())
        return _ROWS.workflow(row) if row is not None else None

    async def list_workflows(
        self, tenant_id: str, name_prefix: str, after: tuple[str, str] | None, limit: int
    ) -> list[WorkflowRecord]:
        after_name, after_id = after if after is not None else ("", "")
        params = {
            "tenant_id": tenant_id,
            "prefix": name_prefix,
            "after_name": after_name,
            "after_id": after_id,
            "limit": limit,
        }
        rows = await self._run(lambda: self._db.execute(Q["list_workflows"], params).fetchall())
        return [_ROWS.workflow(r) for r in rows]

    async def update_workflow(
        self,
        tenant_id: str,
        workflow_id: str,
        name: str,
        definition_json: str,
        expected_version: int | None,
    ) -> WorkflowRecord:
        now = _now_us()

        def work(db: sqlite3.Connection) -> WorkflowRecord:
            row = db.execute(
                Q["lock_workflow"], {"id": workflow_id, "tenant_id": tenant_id}
            ).fetchone()
            if row is None:
                raise NotFoundError("workflow", workflow_id)
            current = int(row["latest_version"])
            if expected_version is not None and expected_version != current:
                raise VersionConflictError(workflow_id, expected_version, current)
            version = current + 1
            db.execute(
                Q["insert_workflow_version"],
                {
                    "id": workflow_id,
                    "version": version,
                    "name": name,
                    "definition": definition_json,
                    "now": now,
                },
            )
            db.execute(
                Q["bump_workflow"],
                {
                    "id": workflow_id,
                    "tenant_id": tenant_id,
                    "version": version,
                    "name": name,
                    "now": now,
                },
            )
            return WorkflowRecord(
                workflow_id,
                tenant_id,
                version,
                name,
                definition_json,
                _dt_req(row["created_at"]),
                _dt_req(now),
            )

        return await self._run(self._tx, work)

    async def delete_workflow(self, tenant_id: str, workflow_id: str) -> bool:
        params = {"id": workflow_id, "tenant_id": tenant_id, "now": _now_us()}
        row = await self._run(lambda: self._db.execute(Q["delete_workflow"], params).fetchone())
        return row is not None

    async def list_workflow_versions(
        self, tenant_id: str, workflow_id: str, before_version: int | None, limit: int
    ) -> list[WorkflowRecord] | None:
        latest = await self.get_workflow(tenant_id, workflow_id, None)
        if latest is None:
            return None
        params = {
            "id": workflow_id,
            "tenant_id": tenant_id,
            "before": before_version if before_version is not None else latest.version + 1,
            "limit": limit,
        }
        rows = await self._run(
            lambda: self._db.execute(Q["list_workflow_versions"], params).fetchall()
        )
        return [_ROWS.workflow(r) for r in rows]

    # active workflows and their webhook routes

    def _activation(
        self, db: sqlite3.Connection, tenant_id: str, workflow_id: str
    ) -> Activation | None:
        key = {"workflow_id": workflow_id, "tenant_id": tenant_id}
        row = db.execute(Q["get_activation"], key).fetchone()
        if row is None:
            return None
        routes = db.execute(Q["routes_of"], key).fetchall()
        return Activation(
            row["tenant_id"],
            row["workflow_id"],
            int(row["version"]),
            row["schedule_id"],
            tuple(_route(r) for r in routes),
        )

    async def activate(self, activation: Activation) -> Activation | None:
        a = activation

        def work(db: sqlite3.Connection) -> Activation | None:
            previous = self._activation(db, a.tenant_id, a.workflow_id)
            db.execute(
                Q["upsert_activation"],
                {
                    "workflow_id": a.workflow_id,
                    "tenant_id": a.tenant_id,
                    "version": a.version,
                    "schedule_id": a.schedule_id,
                    "now": _now_us(),
                },
            )
            db.execute(Q["delete_routes"], {"workflow_id": a.workflow_id})
            for r in a.routes:
                params = {
                    "tenant_id": r.tenant_id,
                    "path": r.path,
                    "workflow_id": r.workflow_id,
                    "version": r.version,
                    "node_id": r.node_id,
                }
                if db.execute(Q["insert_route"], params).fetchone() is None:
                    holder = db.execute(Q["route_holder"], params).fetchone()
                    raise RouteTakenError(r.path, str(holder["workflow_id"]))
            return previous

        return await self._run(self._tx, work)

    async def deactivate(self, tenant_id: str, workflow_id: str) -> Activation | None:
        def work(db: sqlite3.Connection) -> Activation | None:
            previous = self._activation(db, tenant_id, workflow_id)
            if previous is None:
                return None
            db.execute(Q["delete_routes"], {"workflow_id": workflow_id})
            db.execute(
                Q["delete_activation"], {"workflow_id": workflow_id, "tenant_id": tenant_id}
            ).fetchall()
            return previous

        return await self._run(self._tx, work)

    async def get_activation(self, tenant_id: str, workflow_id: str) -> Activation | None:
        return await self._run(lambda: self._activation(self._db, tenant_id, workflow_id))

    async def active_versions(self, tenant_id: str, workflow_ids: Sequence[str]) -> dict[str, int]:
        wanted = set(workflow_ids)
        rows = await self._run(
            lambda: self._db.execute(Q["active_versions"], {"tenant_id": tenant_id}).fetchall()
        )
        return {r["workflow_id"]: int(r["version"]) for r in rows if r["workflow_id"] in wanted}

    async def find_route(self, tenant_id: str, path: str) -> WebhookRoute | None:
        params = {"tenant_id": tenant_id, "path": path}
        row = await self._run(lambda: self._db.execute(Q["find_route"], params).fetchone())
        return _route(row) if row is not None else None

    # executions

    async def insert_executions(self, batch: Sequence[NewExecution]) -> list[InsertOutcome]:
        now = _now_us()

        def work(db: sqlite3.Connection) -> list[InsertOutcome]:
            outcomes: list[InsertOutcome] = []
            for e in batch:
                row = db.execute(
                    Q["insert_execution"],
                    {
                        "id": e.id,
                        "tenant_id": e.tenant_id,
                        "workflow_id": e.workflow_id,
                        "workflow_version": e.workflow_version,
                        "definition": e.definition_json,
                        "mode": e.mode,
                        "trigger_kind": e.trigger_kind,
                        "trigger_data": e.trigger_data_json,
                        "max_attempts": e.max_attempts,
                        "priority": e.priority,
                        "idempotency_key": e.idempotency_key,
                        "retry_of": e.retry_of,
                        "trace_id": e.trace_id,
                        "now": now,
                        "run_at": _us(e.run_at),
                    },
                ).fetchone()
                if row is not None:
                    outcomes.append(InsertOutcome(e.id, True, Status.QUEUED))
                    continue
                found = db.execute(
                    Q["find_by_idempotency_key"],
                    {"tenant_id": e.tenant_id, "key": e.idempotency_key},
                ).fetchone()
                outcomes.append(InsertOutcome(found["id"], False, Status(found["status"])))
            return outcomes

        return await self._run(self._tx, work)

    async def get_execution(
        self, tenant_id: str | None, execution_id: str, *, with_node_runs: bool = False
    ) -> ExecutionRecord | None:
        def work() -> ExecutionRecord | None:
            row = self._db.execute(
                Q["get_execution"], {"id": execution_id, "tenant_id": tenant_id}
            ).fetchone()
            if row is None:
                return None
            runs: tuple[NodeRunRecord, ...] = ()
            if with_node_runs:
                runs = tuple(
                    _ROWS.node_run(r)
                    for r in self._db.execute(Q["get_node_runs"], {"id": execution_id})
                )
            return _ROWS.execution(row, row["definition"], runs)

        return await self._run(work)

    async def list_executions(
        self,
        tenant_id: str,
        filt: ExecutionFilter,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[ExecutionRecord]:
        params = {
            "tenant_id": tenant_id,
            "workflow_id": filt.workflow_id,
            "statuses": orjson.dumps([str(s) for s in filt.statuses]).decode(),
            "triggers": orjson.dumps(list(filt.trigger_kinds)).decode(),
            "after_created": _us(filt.created_after),
            "before_created": _us(filt.created_before),
            "cursor_time": _us(after[0]) if after else None,
            "cursor_id": after[1] if after else "",
            "limit": limit,
        }
        rows = await self._run(lambda: self._db.execute(Q["list_executions"], params).fetchall())
        return [_ROWS.execution(r, r["definition"]) for r in rows]

    async def set_status(self, execution_id: str, status: Status, error_json: str | None) -> bool:
        params = {
            "id": execution_id,
            "status": str(status),
            "error": error_json,
            "terminal": status not in (Status.QUEUED, Status.RUNNING, Status.RETRY_SCHEDULED),
            "now": _now_us(),
        }
        row = await self._run(lambda: self._db.execute(Q["set_status"], params).fetchone())
        return row is not None

    async def list_unfinished(
        self,
        created_before: datetime,
        after: tuple[datetime, str] | None,
        limit: int,
        mode: str = "queue",
    ) -> list[ExecutionRecord]:
        params = {
            "mode": mode,
            "before": _us(created_before),
            "after_time": _us(after[0]) if after else -1,
            "after_id": after[1] if after else "",
            "limit": limit,
        }
        rows = await self._run(lambda: self._db.execute(Q["list_unfinished"], params).fetchall())
        return [_ROWS.execution(r, r["definition"]) for r in rows]

    async def count_unfinished(self, tenant_id: str) -> dict[Status, int]:
        rows = await self._run(
            lambda: self._db.execute(Q["count_unfinished"], {"tenant_id": tenant_id}).fetchall()
        )
        return {Status(r["status"]): int(r["n"]) for r in rows}

    async def list_failed_since(
        self, finished_since: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[ExecutionRecord]:
        params = {
            "since": _us(finished_since),
            "after_time": _us(after[0]) if after else -1,
            "after_id": after[1] if after else "",
            "limit": limit,
        }
        rows = await self._run(lambda: self._db.execute(Q["list_failed_since"], params).fetchall())
        return [_ROWS.execution(r, r["definition"]) for r in rows]

    async def reset_for_rerun(self, execution_id: str) -> bool:
        def reset(db: sqlite3.Connection) -> bool:
            if db.execute(Q["reset_for_rerun"], {"id": execution_id}).fetchone() is None:
                return False
            db.execute(Q["delete_events"], {"id": execution_id})
            return True

        return await self._run(lambda: self._tx(reset))

    @asynccontextmanager
    async def recovery_lock(self) -> AsyncIterator[bool]:
        # One process owns the embedded file: a lock within it is enough.
        if self._recovery.locked():
            yield False
            return
        async with self._recovery:
            yield True

    # history

    async def adopt_executions(self, seen: Sequence[AdoptedExecution]) -> int:
        def work(db: sqlite3.Connection) -> int:
            adopted = 0
            for a in seen:
                tenant = {"id": a.tenant_id, "name": a.tenant_id, "now": _now_us()}
                params = {
                    "id": a.id,
                    "tenant_id": a.tenant_id,
                    "workflow_id": a.workflow_id,
                    "seen": _us(a.first_seen),
                }
                if db.execute("SELECT 1 FROM executions WHERE id = ?", (a.id,)).fetchone():
                    continue
                db.execute(Q["ensure_tenant"], tenant)
                adopted += db.execute(Q["adopt_execution"], params).fetchone() is not None
            return adopted

        if not seen:
            return 0
        return await self._run(lambda: self._tx(work))

    async def record_events(self, events: Sequence[RecordedEvent]) -> int:
        def work(db: sqlite3.Connection) -> int:
            new: list[RecordedEvent] = []
            for e in events:
                row = db.execute(
                    Q["insert_event"],
                    {
                        "execution_id": e.execution_id,
                        "sequence": e.sequence,
                        "type": e.type,
                        "time": _us(e.time),
                        "node_id": e.node_id,
                        "attempt": e.attempt,
                        "data": e.data_json,
                        "error": e.error_json,
                    },
                ).fetchone()
                if row is not None:
                    new.append(e)
            patches, runs = fold(new)
            for p in patches:
                db.execute(
                    Q["apply_execution_patch"],
                    {
                        "id": p.execution_id,
                        "status": None if p.status is None else str(p.status),
                        "attempt": p.attempt,
                        "started_at": _us(p.started_at),
                        "finished_at": _us(p.finished_at),
                        "error": p.error_json,
                        "result": p.result_json,
                        "last_sequence": p.last_sequence,
                    },
                )
            for r in runs:
                db.execute(
                    Q["upsert_node_run"],
                    {
                        "execution_id": r.execution_id,
                        "node_id": r.node_id,
                        "attempt": r.attempt,
                        "status": r.status,
                        "started_at": _us(r.started_at),
                        "finished_at": _us(r.finished_at),
                        "error": r.error_json,
                        "output_item_count": r.output_item_count,
                        "outputs": r.outputs_json,
                    },
                )
            return len(new)

        if not events:
            return 0
        return await self._run(self._tx, work)

    async def list_events(
        self, execution_id: str, after_sequence: int, limit: int
    ) -> list[RecordedEvent]:
        params = {"id": execution_id, "after": after_sequence, "limit": limit}
        rows = await self._run(lambda: self._db.execute(Q["list_events"], params).fetchall())
        return [_ROWS.event(r) for r in rows]

    async def stats(
        self, tenant_id: str, workflow_id: str | None, start: datetime, end: datetime
    ) -> list[StatsRow]:
        params = {
            "tenant_id": tenant_id,
            "workflow_id": workflow_id,
            "start": _us(start),
            "end": _us(end),
        }

        def work() -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
            return (
                self._db.execute(Q["stats_executions"], params).fetchall(),
                self._db.execute(Q["stats_nodes"], params).fetchall(),
            )

        executions, node_runs = await self._run(work)
        counts: dict[tuple[str, str], int] = {}
        durations: dict[str, list[float]] = {}
        for r in executions:
            counts[(r["workflow_id"], r["status"])] = (
                counts.get((r["workflow_id"], r["status"]), 0) + 1
            )
            if r["started_at"] is not None and r["finished_at"] is not None:
                durations.setdefault(r["workflow_id"], []).append(
                    (r["finished_at"] - r["started_at"]) / 1e6
                )
        per_node: dict[tuple[str, str], tuple[int, int, list[float]]] = {}
        for r in node_runs:
            runs, failures, values = per_node.get((r["workflow_id"], r["node_id"]), (0, 0, []))
            if r["started_at"] is not None and r["finished_at"] is not None:
                values.append((r["finished_at"] - r["started_at"]) / 1e6)
            per_node[(r["workflow_id"], r["node_id"])] = (
                runs + 1,
                failures + (r["status"] == "failed"),
                values,
            )
        return build_stats(
            [(wf, status, n) for (wf, status), n in counts.items()],
            {wf: (_percentile(v, 0.5), _percentile(v, 0.95)) for wf, v in durations.items()},
            [
                (wf, node, runs, failures, _percentile(v, 0.5), _percentile(v, 0.95))
                for (wf, node), (runs, failures, v) in sorted(per_node.items())
            ],
        )

    async def stats_buckets(
        self,
        tenant_id: str,
        workflow_id: str | None,
        start: datetime,
        end: datetime,
        width: timedelta,
    ) -> list[tuple[int, Status, int]]:
        params = {
            "tenant_id": tenant_id,
            "workflow_id": workflow_id,
            "start": _us(start),
            "end": _us(end),
            "width": width // timedelta(microseconds=1),
        }
        rows = await self._run(lambda: self._db.execute(Q["stats_buckets"], params).fetchall())
        return [(int(r["bucket"]), Status(r["status"]), int(r["n"])) for r in rows]


def _route(row: sqlite3.Row) -> WebhookRoute:
    return WebhookRoute(
        row["tenant_id"], row["path"], row["workflow_id"], int(row["version"]), row["node_id"]
    )
