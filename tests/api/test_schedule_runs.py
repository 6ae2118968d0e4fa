"""Schedules through the API's keys, on real processes (two scheduler
replicas, a worker, the API): a tick starts one ordinary execution (a UUID id
that carries its schedule and tick) however many replicas fire it; the run is
shown, cancelled and retried like any other; pause, resume, trigger now and
delete; another tenant sees none of it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import replace

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf.duration_pb2 import Duration

from nodedrop.admin.v1 import queue_admin_service_pb2 as admin_pb
from nodedrop.api.provisioning import ALL_SCOPES, create_key
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.common.client import call
from nodedrop.common.errors import InvalidArgument
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.queue.v1 import scheduler_service_pb2 as sched_pb
from nodedrop.scheduler.schedules import Schedule, StoredSchedules
from nodedrop.store import Keys
from nodedrop.store.config import StoreConfig
from nodedrop.store.redis_store import RedisStore
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb
from nodedrop.workflow.v1 import workflow_service_pb2 as wfs_pb
from tests.helpers.services import start_service
from tests.helpers.system import ApiClient, running_system, until

pytestmark = pytest.mark.slow

RUNNING = execution_pb2.EXECUTION_STATUS_RUNNING
CANCELLED = execution_pb2.EXECUTION_STATUS_CANCELLED
# Never due by itself during the test: every tick here is set by the test.
YEARLY = "0 0 1 1 *"


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
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return None
    execution: execution_pb2.Execution = reply.execution
    return execution


async def _schedule(api: ApiClient, schedule_id: str) -> sched_pb.Schedule:
    reply = await api.admin.GetSchedule(
        admin_pb.GetScheduleRequest(schedule_id=schedule_id), metadata=api.md, timeout=10
    )
    schedule: sched_pb.Schedule = reply.schedule
    return schedule


async def _status(api: ApiClient, execution_id: str, status: int) -> execution_pb2.Execution:
    async def reached() -> execution_pb2.Execution | None:
        e = await _execution(api, execution_id)
        return e if e is not None and e.status == status else None

    return await until(f"{execution_id} to reach status {status}", reached, 30)


async def _code(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_schedules_end_to_end_with_two_scheduler_replicas(
    redis_url: str, redis_prefix: str, redis_client: aioredis.Redis, pg_dsn: str
) -> None:
    extra = {"NODEDROP_CRON_INTERVAL_S": "0.05"}
    async with running_system(redis_url, redis_prefix, pg_dsn, extra=extra) as system:
        (api,) = system.apis
        # A second scheduler on the same Redis prefix: both fire every tick.
        async with start_service("scheduler", env=system.env):
            stored = await api.wf.CreateWorkflow(
                wfs_pb.CreateWorkflowRequest(workflow=_waiting()), metadata=api.md, timeout=10
            )
            workflow_id = stored.workflow.id
            created = await api.admin.CreateSchedule(
                admin_pb.CreateScheduleRequest(
                    workflow_id=workflow_id,
                    cron=YEARLY,
                    timezone="Europe/Berlin",
                    overlap=sched_pb.OVERLAP_POLICY_ALLOW,
                    jitter=Duration(seconds=0),
                ),
                metadata=api.md,
                timeout=10,
            )
            schedule_id = created.schedule.id
            # Bad values name the caller's request fields.
            for bad, field in (
                (
                    admin_pb.CreateScheduleRequest(workflow_id=workflow_id, cron="61 * * * *"),
                    "cron",
                ),
                (
                    admin_pb.CreateScheduleRequest(
                        workflow_id=workflow_id,
                        cron=YEARLY,
                        catch_up=sched_pb.CATCH_UP_POLICY_RUN_LAST,
                    ),
                    "catch_up_window",
                ),
                (
                    admin_pb.CreateScheduleRequest(
                        workflow_id=workflow_id, cron=YEARLY, timezone="Mars/Olympus"
                    ),
                    "timezone",
                ),
            ):
                with pytest.raises(InvalidArgument) as refused:
                    await call(api.admin.CreateSchedule, bad, metadata=api.md)
                assert [v.field for v in refused.value.violations] == [field]
            table = StoredSchedules(
                RedisStore(redis_client, StoreConfig(keys=Keys(redis_prefix, 4)))
            )

            async def due_now() -> int:
                """Makes the schedule due at once (a tick just passed) and returns the tick."""
                tick = int(time.time() * 1000) - 1

                def at_tick(s: Schedule) -> Schedule:
                    return replace(s, next_fire_ms=tick)

                await table.update(schedule_id, at_tick)
                return tick

            ticks = []
            for _ in range(3):
                tick = await due_now()
                ticks.append(tick)

                async def ran(tick: int = tick) -> sched_pb.Schedule | None:
                    s = await _schedule(api, schedule_id)
                    done = s.last_run.scheduled_time.ToMilliseconds() == tick
                    return s if done and s.next_fire_time.ToMilliseconds() != tick else None

                await until("the tick to run", ran, 30)
                # Both replicas have seen the tick: give the slower one its chance.
                await asyncio.sleep(0.3)

            listed = await api.ex.ListExecutions(
                ex_pb.ListExecutionsRequest(workflow_id=workflow_id, page_size=100),
                metadata=api.md,
                timeout=10,
            )
            runs = [e for e in listed.executions if e.schedule_id == schedule_id]
            # One execution per tick, each a UUID carrying its tick.
            assert Counter(e.scheduled_time.ToMilliseconds() for e in runs) == Counter(ticks)
            for e in runs:
                uuid.UUID(e.id)
                assert e.trigger_kind == execution_pb2.TRIGGER_KIND_SCHEDULE
                assert e.workflow_id == workflow_id

            shown = await _schedule(api, schedule_id)
            last_id = shown.last_run.execution_id
            assert shown.last_run.scheduled_time.ToMilliseconds() == ticks[-1]
            running = await _status(api, last_id, RUNNING)
            assert running.schedule_id == schedule_id
            assert (await _schedule(api, schedule_id)).last_run.status == RUNNING

            # Cancelled and retried like any execution.
            await api.ex.CancelExecution(
                ex_pb.CancelExecutionRequest(execution_id=last_id, reason="not tonight"),
                metadata=api.md,
                timeout=10,
            )
            await _status(api, last_id, CANCELLED)
            retried = await api.ex.RetryExecution(
                ex_pb.RetryExecutionRequest(execution_id=last_id), metadata=api.md, timeout=10
            )
            again = await _execution(api, retried.execution_id)
            assert again is not None and again.retry_of == last_id

            # Paused: a due tick does not run.
            paused = await api.admin.PauseSchedule(
                admin_pb.PauseScheduleRequest(schedule_id=schedule_id), metadata=api.md, timeout=10
            )
            assert paused.schedule.paused
            await due_now()
            await asyncio.sleep(1.0)
            assert (await _schedule(api, schedule_id)).last_run.execution_id == last_id

            # Resumed: the missed tick is not run late; the next one is in the future.
            resumed = await api.admin.ResumeSchedule(
                admin_pb.ResumeScheduleRequest(schedule_id=schedule_id), metadata=api.md, timeout=10
            )
            assert not resumed.schedule.paused
            assert resumed.schedule.next_fire_time.ToMilliseconds() > time.time() * 1000
            await asyncio.sleep(0.5)
            assert (await _schedule(api, schedule_id)).last_run.execution_id == last_id

            # Triggered now: a run at once, the next tick unchanged.
            triggered = await api.admin.TriggerSchedule(
                admin_pb.TriggerScheduleRequest(schedule_id=schedule_id),
                metadata=api.md,
                timeout=10,
            )
            assert triggered.execution_id != last_id
            assert triggered.schedule.last_run.execution_id == triggered.execution_id
            assert triggered.schedule.next_fire_time == resumed.schedule.next_fire_time
            now_run = await _status(api, triggered.execution_id, RUNNING)
            assert now_run.schedule_id == schedule_id

            # Another tenant: its key sees none of this tenant's schedules or runs.
            repo = await PostgresRepository.connect(pg_dsn, min_size=1, max_size=2)
            try:
                other_key, _ = await create_key(repo, "tenant-b", "tenant-b", ALL_SCOPES)
            finally:
                await repo.close()
            other = ApiClient(api.channel, other_key.secret)
            listed_b = await other.admin.ListSchedules(
                admin_pb.ListSchedulesRequest(), metadata=other.md, timeout=10
            )
            assert list(listed_b.schedules) == []
            for method, message in (
                (other.admin.GetSchedule, admin_pb.GetScheduleRequest),
                (other.admin.PauseSchedule, admin_pb.PauseScheduleRequest),
                (other.admin.ResumeSchedule, admin_pb.ResumeScheduleRequest),
                (other.admin.TriggerSchedule, admin_pb.TriggerScheduleRequest),
                (other.admin.DeleteSchedule, admin_pb.DeleteScheduleRequest),
            ):
                code = await _code(
                    method(message(schedule_id=schedule_id), metadata=other.md, timeout=10)
                )
                assert code == grpc.StatusCode.NOT_FOUND, method
            assert await _execution(other, triggered.execution_id) is None
            own = await other.admin.CreateSchedule(
                admin_pb.CreateScheduleRequest(workflow=_waiting(), cron=YEARLY),
                metadata=other.md,
                timeout=10,
            )
            assert own.schedule.tenant_id == "tenant-b"
            listed_a = await api.admin.ListSchedules(
                admin_pb.ListSchedulesRequest(), metadata=api.md, timeout=10
            )
            assert [s.id for s in listed_a.schedules] == [schedule_id]

            # Deleted: gone for its tenant too.
            await api.admin.DeleteSchedule(
                admin_pb.DeleteScheduleRequest(schedule_id=schedule_id), metadata=api.md, timeout=10
            )
            code = await _code(
                api.admin.GetSchedule(
                    admin_pb.GetScheduleRequest(schedule_id=schedule_id),
                    metadata=api.md,
                    timeout=10,
                )
            )
            assert code == grpc.StatusCode.NOT_FOUND
            for e in (retried.execution_id, triggered.execution_id):
                await api.ex.CancelExecution(
                    ex_pb.CancelExecutionRequest(execution_id=e), metadata=api.md, timeout=10
                )
