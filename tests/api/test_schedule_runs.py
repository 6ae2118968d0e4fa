"""A cron run's id (``sch_<id>-<tick ms>``, given by the scheduler) is an
execution id like any other: GetExecution, CancelExecution and
RetryExecution take it. Real scheduler, worker and API processes."""

from __future__ import annotations

import time

import grpc
import pytest
import redis.asyncio as aioredis

from nodedrop.admin.v1 import queue_admin_service_pb2 as admin_pb
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.scheduler.schedules import StoredSchedules, tick_execution_id
from nodedrop.store import Keys
from nodedrop.store.config import StoreConfig
from nodedrop.store.redis_store import RedisStore
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb
from nodedrop.workflow.v1 import workflow_service_pb2 as wfs_pb
from tests.helpers.system import ApiClient, running_system, until

pytestmark = pytest.mark.slow

RUNNING = execution_pb2.EXECUTION_STATUS_RUNNING
CANCELLED = execution_pb2.EXECUTION_STATUS_CANCELLED


def _waiting() -> wf_pb.Workflow:
    return wf_pb.Workflow(
        name="nightly",
        nodes=[
            wf_pb.Node(
                id="start", type="schedule_trigger", parameters_json='{"cron": "0 3 * * *"}'
            ),
            wf_pb.Node(id="hold", type="wait", parameters_json='{"seconds": 60}'),
        ],
        connections=[wf_pb.Connection(source="start", target="hold")],
    )


async def _execution(api: ApiClient, execution_id: str) -> execution_pb2.Execution | None:
    try:
        reply = await api.ex.GetExecution(
            ex_pb.GetExecutionRequest(execution_id=execution_id), metadata=api.md, timeout=5
        )
    except grpc.aio.AioRpcError as exc:
        # Until the history recorder has met its first events.
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return None
    execution: execution_pb2.Execution = reply.execution
    return execution


async def test_a_cron_run_is_shown_cancelled_and_retried_through_the_api(
    redis_url: str, redis_prefix: str, redis_client: aioredis.Redis, pg_dsn: str
) -> None:
    extra = {"NODEDROP_CRON_INTERVAL_S": "0.1"}
    async with running_system(redis_url, redis_prefix, pg_dsn, extra=extra) as system:
        (api,) = system.apis
        stored = await api.wf.CreateWorkflow(
            wfs_pb.CreateWorkflowRequest(workflow=_waiting()), metadata=api.md, timeout=10
        )
        created = await api.admin.CreateSchedule(
            admin_pb.CreateScheduleRequest(workflow_id=stored.workflow.id, cron="* * * * *"),
            metadata=api.md,
            timeout=10,
        )
        schedule_id = created.schedule.id
        # Due now rather than at the next minute.
        table = RedisStore(redis_client, StoreConfig(keys=Keys(redis_prefix, 4)))
        schedules = StoredSchedules(table)
        current = await schedules.get(schedule_id)
        assert current is not None
        tick = int(time.time() * 1000) - 1
        await schedules.advance(current, tick)
        run_id = tick_execution_id(schedule_id, tick)
        assert run_id.startswith("sch_")

        async def running() -> execution_pb2.Execution | None:
            e = await _execution(api, run_id)
            return e if e is not None and e.status == RUNNING else None

        shown = await until("the cron run to be shown running", running, 30)
        assert shown.trigger_kind == execution_pb2.TRIGGER_KIND_SCHEDULE
        assert shown.workflow_id == stored.workflow.id

        await api.ex.CancelExecution(
            ex_pb.CancelExecutionRequest(execution_id=run_id, reason="not tonight"),
            metadata=api.md,
            timeout=10,
        )

        async def cancelled() -> execution_pb2.Execution | None:
            e = await _execution(api, run_id)
            return e if e is not None and e.status == CANCELLED else None

        await until("the cron run to be cancelled", cancelled, 30)

        retried = await api.ex.RetryExecution(
            ex_pb.RetryExecutionRequest(execution_id=run_id), metadata=api.md, timeout=10
        )
        again = await _execution(api, retried.execution_id)
        assert again is not None and again.retry_of == run_id
        await api.ex.CancelExecution(
            ex_pb.CancelExecutionRequest(execution_id=retried.execution_id),
            metadata=api.md,
            timeout=10,
        )
