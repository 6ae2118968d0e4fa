"""PostgreSQL adapter of the ExecutionRepository port (asyncpg).

Every query is a named query from sql/queries.sql. Connection-level
failures become StoreUnavailableError at once (no retry loop inside a
request), so a caller gets a fast UNAVAILABLE while PostgreSQL restarts and
the pool reconnects on the next call.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from nodedrop.api.errors import (
    NotFoundError,
    RouteTakenError,
    StoreUnavailableError,
    VersionConflictError,
)
from nodedrop.api.history import fold
from nodedrop.api.model import (
    Activation,
    AdoptedExecution,
    ApiKeyRecord,
    ExecutionFilter,
    ExecutionRecord,
    NewExecution,
    NodeRunRecord,
    NodeStatsRow,
    RecordedEvent,
    Scope,
    StatsRow,
    Status,
    WebhookRoute,
    WorkflowRecord,
)
from nodedrop.api.queries import POSTGRES as Q
from nodedrop.api.repository import InsertOutcome
from nodedrop.api.rows import RowReader

__all__ = ["RECOVERY_LOCK_KEY", "PostgresRepository", "advisory_xact_lock", "create_pool"]

# Advisory lock key of orphan recovery ("ndrecov" as a number): one replica
# at a time runs a pass.
RECOVERY_LOCK_KEY = 0x6E647265636F76

# Errors that mean "the server is not reachable right now", as opposed to a
# bug in a query: asyncpg raises OSError subclasses while connecting and
# InterfaceError/ConnectionDoesNotExistError when a pooled connection died.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
    # Releasing a connection whose query the server's death interrupted
    # ("cannot switch to state ..."): the pool drops it and reconnects.
    asyncpg.InternalClientError,
)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release without asyncpg's default reset (RESET ALL, unlisten, ...):
    one round trip less per query. No query here leaves session state behind
    (a session may be a different server connection at every transaction
    behind PgBouncer); locks are transaction-scoped (``advisory_xact_lock``)."""
    return None


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    command_timeout: float = 5.0,
    statement_cache_size: int = 100,
) -> asyncpg.Pool:
    """``statement_cache_size`` is NODEDROP_PG_STATEMENT_CACHE_SIZE: 0 behind a
    transaction-pooling PgBouncer (docs/operations.md)."""
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            command_timeout=command_timeout,
            statement_cache_size=statement_cache_size,
            # Connect fails fast so a request never waits out a TCP timeout.
            timeout=2.0,
            reset=_keep_session,
        )
    except _UNAVAILABLE as exc:
        raise StoreUnavailableError("cannot connect to PostgreSQL", repr(exc)) from exc
    return pool


