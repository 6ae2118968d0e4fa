"""ListExecutions at scale: one tenant with 1,000,000 executions, filtered and paged.

    .venv/bin/python bench/list_executions.py [--rows 1000000] [--calls 200]
        [--insert-pairs 3] [--dsn postgresql://postgres@127.0.0.1:5432/postgres]

Creates a scratch database, applies the API's migrations, loads ROWS
executions of one tenant (plus another tenant's, interleaved) with the status
mix of a busy deployment (94% completed, 4% failed, 1% cancelled, 1% running
or queued, 0.01% timed out; 1% webhook and 0.1% schedule triggers), then
times the repository's list_executions (the query ListExecutions runs) for
the console's and the CLI's filters, the trigger filter included, first page and
a page 20 deep in the cursor: the call as the API makes it, and the query's
execution time inside PostgreSQL (EXPLAIN ANALYZE, TIMING OFF), which the
machine's load disturbs less. It prints the plans of the filtered queries.
Before those, the write cost of migration 0006's index: the API's 256-row
INSERT batches with and without it, alternating INSERT-PAIRS times.
The trigger cases then run without migration 0006's index (the kind filtering
the status or unfiltered walk), and the other cases on the indexes and the one
query of the code before migration 0004. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from nodedrop.api import migrations, repository_pg
from nodedrop.api.model import ExecutionFilter, NewExecution, Status
from nodedrop.api.repository_pg import PostgresRepository

TENANT = "t-big"
WORKFLOWS = 50

_LOAD = """
INSERT INTO executions (id, tenant_id, workflow_id, workflow_version, definition, status,
                        mode, trigger_kind, trigger_data, max_attempts, created_at)
SELECT lpad(to_hex(g), 12, '0') || '-' || $2,
       CASE WHEN g % 10 = 0 THEN 't-other' ELSE $2 END,
       'wf-' || ((g / 100) % $3), 1, '{}',
       CASE WHEN g % 10000 = 9999 THEN 'timed_out'
            WHEN g % 100 < 94 THEN 'completed'
            WHEN g % 100 < 98 THEN 'failed'
            WHEN g % 100 < 99 THEN 'cancelled'
            WHEN (g / 100) % 2 = 0 THEN 'running' ELSE 'queued' END,
       'queue',
       CASE WHEN g % 101 = 17 THEN 'webhook' WHEN g % 1009 = 3 THEN 'schedule'
            ELSE 'manual' END,
       '{}', 3,
       $4::timestamptz + g * interval '10 milliseconds'
FROM generate_series(1, $1) AS g
"""

# The indexes and the one query of ListExecutions before migration 0004.
BEFORE_INDEXES = """
DROP INDEX executions_tenant_status_created;
DROP INDEX executions_workflow_status_created;
CREATE INDEX executions_workflow_created
    ON executions (tenant_id, workflow_id, created_at DESC, id DESC);
ANALYZE executions;
"""
BEFORE_QUERY = """
SELECT e.*, v.definition AS version_definition
FROM executions e
LEFT JOIN workflow_versions v
       ON e.definition IS NULL AND v.workflow_id = e.workflow_id AND v.version = e.workflow_version
WHERE e.tenant_id = $1
  AND ($2::text IS NULL OR e.workflow_id = $2)
  AND (cardinality($3::text[]) = 0 OR e.status = ANY($3))
  AND ($4::timestamptz IS NULL OR e.created_at >= $4)
  AND ($5::timestamptz IS NULL OR e.created_at < $5)
  AND ($6::timestamptz IS NULL OR (e.created_at, e.id) < ($6, $7))
ORDER BY e.created_at DESC, e.id DESC
LIMIT $8
"""

# The trigger filter before migration 0006: the kinds filtered the rows of the
# unfiltered or the status walk.
BEFORE_0006_INDEX = "DROP INDEX executions_tenant_trigger_status_created; ANALYZE executions;"
BEFORE_0006_WALK = """
SELECT e.*, v.definition AS version_definition
FROM executions e
LEFT JOIN workflow_versions v
       ON e.definition IS NULL AND v.workflow_id = e.workflow_id AND v.version = e.workflow_version
