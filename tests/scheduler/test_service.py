"""SchedulerService over gRPC on real Redis: every RPC, and bad input as precise statuses."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from nodedrop.common.client import call
from nodedrop.common.errors import InvalidArgument, NotFound, PermissionDenied
from nodedrop.execution.v1 import execution_pb2 as ex
from nodedrop.queue.v1 import scheduler_service_pb2 as pb
from nodedrop.store import EventType
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb
from tests.helpers.failed_jobs import fail_jobs


def workflow(*extra: wf_pb.Node) -> wf_pb.Workflow:
    nodes = [wf_pb.Node(id="start", type="manual_trigger"), *extra]
    conns = [wf_pb.Connection(source=a.id, target=b.id) for a, b in itertools.pairwise(nodes)]
    return wf_pb.Workflow(id="wf-1", name="t", nodes=nodes, connections=conns)


def enqueue(x: str, **kw: object) -> pb.EnqueueExecutionRequest:
    base: dict[str, object] = {
        "execution_id": x,
        "tenant_id": "t1",
        "workflow": workflow(wf_pb.Node(id="a", type="noop")),
        "trigger_data_json": '{"n": 1}',
    }
    base.update(kw)
    return pb.EnqueueExecutionRequest(**base)  # type: ignore[arg-type]


async def test_enqueue_is_idempotent_and_states_hide_other_tenants(scheduler: Any) -> None:
    stub = scheduler.stub
    first = await call(stub.EnqueueExecution, enqueue("e1"))
    again = await call(stub.EnqueueExecution, enqueue("e1"))
    assert (first.created, first.status) == (True, ex.EXECUTION_STATUS_QUEUED)
    assert (again.created, again.status) == (False, ex.EXECUTION_STATUS_QUEUED)
    mine = await call(
        stub.GetExecutionStates, pb.GetExecutionStatesRequest(execution_ids=["e1", "nope"])
    )
    assert [(s.execution_id, s.known, s.attempt) for s in mine.states] == [
        ("e1", True, 1),
        ("nope", False, 0),
    ]
    other = await call(
        stub.GetExecutionStates,
        pb.GetExecutionStatesRequest(execution_ids=["e1"], tenant_id="t2"),
    )
    assert not other.states[0].known
    events = await scheduler.store.read("e1", 0, 10)
    assert [e.type for e in events] == [EventType.EXECUTION_QUEUED]


async def test_enqueue_overrides_and_delay(scheduler: Any) -> None:
    run_at = Timestamp()
    run_at.FromMilliseconds(int(time.time() * 1000) + 60_000)
    req = enqueue(
        "d1",
        max_attempts=5,
        backoff=Duration(seconds=1),
        timeout=Duration(seconds=9),
        run_time=run_at,
        priority=50,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    await call(scheduler.stub.EnqueueExecution, req)
    h = await scheduler.store.client.hgetall(scheduler.store.config.keys.exec("d1"))
    assert (h["ma"], h["bo"], h["to"], h["ln"]) == ("5", "1.0", "9.0", "10")
    assert h["tp"].startswith("00-0af765")
    stats = await call(scheduler.stub.GetQueueStats, pb.GetQueueStatsRequest())
    assert (stats.delayed, stats.waiting, stats.partitions) == (1, 0, 4)
    assert [lane.priority for lane in stats.lanes] == [10, 0]


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (enqueue(""), "execution_id"),
        (enqueue("bad id"), "execution_id"),
        (pb.EnqueueExecutionRequest(execution_id="x", tenant_id="t1"), "workflow"),
        (enqueue("x", trigger_data_json="{nope"), "trigger_data_json"),
        (enqueue("x", workflow=workflow(wf_pb.Node(id="a", type="nope"))), "workflow.nodes[1]"),
        (enqueue("x", workflow=wf_pb.Workflow(name="empty")), "workflow.nodes"),
        (enqueue("x", max_attempts=0), "max_attempts"),
        (enqueue("x", completed_outputs_json={"a": "[1]"}), "completed_outputs_json[a]"),
    ],
)
async def test_bad_enqueue_is_invalid_argument_naming_the_field(
    scheduler: Any, req: pb.EnqueueExecutionRequest, field: str
) -> None:
    with pytest.raises(InvalidArgument) as e:
        await call(scheduler.stub.EnqueueExecution, req)
    assert any(v.field.startswith(field) for v in e.value.violations), e.value.violations


async def test_cancel(scheduler: Any) -> None:
    stub = scheduler.stub
    await call(stub.EnqueueExecution, enqueue("c1"))
    with pytest.raises(PermissionDenied):
        await call(
            stub.CancelExecution, pb.CancelExecutionRequest(execution_id="c1", tenant_id="x")
        )
    with pytest.raises(NotFound):
        await call(stub.CancelExecution, pb.CancelExecutionRequest(execution_id="nope"))
    with pytest.raises(InvalidArgument):
        await call(stub.CancelExecution, pb.CancelExecutionRequest())
    with pytest.raises(InvalidArgument) as e:
        await call(
            stub.CancelExecution,
            pb.CancelExecutionRequest(execution_id="c1", tenant_id="t1", reason="x" * 1001),
        )
    assert [v.field for v in e.value.violations] == ["reason"]
    r = await call(
        stub.CancelExecution,
        pb.CancelExecutionRequest(execution_id="c1", tenant_id="t1", reason="not needed"),
    )
    assert r.status == ex.EXECUTION_STATUS_CANCELLED
    (event,) = await scheduler.store.read("c1", 1, 10)
    assert event.error is not None and event.error.message == "not needed"


async def test_failed_queue_rpcs_validate_and_work(scheduler: Any) -> None:
    stub = scheduler.stub
    empty = await call(stub.ListFailedJobs, pb.ListFailedJobsRequest(page_size=10))
    assert list(empty.jobs) == [] and empty.next_page_token == ""
    for bad in (
        pb.ListFailedJobsRequest(page_size=-1),
        pb.ListFailedJobsRequest(page_size=5, page_token="garbage"),
    ):
        with pytest.raises(InvalidArgument):
            await call(stub.ListFailedJobs, bad)
    with pytest.raises(InvalidArgument):
        await call(stub.RetryFailedJobs, pb.RetryFailedJobsRequest())
    with pytest.raises(InvalidArgument):
        await call(stub.PurgeFailedJobs, pb.PurgeFailedJobsRequest(execution_ids=["a"], all=True))
    assert (await call(stub.RetryFailedJobs, pb.RetryFailedJobsRequest(all=True))).retried == 0
    assert (await call(stub.PurgeFailedJobs, pb.PurgeFailedJobsRequest(all=True))).purged == 0


async def test_failed_queue_by_tenant(scheduler: Any) -> None:
    stub = scheduler.stub
    jobs = {f"f{i:02d}": ("ta" if i % 3 == 0 else "tb") for i in range(12)}
    await fail_jobs(scheduler.store, jobs)
    mine = {x for x, t in jobs.items() if t == "ta"}
    # None of another tenant's, none skipped, pages bounded.
    seen: list[str] = []
    token = ""
    while True:
        page = await call(
            stub.ListFailedJobs,
            pb.ListFailedJobsRequest(page_size=2, page_token=token, tenant_id="ta"),
        )
        assert len(page.jobs) <= 2 * 2 - 1
        seen += [j.execution_id for j in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(mine)
    # Another tenant's ids are left alone; `all` means all of the tenant's.
    retried = await call(
        stub.RetryFailedJobs,
        pb.RetryFailedJobsRequest(execution_ids=["f01", "f03"], tenant_id="ta"),
    )
    assert retried.retried == 1
    purged = await call(stub.PurgeFailedJobs, pb.PurgeFailedJobsRequest(all=True, tenant_id="ta"))
    assert purged.purged == len(mine) - 1
    left = await call(stub.ListFailedJobs, pb.ListFailedJobsRequest(page_size=100))
    assert {j.tenant_id for j in left.jobs} == {"tb"} and len(left.jobs) == len(jobs) - len(mine)


async def test_schedules_lifecycle(scheduler: Any) -> None:
    stub = scheduler.stub
    with pytest.raises(InvalidArgument) as e:
        await call(
            stub.CreateSchedule,
            pb.CreateScheduleRequest(
                schedule=pb.Schedule(tenant_id="t1", workflow=workflow(), cron="61 * * * *")
            ),
        )
    assert e.value.violations[0].field == "schedule.cron"
    with pytest.raises(InvalidArgument):
        await call(
            stub.CreateSchedule,
            pb.CreateScheduleRequest(
                schedule=pb.Schedule(
                    tenant_id="t1", workflow=workflow(), cron="* * * * *", timezone="Mars/Base"
                )
            ),
        )
    created = await call(
        stub.CreateSchedule,
        pb.CreateScheduleRequest(
            schedule=pb.Schedule(
                tenant_id="t1", workflow=workflow(), cron="*/5 * * * *", timezone="Europe/Paris"
            )
        ),
    )
    s = created.schedule
    assert s.id and s.next_fire_time.seconds > time.time() and s.workflow.nodes[0].id == "start"
    # Unset policies read as their defaults.
    assert (s.overlap, s.catch_up) == (pb.OVERLAP_POLICY_SKIP, pb.CATCH_UP_POLICY_SKIP)
    listed = await call(stub.ListSchedules, pb.ListSchedulesRequest(tenant_id="t1"))
    assert [x.id for x in listed.schedules] == [s.id]
    assert (
        list((await call(stub.ListSchedules, pb.ListSchedulesRequest(tenant_id="t2"))).schedules)
        == []
    )
    paused = await call(
        stub.PauseSchedule, pb.PauseScheduleRequest(schedule_id=s.id, tenant_id="t1")
    )
    assert paused.schedule.paused
    resumed = await call(
        stub.ResumeSchedule, pb.ResumeScheduleRequest(schedule_id=s.id, tenant_id="t1")
    )
    assert not resumed.schedule.paused
    shown = await call(stub.GetSchedule, pb.GetScheduleRequest(schedule_id=s.id, tenant_id="t1"))
    assert shown.schedule.id == s.id and not shown.schedule.HasField("last_run")
    for method, message in (
        (stub.GetSchedule, pb.GetScheduleRequest),
        (stub.PauseSchedule, pb.PauseScheduleRequest),
        (stub.ResumeSchedule, pb.ResumeScheduleRequest),
        (stub.TriggerSchedule, pb.TriggerScheduleRequest),
        (stub.DeleteSchedule, pb.DeleteScheduleRequest),
    ):
        with pytest.raises(PermissionDenied):
            await call(method, message(schedule_id=s.id, tenant_id="t9"))
        with pytest.raises(InvalidArgument):
            await call(method, message(tenant_id="t1"))
    await call(stub.DeleteSchedule, pb.DeleteScheduleRequest(schedule_id=s.id, tenant_id="t1"))
    with pytest.raises(NotFound):
        await call(stub.DeleteSchedule, pb.DeleteScheduleRequest(schedule_id=s.id))


async def test_too_many_ids_is_invalid_argument(scheduler: Any) -> None:
    with pytest.raises(InvalidArgument):
        await call(
            scheduler.stub.GetExecutionStates,
            pb.GetExecutionStatesRequest(execution_ids=[f"x{i}" for i in range(1001)]),
        )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"overlap": 9}, "schedule.overlap"),
        ({"catch_up": 9}, "schedule.catch_up"),
        ({"jitter": Duration(seconds=-1)}, "schedule.jitter"),
        ({"jitter": Duration(seconds=90_000)}, "schedule.jitter"),
        ({"catch_up": pb.CATCH_UP_POLICY_RUN_LAST}, "schedule.catch_up_window"),
        ({"catch_up_window": Duration(seconds=40 * 86400)}, "schedule.catch_up_window"),
    ],
)
async def test_bad_policies_are_refused(scheduler: Any, fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        await call(
            scheduler.stub.CreateSchedule,
            pb.CreateScheduleRequest(
                schedule=pb.Schedule(
                    tenant_id="t1", workflow=workflow(), cron="* * * * *", **fields
                )
            ),
        )
    assert e.value.violations[0].field == field


async def test_policies_are_kept(scheduler: Any) -> None:
    created = await call(
        scheduler.stub.CreateSchedule,
        pb.CreateScheduleRequest(
            schedule=pb.Schedule(
                tenant_id="t1",
                workflow=workflow(),
                cron="0 3 * * *",
                timezone="America/New_York",
                overlap=pb.OVERLAP_POLICY_BUFFER_ONE,
                catch_up=pb.CATCH_UP_POLICY_RUN_LAST,
                catch_up_window=Duration(seconds=3600),
                jitter=Duration(seconds=30),
            )
        ),
    )
    (listed,) = (
        await call(scheduler.stub.ListSchedules, pb.ListSchedulesRequest(tenant_id="t1"))
    ).schedules
    assert listed.overlap == pb.OVERLAP_POLICY_BUFFER_ONE
    assert listed.catch_up == pb.CATCH_UP_POLICY_RUN_LAST
    assert listed.catch_up_window.seconds == 3600 and listed.jitter.seconds == 30
    assert listed.next_fire_time == created.schedule.next_fire_time


async def test_a_malformed_execution_id_is_invalid_argument_from_every_rpc(
    scheduler: Any,
) -> None:
    # The rule of the API and the events service (nodedrop.store.validation).
    bad = "not an id!"
    stub = scheduler.stub
    for method, request, field in (
        (stub.CancelExecution, pb.CancelExecutionRequest(execution_id=bad), "execution_id"),
        (
            stub.GetExecutionStates,
            pb.GetExecutionStatesRequest(execution_ids=["ok-1", bad]),
            "execution_ids[1]",
        ),
        (
            stub.RetryFailedJobs,
            pb.RetryFailedJobsRequest(execution_ids=[bad]),
            "execution_ids[0]",
        ),
        (
            stub.PurgeFailedJobs,
            pb.PurgeFailedJobsRequest(execution_ids=[bad]),
            "execution_ids[0]",
        ),
    ):
        with pytest.raises(InvalidArgument) as e:
            await call(method, request)
        assert [v.field for v in e.value.violations] == [field]
