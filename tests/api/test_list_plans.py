"""ListExecutions' plans on PostgreSQL: a rare trigger kind is read from its
own index range (migration 0006), not filtered out of a walk of the tenant."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from nodedrop.api import repository_pg
from nodedrop.api.model import ExecutionFilter, Status

TENANT = "t-plans"
ROWS = 30_000

# 0.1% schedule triggers, 4% failed: a page of schedule executions is
# about 50,000 rows into a walk that filters, one range read with the index.
_LOAD = """
INSERT INTO executions (id, tenant_id, workflow_id, workflow_version, definition, status,
                        mode, trigger_kind, trigger_data, max_attempts, created_at)
SELECT 'x-' || g, $1, 'wf-' || (g % 20), 1, '{}',
       CASE WHEN g % 100 < 4 THEN 'failed' ELSE 'completed' END,
       'queue',
       CASE WHEN g % 1000 = 3 THEN 'schedule' WHEN g % 1000 = 4 THEN 'schedule'
            ELSE 'manual' END,
       '{}', 3, now() - g * interval '1 second'
FROM generate_series(1, $2) AS g
"""


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


@pytest.fixture
async def loaded(pg_dsn: str) -> Any:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $1)", TENANT)
        await conn.execute(_LOAD, TENANT, ROWS)
        await conn.execute("ANALYZE executions")
        yield conn
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "filt",
    [
        ExecutionFilter(trigger_kinds=("schedule",)),
        ExecutionFilter(trigger_kinds=("schedule", "webhook")),
        ExecutionFilter(statuses=(Status.FAILED,), trigger_kinds=("schedule",)),
    ],
    ids=["kind", "two kinds", "kind and status"],
)
async def test_a_trigger_filter_reads_its_index_range(
    loaded: asyncpg.Connection, filt: ExecutionFilter
) -> None:
    query, args = repository_pg.list_query(TENANT, filt, None, 50)
    raw = await loaded.fetchval("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + query, *args)
    nodes = _nodes(json.loads(raw)[0]["Plan"])
    scans = [n for n in nodes if "Index Name" in n or n["Node Type"].endswith("Seq Scan")]
    assert {n.get("Index Name") for n in scans if n.get("Relation Name") == "executions"} == {
        "executions_tenant_trigger_status_created"
    }
    # Rows read from the table: at most a page per range, not the walk's ~25,000.
    read = sum(
        n["Actual Rows"] * n.get("Actual Loops", 1) + n.get("Rows Removed by Filter", 0)
        for n in scans
        if n.get("Relation Name") == "executions"
    )
    assert read <= 200