WHERE e.tenant_id = $1
  AND ($2::timestamptz IS NULL OR e.created_at >= $2)
  AND ($3::timestamptz IS NULL OR e.created_at < $3)
  AND ($4::timestamptz IS NULL OR (e.created_at, e.id) < ($4, $5))
  AND (cardinality($7::text[]) = 0 OR e.trigger_kind = ANY($7::text[]))
ORDER BY e.created_at DESC, e.id DESC
LIMIT $6
"""
BEFORE_0006_BY_STATUS = """
SELECT e.*, v.definition AS version_definition
FROM unnest($2::text[]) AS s (status)
CROSS JOIN LATERAL (
    SELECT x.*
    FROM executions x
    WHERE x.tenant_id = $1
      AND x.status = s.status
      AND ($3::timestamptz IS NULL OR x.created_at >= $3)
      AND ($4::timestamptz IS NULL OR x.created_at < $4)
      AND ($5::timestamptz IS NULL OR (x.created_at, x.id) < ($5, $6))
      AND (cardinality($8::text[]) = 0 OR x.trigger_kind = ANY($8::text[]))
    ORDER BY x.created_at DESC, x.id DESC
    LIMIT $7
) AS e
LEFT JOIN workflow_versions v
       ON e.definition IS NULL AND v.workflow_id = e.workflow_id AND v.version = e.workflow_version
