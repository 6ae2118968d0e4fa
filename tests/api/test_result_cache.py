"""GetExecution's result cache never outlives the attempt it was taken from:
after a failed-queue retry every API replica serves the new attempt.
Real scheduler, worker and two API processes sharing Redis and PostgreSQL."""

from __future__ import annotations

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis

from nodedrop.admin.v1 import queue_admin_service_pb2 as admin_pb
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb
from tests.helpers.system import ApiClient, running_system, until

pytestmark = pytest.mark.slow

FAILED = execution_pb2.EXECUTION_STATUS_FAILED
COMPLETED = execution_pb2.EXECUTION_STATUS_COMPLETED


def _fails_on_its_first_attempt() -> wf_pb.Workflow:
    """One attempt per round; the first calls a name that never resolves (no
    network needed), a later one lets nothing through to the call."""
    call = {
        "name": "call",
        "nodes": [
            {"id": "in", "type": "manual_trigger"},
            {"id": "gate", "type": "filter", "parameters": {"condition": "execution.attempt < 2"}},
            {
                "id": "call",
                "type": "http_request",
                "parameters": {"url": "http://nd-test-unreachable.invalid/"},
            },
        ],
        "connections": [{"from": "in", "to": "gate"}, {"from": "gate", "to": "call"}],
    }
    return wf_pb.Workflow(
        name="flaky",
        nodes=[
            wf_pb.Node(id="start", type="manual_trigger"),
            wf_pb.Node(
                id="flaky",
                type="execute_workflow",
                parameters_json=orjson.dumps({"workflow": call}).decode(),
            ),
        ],
        connections=[wf_pb.Connection(source="start", target="flaky")],
        settings=wf_pb.WorkflowSettings(max_attempts=1, timeout_s=60),
    )


async def _shown(api: ApiClient, execution_id: str) -> execution_pb2.Execution:
    reply = await api.ex.GetExecution(
        ex_pb.GetExecutionRequest(execution_id=execution_id), metadata=api.md, timeout=5
    )
    execution: execution_pb2.Execution = reply.execution
    return execution


async def test_every_replica_serves_the_retried_attempt(
    redis_url: str, redis_prefix: str, redis_client: aioredis.Redis, pg_dsn: str
) -> None:
    async with running_system(redis_url, redis_prefix, pg_dsn, apis=2) as system:
        first, second = system.apis
        submitted = await first.ex.ExecuteWorkflow(
            ex_pb.ExecuteWorkflowRequest(
                workflow=_fails_on_its_first_attempt(),
                mode=execution_pb2.EXECUTION_MODE_QUEUE,
                trigger_data_json="{}",
            ),
            metadata=first.md,
            timeout=10,
        )
        x = submitted.execution_id

        async def failed() -> execution_pb2.Execution | None:
            e = await _shown(first, x)
            return e if e.status == FAILED else None

        dead = await until("the first attempt to fail", failed, 30)
        assert dead.attempt == 1
        # Both replicas have now answered with the failed attempt, from the cache.
        assert (await _shown(second, x)).status == FAILED
        cached = [k async for k in redis_client.scan_iter(match=f"{redis_prefix}:api:result:*")]
        assert cached, "the failed execution was not cached"

        retried = await first.admin.RetryFailedJobs(
            admin_pb.RetryFailedJobsRequest(execution_ids=[x]), metadata=first.md, timeout=10
        )
        assert retried.retried == 1

        async def recorded() -> bool:
            conn = await asyncpg.connect(pg_dsn)
            try:
                row = await conn.fetchrow("SELECT status, attempt FROM executions WHERE id = $1", x)
            finally:
                await conn.close()
            return row is not None and (row["status"], row["attempt"]) == ("completed", 2)

        await until("the retried attempt to complete in PostgreSQL", recorded, 30)
        for api in (second, first):
            shown = await _shown(api, x)
            assert (shown.status, shown.attempt) == (COMPLETED, 2), shown
            # Nothing of the first round's end is left on the completed one.
            assert not shown.HasField("error"), shown