@asynccontextmanager
async def advisory_xact_lock(
    conn: asyncpg.Connection, key: int, *, wait: bool = False
) -> AsyncIterator[bool]:
    """Holds the advisory lock ``key`` for the block, in a transaction of
    ``conn`` opened for it; yields whether it got the lock (always True with
    ``wait``, which queues behind the holder).

    Transaction-scoped, not a session lock: behind a transaction-pooling
    PgBouncer a client's session is whichever server connection its current
    transaction got, so a session lock taken by one statement stays on a server
    connection other clients then use, and the unlock may run on another one:
    the lock leaks and blocks every replica. An open transaction keeps its
    server connection, and its lock ends with it: at the end of the block, or
    when the holder dies (PostgreSQL, or PgBouncer, ends a transaction whose
    client is gone). Not a lease table either: no expiry to tune against the
    longest pass, and a dead holder frees the lock at once rather than after
    the lease. The transaction writes nothing and idles without a snapshot,
    so it does not hold back vacuum."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        if wait:
            await conn.execute(Q["advisory_xact_lock"], key)
            locked = True
        else:
            locked = bool(await conn.fetchval(Q["try_advisory_xact_lock"], key))
        # A query with arguments leaves its unnamed portal open, and with it
        # its snapshot, until the transaction's next query; a statement of the
        # simple protocol drops it, so the transaction idles holding nothing
        # that would hold back vacuum during a long pass.
        await conn.execute(Q["drop_unnamed_portal"])
        yield locked
    finally:
        # Nothing to keep: the rollback only releases the lock. A connection
        # that died took its transaction, and the lock, with it.
        with contextlib.suppress(*_UNAVAILABLE):
            await transaction.rollback()


# asyncpg hands timestamptz columns over as datetimes already.
_ROWS = RowReader(time=lambda value: value, scope_names=lambda value: value)


def list_query(
    tenant_id: str, filt: ExecutionFilter, after: tuple[datetime, str] | None, limit: int
) -> tuple[str, tuple[object, ...]]:
    """ListExecutions' query for a filter and its arguments: each filter has a
    query an index serves in cursor order (migrations 0004 and 0006)."""
    after_time, after_id = after if after is not None else (None, "")
    window = (filt.created_after, filt.created_before, after_time, after_id, limit)
    statuses = [str(s) for s in filt.statuses]
    triggers = list(filt.trigger_kinds)
    if filt.workflow_id is not None:
        every = statuses or [str(s) for s in Status]
        return Q["list_executions_by_workflow"], (
            tenant_id,
            filt.workflow_id,
            every,
            *window,
            triggers,
        )
    if triggers:
        every = statuses or [str(s) for s in Status]
        return Q["list_executions_by_trigger"], (tenant_id, triggers, every, *window)
    if statuses:
        return Q["list_executions_by_status"], (tenant_id, statuses, *window)
    return Q["list_executions"], (tenant_id, *window)


def _definition(row: asyncpg.Record) -> str:
    text = row["definition"]
    if text is None:
        # A reference to the stored version (migration 0003), joined in.
        # Versions are never removed; if one were, "" is a definition that
        # does not parse, which recovery fails with a reason.
        text = row["version_definition"] or ""
    return str(text)


class PostgresRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, dsn: str, **pool_options: Any) -> PostgresRepository:
        return cls(await create_pool(dsn, **pool_options))

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self._pool.acquire(timeout=2.0) as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError("PostgreSQL is unavailable", repr(exc)) from exc

    # tenants and keys

    async def ensure_tenant(self, tenant_id: str, name: str) -> None:
        async with self._conn() as conn:
            await conn.execute(Q["ensure_tenant"], tenant_id, name)

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
        async with self._conn() as conn:
            row = await conn.fetchrow(
                Q["insert_api_key"],
                key_id,
                tenant_id,
                name,
                key_hash,
                [str(s) for s in scopes],
                prefix,
            )
        assert row is not None
        return _ROWS.key(row)

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(Q["get_api_key"], key_id)
        return _ROWS.key(row) if row is not None else None

    async def list_api_keys(self, tenant_id: str | None) -> list[ApiKeyRecord]:
        async with self._conn() as conn:
            if tenant_id is None:
                rows = await conn.fetch(Q["list_all_api_keys"])
            else:
                rows = await conn.fetch(Q["list_api_keys"], tenant_id)
        return [_ROWS.key(r) for r in rows]

    async def revoke_api_key(self, key_id: str, tenant_id: str | None) -> ApiKeyRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(Q["revoke_api_key"], key_id, tenant_id)
        return _ROWS.key(row) if row is not None else None

    # workflows

    async def create_workflow(
        self, tenant_id: str, workflow_id: str, name: str, definition_json: str
    ) -> WorkflowRecord:
        async with self._conn() as conn, conn.transaction():
            await conn.execute(Q["insert_workflow"], workflow_id, tenant_id, name)
            created = await conn.fetchval(
                Q["insert_workflow_version"], workflow_id, 1, name, definition_json
            )
        return WorkflowRecord(workflow_id, tenant_id, 1, name, definition_json, created, created)

    async def get_workflow(
        self, tenant_id: str, workflow_id: str, version: int | None
    ) -> WorkflowRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(Q["get_workflow"], workflow_id, tenant_id, version)
        return _ROWS.workflow(row) if row is not None else None

    async def list_workflows(
        self, tenant_id: str, name_prefix: str, after: tuple[str, str] | None, limit: int
    ) -> list[WorkflowRecord]:
        after_name, after_id = after if after is not None else ("", "")
        async with self._conn() as conn:
            rows = await conn.fetch(
                Q["list_workflows"], tenant_id, name_prefix, after_name, after_id, limit
            )
        return [_ROWS.workflow(r) for r in rows]

    async def update_workflow(
        self,
        tenant_id: str,
        workflow_id: str,
        name: str,
        definition_json: str,
        expected_version: int | None,
    ) -> WorkflowRecord:
        async with self._conn() as conn, conn.transaction():
            row = await conn.fetchrow(Q["lock_workflow"], workflow_id, tenant_id)
            if row is None:
                raise NotFoundError("workflow", workflow_id)
            current = int(row["latest_version"])
            if expected_version is not None and expected_version != current:
                raise VersionConflictError(workflow_id, expected_version, current)
            version = current + 1
            await conn.fetchval(
                Q["insert_workflow_version"], workflow_id, version, name, definition_json
            )
            updated = await conn.fetchval(Q["bump_workflow"], workflow_id, tenant_id, version, name)
        return WorkflowRecord(
            workflow_id, tenant_id, version, name, definition_json, row["created_at"], updated
        )

    async def delete_workflow(self, tenant_id: str, workflow_id: str) -> bool:
        async with self._conn() as conn:
            row = await conn.fetchrow(Q["delete_workflow"], workflow_id, tenant_id)
        return row is not None

    async def list_workflow_versions(
        self, tenant_id: str, workflow_id: str, before_version: int | None, limit: int
    ) -> list[WorkflowRecord] | None:
        async with self._conn() as conn:
            latest = await conn.fetchrow(Q["get_workflow"], workflow_id, tenant_id, None)
            if latest is None:
                return None
            before = before_version if before_version is not None else latest["version"] + 1
            rows = await conn.fetch(
                Q["list_workflow_versions"], workflow_id, tenant_id, before, limit
            )
        return [_ROWS.workflow(r) for r in rows]

    # active workflows and their webhook routes

    async def activate(self, activation: Activation) -> Activation | None:
        a = activation
        async with self._conn() as conn, conn.transaction():
            previous = await self._activation(conn, a.tenant_id, a.workflow_id)
            await conn.execute(
                Q["upsert_activation"], a.workflow_id, a.tenant_id, a.version, a.schedule_id
            )
            await conn.execute(Q["delete_routes"], a.workflow_id)
            for r in a.routes:
                inserted = await conn.fetchval(
                    Q["insert_route"], r.tenant_id, r.path, r.workflow_id, r.version, r.node_id
                )
                if inserted is None:
                    holder = await conn.fetchval(Q["route_holder"], r.tenant_id, r.path)
                    # Raising inside the transaction rolls every change back.
                    raise RouteTakenError(r.path, str(holder))
        return previous

    async def _activation(
        self, conn: asyncpg.Connection, tenant_id: str, workflow_id: str
    ) -> Activation | None:
        row = await conn.fetchrow(Q["get_activation"], workflow_id, tenant_id)
        if row is None:
            return None
        routes = await conn.fetch(Q["routes_of"], workflow_id)
        return _activation(row, routes)

    async def deactivate(self, tenant_id: str, workflow_id: str) -> Activation | None:
        async with self._conn() as conn, conn.transaction():
            previous = await self._activation(conn, tenant_id, workflow_id)
            await conn.execute(Q["delete_activation"], workflow_id, tenant_id)
        return previous

    async def get_activation(self, tenant_id: str, workflow_id: str) -> Activation | None:
        async with self._conn() as conn:
            return await self._activation(conn, tenant_id, workflow_id)

    async def active_versions(self, tenant_id: str, workflow_ids: Sequence[str]) -> dict[str, int]:
        async with self._conn() as conn:
            rows = await conn.fetch(Q["active_versions"], tenant_id, list(workflow_ids))
        return {str(r["workflow_id"]): int(r["version"]) for r in rows}

    async def find_route(self, tenant_id: str, path: str) -> WebhookRoute | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(Q["find_route"], tenant_id, path)
        return _route(row) if row is not None else None

    # executions

    async def insert_executions(self, batch: Sequence[NewExecution]) -> list[InsertOutcome]:
        if not batch:
            return []
        cols: list[list[Any]] = [[] for _ in range(15)]
        for e in batch:
            values = (
                e.id,
                e.tenant_id,
                e.workflow_id,
                e.workflow_version,
                # The stored version is referenced, not copied (migration 0003).
                None if e.definition_is_version and e.workflow_id else e.definition_json,
                str(Status.QUEUED),
                e.mode,
                e.trigger_kind,
                e.trigger_data_json,
                e.max_attempts,
                e.priority,
                e.idempotency_key,
                e.retry_of,
                e.trace_id,
                e.run_at,
            )
            for col, value in zip(cols, values, strict=True):
                col.append(value)
        async with self._conn() as conn:
            inserted = {r["id"] for r in await conn.fetch(Q["insert_executions"], *cols)}
            missing = [e for e in batch if e.id not in inserted]
            existing: dict[tuple[str, str], tuple[str, Status]] = {}
            if missing:
                rows = await conn.fetch(
                    Q["find_by_idempotency_keys"],
                    [e.tenant_id for e in missing],
                    [e.idempotency_key for e in missing],
                )
                existing = {
                    (r["tenant_id"], r["idempotency_key"]): (r["id"], Status(r["status"]))
                    for r in rows
                }
        outcomes: list[InsertOutcome] = []
        for e in batch:
            if e.id in inserted:
                outcomes.append(InsertOutcome(e.id, True, Status.QUEUED))
                continue
            found = existing.get((e.tenant_id, e.idempotency_key or ""))
            if found is None:
                raise StoreUnavailableError(
                    f"execution {e.id} was neither inserted nor found by its idempotency key"
                )
            outcomes.append(InsertOutcome(found[0], False, found[1]))
        return outcomes

    async def get_execution(
        self, tenant_id: str | None, execution_id: str, *, with_node_runs: bool = False
    ) -> ExecutionRecord | None:
        async with self._conn() as conn:
            if tenant_id is None:
                row = await conn.fetchrow(Q["get_execution_any_tenant"], execution_id)
            else:
                row = await conn.fetchrow(Q["get_execution"], execution_id, tenant_id)
            if row is None:
                return None
            runs: tuple[NodeRunRecord, ...] = ()
            if with_node_runs:
                runs = tuple(
                    _ROWS.node_run(r) for r in await conn.fetch(Q["get_node_runs"], execution_id)
                )
        return _ROWS.execution(row, _definition(row), runs)

    async def list_executions(
        self,
        tenant_id: str,
        filt: ExecutionFilter,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[ExecutionRecord]:
        query, args = list_query(tenant_id, filt, after, limit)
        async with self._conn() as conn:
            rows = await conn.fetch(query, *args)
        return [_ROWS.execution(r, _definition(r)) for r in rows]

    async def set_status(self, execution_id: str, status: Status, error_json: str | None) -> bool:
        terminal = status not in (Status.QUEUED, Status.RUNNING, Status.RETRY_SCHEDULED)
        async with self._conn() as conn:
            row = await conn.fetchrow(
                Q["set_status"], execution_id, str(status), error_json, terminal
            )
        return row is not None

    async def list_unfinished(
        self,
        created_before: datetime,
        after: tuple[datetime, str] | None,
        limit: int,
        mode: str = "queue",
    ) -> list[ExecutionRecord]:
        after_time, after_id = (
            after if after is not None else (datetime.min.replace(tzinfo=created_before.tzinfo), "")
        )
        async with self._conn() as conn:
            rows = await conn.fetch(
                Q["list_unfinished"], created_before, after_time, after_id, limit, mode
            )
        return [_ROWS.execution(r, _definition(r)) for r in rows]

    async def count_unfinished(self, tenant_id: str) -> dict[Status, int]:
        async with self._conn() as conn:
            rows = await conn.fetch(Q["count_unfinished"], tenant_id)
        return {Status(r["status"]): int(r["n"]) for r in rows}

    async def list_failed_since(
        self, finished_since: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[ExecutionRecord]:
        after_time, after_id = after if after is not None else (finished_since, "")
        async with self._conn() as conn:
            rows = await conn.fetch(
                Q["list_failed_since"], finished_since, after_time, after_id, limit
            )
        return [_ROWS.execution(r, _definition(r)) for r in rows]

    async def reset_for_rerun(self, execution_id: str) -> bool:
        async with self._conn() as conn, conn.transaction():
            row = await conn.fetchrow(Q["reset_for_rerun"], execution_id)
            if row is None:
                return False
            await conn.execute(Q["delete_events"], execution_id)
        return True

    @asynccontextmanager
    async def recovery_lock(self) -> AsyncIterator[bool]:
        async with self._conn() as conn, advisory_xact_lock(conn, RECOVERY_LOCK_KEY) as locked:
            yield locked

    # history

    async def adopt_executions(self, seen: Sequence[AdoptedExecution]) -> int:
        if not seen:
            return 0
        async with self._conn() as conn:
            ids = [a.id for a in seen]
            unknown = {r["id"] for r in await conn.fetch(Q["unknown_executions"], ids)}
            if not unknown:
                return 0
            new = [a for a in seen if a.id in unknown]
            async with conn.transaction():
                await conn.execute(Q["adopt_tenants"], [a.tenant_id for a in new])
                rows = await conn.fetch(
                    Q["adopt_executions"],
                    [a.id for a in new],
                    [a.tenant_id for a in new],
                    [a.workflow_id for a in new],
                    [a.first_seen for a in new],
                )
        return len(rows)

    async def record_events(self, events: Sequence[RecordedEvent]) -> int:
        if not events:
            return 0
        async with self._conn() as conn, conn.transaction():
            rows = await conn.fetch(
                Q["insert_events"],
                [e.execution_id for e in events],
                [e.sequence for e in events],
                [e.type for e in events],
                [e.time for e in events],
                [e.node_id for e in events],
                [e.attempt for e in events],
                [e.data_json for e in events],
                [e.error_json for e in events],
            )
            new_keys = {(r["execution_id"], r["sequence"]) for r in rows}
            new = [e for e in events if (e.execution_id, e.sequence) in new_keys]
            patches, runs = fold(new)
            if patches:
                await conn.execute(
                    Q["apply_execution_patch"],
                    [p.execution_id for p in patches],
                    [None if p.status is None else str(p.status) for p in patches],
                    [p.attempt for p in patches],
                    [p.started_at for p in patches],
                    [p.finished_at for p in patches],
                    [p.error_json for p in patches],
                    [p.result_json for p in patches],
                    [p.last_sequence for p in patches],
                )
            if runs:
                await conn.executemany(
                    Q["upsert_node_run"],
                    [
                        (
                            r.execution_id,
                            r.node_id,
                            r.attempt,
                            r.status,
                            r.started_at,
                            r.finished_at,
                            r.error_json,
                            r.output_item_count,
                            r.outputs_json,
                        )
                        for r in runs
                    ],
                )
        return len(new)

    async def list_events(
        self, execution_id: str, after_sequence: int, limit: int
    ) -> list[RecordedEvent]:
        async with self._conn() as conn:
            rows = await conn.fetch(Q["list_events"], execution_id, after_sequence, limit)
        return [_ROWS.event(r) for r in rows]

    async def stats(
        self, tenant_id: str, workflow_id: str | None, start: datetime, end: datetime
    ) -> list[StatsRow]:
        async with self._conn() as conn:
            counts = await conn.fetch(Q["stats_status_counts"], tenant_id, workflow_id, start, end)
            durations = await conn.fetch(Q["stats_durations"], tenant_id, workflow_id, start, end)
            nodes = await conn.fetch(Q["stats_nodes"], tenant_id, workflow_id, start, end)
        return build_stats(
            [(r["workflow_id"], r["status"], int(r["n"])) for r in counts],
            {r["workflow_id"]: (r["p50"], r["p95"]) for r in durations},
            [
                (
                    r["workflow_id"],
                    r["node_id"],
                    int(r["runs"]),
                    int(r["failures"]),
                    r["p50"],
                    r["p95"],
                )
                for r in nodes
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
        async with self._conn() as conn:
            rows = await conn.fetch(
                Q["stats_buckets"], tenant_id, workflow_id, start, end, width.total_seconds()
            )
        return [(int(r["bucket"]), Status(r["status"]), int(r["n"])) for r in rows]


def build_stats(
    counts: Sequence[tuple[str, str, int]],
    durations: dict[str, tuple[float | None, float | None]],
    nodes: Sequence[tuple[str, str, int, int, float | None, float | None]],
) -> list[StatsRow]:
    """Assemble per-workflow stats from the three aggregate queries' rows."""
    by_wf: dict[str, dict[Status, int]] = {}
    for wf, status, n in counts:
        by_wf.setdefault(wf, {})[Status(status)] = n
    node_rows: dict[str, list[NodeStatsRow]] = {}
    for wf, node_id, runs, failures, p50, p95 in nodes:
        node_rows.setdefault(wf, []).append(
            NodeStatsRow(
                node_id,
                runs,
                failures,
                None if p50 is None else float(p50),
                None if p95 is None else float(p95),
            )
        )
    out: list[StatsRow] = []
    for wf in sorted(by_wf):
        status_counts = by_wf[wf]
        p50, p95 = durations.get(wf, (None, None))
        out.append(
            StatsRow(
                workflow_id=wf,
                status_counts=tuple(sorted(status_counts.items())),
                total=sum(status_counts.values()),
                p50_s=None if p50 is None else float(p50),
                p95_s=None if p95 is None else float(p95),
                nodes=tuple(node_rows.get(wf, ())),
            )
        )
    return out


def _route(row: Any) -> WebhookRoute:
    return WebhookRoute(
        str(row["tenant_id"]),
        str(row["path"]),
        str(row["workflow_id"]),
        int(row["version"]),
        str(row["node_id"]),
    )


def _activation(row: Any, routes: Sequence[Any]) -> Activation:
    return Activation(
        str(row["tenant_id"]),
        str(row["workflow_id"]),
        int(row["version"]),
        row["schedule_id"],
        tuple(_route(r) for r in routes),
    )