ORDER BY e.created_at DESC, e.id DESC
LIMIT $7
"""


def _before_0006_query(
    tenant_id: str, filt: ExecutionFilter, after: tuple[datetime, str] | None, limit: int
) -> tuple[str, tuple[object, ...]]:
    after_time, after_id = after if after is not None else (None, "")
    window = (filt.created_after, filt.created_before, after_time, after_id, limit)
    triggers = list(filt.trigger_kinds)
    if filt.statuses:
        statuses = [str(s) for s in filt.statuses]
        return BEFORE_0006_BY_STATUS, (tenant_id, statuses, *window, triggers)
    return BEFORE_0006_WALK, (tenant_id, *window, triggers)


def _before_query(
    tenant_id: str, filt: ExecutionFilter, after: tuple[datetime, str] | None, limit: int
) -> tuple[str, tuple[object, ...]]:
    after_time, after_id = after if after is not None else (None, "")
    statuses = [str(s) for s in filt.statuses]
    window = (filt.created_after, filt.created_before, after_time, after_id, limit)
    return BEFORE_QUERY, (tenant_id, filt.workflow_id, statuses, *window)


CASES: list[tuple[str, ExecutionFilter]] = [
    ("no filter", ExecutionFilter()),
    ("status failed", ExecutionFilter(statuses=(Status.FAILED,))),
    ("status cancelled", ExecutionFilter(statuses=(Status.CANCELLED,))),
    ("status running", ExecutionFilter(statuses=(Status.RUNNING,))),
    ("status timed_out (0.01%)", ExecutionFilter(statuses=(Status.TIMED_OUT,))),
    ("failed or cancelled", ExecutionFilter(statuses=(Status.FAILED, Status.CANCELLED))),
    ("workflow", ExecutionFilter(workflow_id="wf-7")),
    ("workflow + failed", ExecutionFilter(workflow_id="wf-7", statuses=(Status.FAILED,))),
    ("workflow + cancelled", ExecutionFilter(workflow_id="wf-7", statuses=(Status.CANCELLED,))),
]
# The trigger filter (the console's): one range per kind and status of the
# index of migration 0006; before it, a filter of the walks above.
TRIGGER_CASES: list[tuple[str, ExecutionFilter]] = [
    ("trigger webhook (1%)", ExecutionFilter(trigger_kinds=("webhook",))),
    ("trigger schedule (0.1%)", ExecutionFilter(trigger_kinds=("schedule",))),
    (
        "failed + trigger webhook",
        ExecutionFilter(statuses=(Status.FAILED,), trigger_kinds=("webhook",)),
    ),
]


async def _load(dsn: str, rows: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO tenants (id, name) VALUES ($1, $1), ('t-other', 'o')", TENANT
        )
        start = datetime.now(UTC) - timedelta(days=30)
        chunk = 200_000
        for offset in range(0, rows, chunk):
            n = min(chunk, rows - offset)
            await conn.execute(
                _LOAD.replace(
                    "generate_series(1, $1)", f"generate_series({offset + 1}, {offset + n})"
                )
                .replace("$2", "$1")
                .replace("$3", "$2")
                .replace("$4", "$3"),
                TENANT,
                WORKFLOWS,
                start,
            )
        await conn.execute("ANALYZE executions")
    finally:
        await conn.close()


async def _time(
    repo: PostgresRepository,
    conn: asyncpg.Connection,
    filt: ExecutionFilter,
    calls: int,
    deep: bool,
) -> tuple[list[float], list[float]]:
    """Client round trips of list_executions, and the server's execution time
    of the same query (EXPLAIN ANALYZE), in milliseconds."""
    after = None
    if deep:
        # A cursor 20 pages in: the keyset condition, not an offset.
        for _ in range(20):
            page = await repo.list_executions(TENANT, filt, after, 50)
            if len(page) < 50:
                break
            after = (page[-1].created_at, page[-1].id)
    client, server = [], []
    query, args = repository_pg.list_query(TENANT, filt, after, 50)
    for _ in range(calls):
        t0 = time.perf_counter()
        await repo.list_executions(TENANT, filt, after, 50)
        client.append((time.perf_counter() - t0) * 1000)
        plan = await conn.fetchval("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + query, *args)
        server.append(float(json.loads(plan)[0]["Execution Time"]))
    return client, server


async def _plan(dsn: str, filt: ExecutionFilter) -> str:
    query, args = repository_pg.list_query(TENANT, filt, None, 50)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + query, *args)
    finally:
        await conn.close()
    return "\n".join(r[0] for r in rows)


def _row(name: str, samples: tuple[list[float], list[float]]) -> str:
    cells = []
    for series in samples:
        q = statistics.quantiles(series, n=100)
        cells.append(f"{statistics.median(series):.2f} | {q[98]:.2f}")
    return f"| {name} | {' | '.join(cells)} |"


async def _round(
    dsn: str, calls: int, label: str, plans: bool, cases: list[tuple[str, ExecutionFilter]]
) -> None:
    repo = await PostgresRepository.connect(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        print(
            f"\n{label}\n\n| filter (page of 50) | call p50 ms | call p99 ms "
            "| server p50 ms | server p99 ms |\n|---|---|---|---|---|"
        )
        for name, filt in cases:
            for deep in (False, True):
                samples = await _time(repo, conn, filt, calls, deep)
                print(_row(f"{name}, 20 pages deep" if deep else name, samples), flush=True)
    finally:
        await conn.close()
        await repo.close()
    if plans:
        for name, filt in cases:
            if filt == ExecutionFilter():
                continue
            print(f"\nplan, {name}:\n{await _plan(dsn, filt)}")


INDEX_0006 = (
    "CREATE INDEX executions_tenant_trigger_status_created"
    " ON executions (tenant_id, trigger_kind, status, created_at DESC, id DESC)"
)


# 256 new queued executions of the big tenant inside PostgreSQL, under
# EXPLAIN (ANALYZE, WAL): the server's time and the WAL the rows and every
# index entry write, which the load on the machine does not change.
_SERVER_INSERT = """
EXPLAIN (ANALYZE, WAL, TIMING OFF, FORMAT JSON)
INSERT INTO executions (id, tenant_id, workflow_id, workflow_version, definition, status,
                        mode, trigger_kind, trigger_data, max_attempts, created_at)
