"""The scheduler and the worker as real processes: every RPC refuses a caller
without the service credential (UNAUTHENTICATED) or with a tenant's key or
ticket instead (PERMISSION_DENIED), and nothing is enqueued, cancelled,
scheduled, retried, purged or drained; with the credential each one works."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nodedrop.api.keys import generate_key, make_ticket
from nodedrop.api.model import Scope
from nodedrop.api.provisioning import create_key
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.queue.v1 import scheduler_service_pb2 as pb
from nodedrop.queue.v1 import scheduler_service_pb2_grpc as pb_grpc
from nodedrop.queue.v1 import worker_service_pb2 as wpb
from nodedrop.queue.v1 import worker_service_pb2_grpc as wpb_grpc
from nodedrop.store import ExecutionStatus, JobSpec
from nodedrop.store.redis_store import RedisStore
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb
from tests.helpers.failed_jobs import WAIT_WF, fail_jobs
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS
from tests.helpers.services import service_metadata, start_service

pytestmark = pytest.mark.slow

TENANT_KEY = generate_key()
# What a stranger can hold: a tenant's API key, a browser ticket, a guess.
REFUSED: list[tuple[str, tuple[tuple[str, str], ...], grpc.StatusCode]] = [
    ("no credentials", (), grpc.StatusCode.UNAUTHENTICATED),
    (
        "a tenant's API key",
        (("authorization", f"Bearer {TENANT_KEY.secret}"),),
        grpc.StatusCode.PERMISSION_DENIED,
    ),
    (
        "a ticket",
        (
            (
                "authorization",
                "Bearer "
                + make_ticket(TENANT_KEY.key_id, TENANT_KEY.key_hash, int(time.time()) + 60),
            ),
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    ),
    (
        "a wrong token",
        (("authorization", "Bearer not-the-service-token-at-all"),),
        grpc.StatusCode.UNAUTHENTICATED,
    ),
    ("a malformed header", (("authorization", "Basic abc"),), grpc.StatusCode.UNAUTHENTICATED),
]


def _workflow() -> wf_pb.Workflow:
    return wf_pb.Workflow(
        name="evil",
        nodes=[wf_pb.Node(id="start", type="manual_trigger"), wf_pb.Node(id="a", type="noop")],
        connections=[wf_pb.Connection(source="start", target="a")],
    )


def _scheduler_calls(victim: str, failed: str, schedule_id: str) -> dict[str, Any]:
    """One request per SchedulerService method, each one that would do harm."""
    return {
        "EnqueueExecution": pb.EnqueueExecutionRequest(
            execution_id="evil-1", tenant_id="tenant-b", workflow=_workflow()
        ),
        "CancelExecution": pb.CancelExecutionRequest(execution_id=victim, tenant_id="tenant-b"),
        "GetExecutionStates": pb.GetExecutionStatesRequest(execution_ids=[victim]),
        "GetQueueStats": pb.GetQueueStatsRequest(),
        "ListFailedJobs": pb.ListFailedJobsRequest(),
        "RetryFailedJobs": pb.RetryFailedJobsRequest(execution_ids=[failed]),
        "PurgeFailedJobs": pb.PurgeFailedJobsRequest(all=True),
        "CreateSchedule": pb.CreateScheduleRequest(
            schedule=pb.Schedule(tenant_id="no-such-tenant", workflow=_workflow(), cron="* * * * *")
        ),
        "ListSchedules": pb.ListSchedulesRequest(),
        "PauseSchedule": pb.PauseScheduleRequest(schedule_id=schedule_id),
        "ResumeSchedule": pb.ResumeScheduleRequest(schedule_id=schedule_id),
        "DeleteSchedule": pb.DeleteScheduleRequest(schedule_id=schedule_id),
        "GetSchedule": pb.GetScheduleRequest(schedule_id=schedule_id),
        "TriggerSchedule": pb.TriggerScheduleRequest(schedule_id=schedule_id),
    }


async def _schedules(stub: pb_grpc.SchedulerServiceStub) -> dict[str, pb.Schedule]:
    listed = await stub.ListSchedules(
        pb.ListSchedulesRequest(), metadata=service_metadata(), timeout=5
    )
    return {s.id: s for s in listed.schedules}


async def test_every_scheduler_rpc_needs_the_service_credential(
    env: dict[str, str], store: RedisStore
) -> None:
    await fail_jobs(store, {"failed-b": "tenant-b"})
    now = int(time.time() * 1000)
    await store.enqueue(JobSpec("victim-b", "tenant-b", "wf", WAIT_WF, **DEFAULT_JOB_SETTINGS), now)
    async with (
        start_service("scheduler", env=env) as scheduler,
        grpc.aio.insecure_channel(scheduler.target) as channel,
    ):
        stub = pb_grpc.SchedulerServiceStub(channel)
        created = await stub.CreateSchedule(
            pb.CreateScheduleRequest(
                schedule=pb.Schedule(tenant_id="tenant-b", workflow=_workflow(), cron="0 0 1 1 *")
            ),
            metadata=service_metadata(),
            timeout=5,
        )
        schedule_id = created.schedule.id
        calls = _scheduler_calls("victim-b", "failed-b", schedule_id)
        methods = pb.DESCRIPTOR.services_by_name["SchedulerService"].methods_by_name
        assert set(calls) == set(methods), "every method of the service is tried"

        for label, metadata, code in REFUSED:
            for method, request in calls.items():
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await getattr(stub, method)(request, metadata=metadata, timeout=5)
                assert info.value.code() == code, (label, method, info.value.details())

        # Nothing happened: no execution, no cancel, no schedule, the failed
        # job still failed, the schedule untouched.
        assert await store.states(["evil-1"]) == [None]
        victim = (await store.states(["victim-b"]))[0]
        assert victim is not None and victim.status is ExecutionStatus.QUEUED
        assert not victim.cancel_requested
        failed, _ = await store.list_failed(10, "")
        assert [j.execution_id for j in failed] == ["failed-b"]
        schedules = await _schedules(stub)
        assert list(schedules) == [schedule_id] and not schedules[schedule_id].paused
        # Health stays public: probes carry no credentials.
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING

        # The same calls with the service credential do what they say, so
        # the checks above would have seen them.
        done = {
            method: await getattr(stub, method)(request, metadata=service_metadata(), timeout=5)
            for method, request in calls.items()
            if method not in ("PurgeFailedJobs", "DeleteSchedule", "TriggerSchedule")
        }
        assert done["GetSchedule"].schedule.id == schedule_id
        # Past the credential check, a trigger needs the API, which is not running here.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.TriggerSchedule(
                calls["TriggerSchedule"], metadata=service_metadata(), timeout=15
            )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
        assert done["EnqueueExecution"].created
        assert (await store.states(["evil-1"]))[0] is not None
        assert (await store.states(["victim-b"]))[0].cancel_requested  # type: ignore[union-attr]
        assert done["RetryFailedJobs"].retried == 1
        assert done["CreateSchedule"].schedule.tenant_id == "no-such-tenant"
        assert len(await _schedules(stub)) == 2
        await stub.DeleteSchedule(calls["DeleteSchedule"], metadata=service_metadata(), timeout=5)
        assert schedule_id not in await _schedules(stub)


async def test_starting_a_schedule_s_run_on_the_api_needs_the_service_credential(
    env: dict[str, str], pg_dsn: str
) -> None:
    repo = await PostgresRepository.connect(pg_dsn, min_size=1, max_size=2)
    try:
        await create_key(repo, "tenant-b", "tenant-b", [Scope.ADMIN])
    finally:
        await repo.close()
    at = Timestamp()
    at.FromMilliseconds(int(time.time() * 1000))
    request = pb.StartScheduledRunRequest(
        tenant_id="tenant-b",
        schedule_id="sch_evil",
        workflow=_workflow(),
        scheduled_time=at,
        idempotency_key="schedule:sch_evil:1",
    )
    async with (
        start_service("api", env=env) as api,
        grpc.aio.insecure_channel(api.target) as channel,
    ):
        stub = pb_grpc.ScheduleRunServiceStub(channel)
        for label, metadata, code in REFUSED:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.StartScheduledRun(request, metadata=metadata, timeout=5)
            assert info.value.code() == code, (label, info.value.details())
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.StartScheduledRun(
                pb.StartScheduledRunRequest(tenant_id="tenant-b"),
                metadata=service_metadata(),
                timeout=5,
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # None of the refused calls made an execution: the first with the
        # credential creates it, the second (same key) finds it.
        first = await stub.StartScheduledRun(request, metadata=service_metadata(), timeout=10)
        again = await stub.StartScheduledRun(request, metadata=service_metadata(), timeout=10)
        assert not first.deduplicated and again.deduplicated
        assert again.execution_id == first.execution_id


async def test_worker_admin_rpcs_need_the_service_credential(env: dict[str, str]) -> None:
    async with start_service("worker", env=env) as worker:
        async with grpc.aio.insecure_channel(worker.target) as channel:
            stub = wpb_grpc.WorkerServiceStub(channel)
            calls: dict[str, Callable[..., Any]] = {
                "GetWorkerStatus": lambda md: stub.GetWorkerStatus(
                    wpb.GetWorkerStatusRequest(), metadata=md, timeout=5
                ),
                "DrainWorker": lambda md: stub.DrainWorker(
                    wpb.DrainWorkerRequest(), metadata=md, timeout=5
                ),
            }
            methods = wpb.DESCRIPTOR.services_by_name["WorkerService"].methods_by_name
            assert set(calls) == set(methods)
            for label, metadata, code in REFUSED:
                for method, make in calls.items():
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await make(metadata)
                    assert info.value.code() == code, (label, method, info.value.details())
            # Not drained: still running, serving and consuming.
            assert worker.process.returncode is None
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            status = await calls["GetWorkerStatus"](service_metadata())
            assert status.consuming and not status.draining
            # With the credential, DrainWorker drains and the worker exits 0.
            await calls["DrainWorker"](service_metadata())
        assert await worker.wait(15) == 0