SELECT $1 || g, $2, NULL, 0, '{"name":"w","nodes":[]}', 'queued', 'queue', 'manual', '{}', 3,
       now()
FROM generate_series(1, $3) AS g
"""


async def _insert_round(
    repo: PostgresRepository, conn: asyncpg.Connection, batches: int, size: int
) -> tuple[list[float], list[float], list[float]]:
    """Per row of each batch of ``size``: milliseconds of the API's multi-row
    INSERT (the batcher's) as the client sees it, then of an INSERT of the
    same rows inside PostgreSQL, and that one's WAL bytes."""
    per_row: list[float] = []
    server: list[float] = []
    wal: list[float] = []
    for _ in range(batches):
        raw = await conn.fetchval(_SERVER_INSERT, f"s-{uuid.uuid4().hex}-", TENANT, size)
        plan = json.loads(raw)[0]
        server.append(float(plan["Execution Time"]) / size)
        wal.append(float(plan["Plan"]["WAL Bytes"]) / size)
        batch = [
            NewExecution(
                id=str(uuid.uuid4()),
                tenant_id=TENANT,
                workflow_id=None,
                workflow_version=0,
                definition_json='{"name":"w","nodes":[]}',
                mode="queue",
                trigger_kind="manual",
                trigger_data_json="{}",
                max_attempts=3,
                priority=0,
                run_at=datetime.now(UTC),
            )
            for _ in range(size)
        ]
        t0 = time.perf_counter()
        await repo.insert_executions(batch)
        per_row.append((time.perf_counter() - t0) * 1000 / size)
    return per_row, server, wal


async def _inserts(dsn: str, pairs: int) -> None:
    """The write cost of migration 0006's index: the same INSERTs with and
    without it, alternating (the index is dropped and rebuilt between)."""
    repo = await PostgresRepository.connect(dsn)
    conn = await asyncpg.connect(dsn)
    print(
        "\nINSERT of 256-row batches, 20 batches a round, with and without "
        "migration 0006's index, alternating (per row, medians)\n\n"
        "| round | index | API's INSERT, client ms | server ms | WAL bytes |\n"
        "|---|---|---|---|---|"
    )
    try:
        for i in range(pairs):
            for present in (True, False):
                client, server, wal = await _insert_round(repo, conn, 20, 256)
                label = "with" if present else "without"
                print(
                    f"| {i + 1} | {label} | {statistics.median(client):.4f} "
                    f"| {statistics.median(server):.4f} | {statistics.median(wal):.0f} |",
                    flush=True,
                )
                if present:
                    await conn.execute("DROP INDEX executions_tenant_trigger_status_created")
                else:
                    await conn.execute(INDEX_0006)
        # Out of the listing's way: they would all be the newest, manual ones.
        await conn.execute("DELETE FROM executions WHERE created_at > now() - interval '1 day'")
        await conn.execute("VACUUM (ANALYZE) executions")
    finally:
        await conn.close()
        await repo.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--insert-pairs", type=int, default=3)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    name = f"nd_bench_list_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = args.dsn.rsplit("/", 1)[0] + "/" + name
    try:
        await migrations.apply(dsn)
        t0 = time.perf_counter()
        await _load(dsn, args.rows)
        print(f"loaded {args.rows:,} executions in {time.perf_counter() - t0:.1f} s")
        await _inserts(dsn, args.insert_pairs)
        await _round(
            dsn, args.calls, "with the status index (this code)", True, CASES + TRIGGER_CASES
        )
        conn = await asyncpg.connect(dsn)
        await conn.execute(BEFORE_0006_INDEX)
        await conn.close()
        repository_pg.list_query = _before_0006_query
        await _round(dsn, args.calls, "trigger filter without migration 0006", True, TRIGGER_CASES)
        conn = await asyncpg.connect(dsn)
        await conn.execute(BEFORE_INDEXES)
        await conn.close()
        repository_pg.list_query = _before_query
        await _round(dsn, max(10, args.calls // 10), "without it (the code before)", False, CASES)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
