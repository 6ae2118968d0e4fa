"""Activating a schedule_trigger workflow creates its schedule on the real
scheduler, tagged with the workflow id and with the node's policies;
deactivating deletes it. A node's bad policy is refused as CreateSchedule
refuses it."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from nodedrop.admin.v1 import queue_admin_service_pb2 as admin_pb
from nodedrop.contract import to_proto
from nodedrop.queue.v1 import scheduler_service_pb2 as sched_pb
from nodedrop.workflow.v1 import workflow_service_pb2 as wfs_pb
from tests.helpers.system import running_system

pytestmark = pytest.mark.timeout(90)

TICKING: dict[str, Any] = {
    "name": "hourly",
    "nodes": [
        {
            "id": "tick",
            "type": "schedule_trigger",
            "parameters": {
                "cron": "0 * * * *",
                "timezone": "Europe/Paris",
                "overlap": "buffer_one",
                "catch_up": "run_last",
                "catch_up_window": 600,
                "jitter": 1.5,
            },
        },
        {"id": "tag", "type": "set", "parameters": {"fields": {"seen": "true"}}},
    ],
    "connections": [{"from": "tick", "to": "tag"}],
}


async def test_activation_creates_and_deactivation_deletes_the_schedule(
    redis_url: str, redis_prefix: str, pg_dsn: str
) -> None:
    async with running_system(redis_url, redis_prefix, pg_dsn) as system:
        api = system.apis[0]
        created = await api.wf.CreateWorkflow(
            wfs_pb.CreateWorkflowRequest(workflow=to_proto(TICKING)), metadata=api.md
        )
        workflow_id = created.workflow.id
        activated = await api.wf.ActivateWorkflow(
            wfs_pb.ActivateWorkflowRequest(workflow_id=workflow_id), metadata=api.md
        )
        assert activated.schedule_id and not activated.webhook_paths
        listed = await api.admin.ListSchedules(admin_pb.ListSchedulesRequest(), metadata=api.md)
        [schedule] = [s for s in listed.schedules if s.id == activated.schedule_id]
        assert schedule.workflow_id == workflow_id and schedule.cron == "0 * * * *"
        assert schedule.timezone == "Europe/Paris"
        assert schedule.overlap == sched_pb.OVERLAP_POLICY_BUFFER_ONE
        assert schedule.catch_up == sched_pb.CATCH_UP_POLICY_RUN_LAST
        assert schedule.catch_up_window.ToMilliseconds() == 600_000
        assert schedule.jitter.ToMilliseconds() == 1_500
        # Re-activating replaces the schedule rather than adding one.
        again = await api.wf.ActivateWorkflow(
            wfs_pb.ActivateWorkflowRequest(workflow_id=workflow_id), metadata=api.md
        )
        listed = await api.admin.ListSchedules(admin_pb.ListSchedulesRequest(), metadata=api.md)
        assert [s.id for s in listed.schedules] == [again.schedule_id]
        await api.wf.DeactivateWorkflow(
            wfs_pb.DeactivateWorkflowRequest(workflow_id=workflow_id), metadata=api.md
        )
        listed = await api.admin.ListSchedules(admin_pb.ListSchedulesRequest(), metadata=api.md)
        assert list(listed.schedules) == []
        got = await api.wf.GetWorkflow(
            wfs_pb.GetWorkflowRequest(workflow_id=workflow_id), metadata=api.md
        )
        assert got.workflow.active_version == 0


@pytest.mark.parametrize(
    "case",
    [
        ("jitter", 25 * 3600, "jitter"),
        ("catch_up_window", -1, "catch_up_window"),
        ("catch_up", "run_last", "catch_up_window"),
        ("timezone", "Mars/Olympus", "timezone"),
    ],
)
async def test_a_bad_policy_is_refused_as_create_schedule_refuses_it(
    redis_url: str, redis_prefix: str, pg_dsn: str, case: tuple[str, object, str]
) -> None:
    parameter, value, field = case
    params = {"cron": "0 * * * *", parameter: value}
    document = {**TICKING, "nodes": [{**TICKING["nodes"][0], "parameters": params}]}
    async with running_system(redis_url, redis_prefix, pg_dsn) as system:
        api = system.apis[0]
        with pytest.raises(grpc.aio.AioRpcError) as node:
            await api.wf.CreateWorkflow(
                wfs_pb.CreateWorkflowRequest(workflow=to_proto(document)), metadata=api.md
            )
        request = admin_pb.CreateScheduleRequest(workflow=to_proto(TICKING), cron="0 * * * *")
        if parameter in ("jitter", "catch_up_window"):
            getattr(request, parameter).FromSeconds(int(value))  # type: ignore[call-overload]
        elif parameter == "catch_up":
            request.catch_up = sched_pb.CATCH_UP_POLICY_RUN_LAST
        else:
            request.timezone = str(value)
        with pytest.raises(grpc.aio.AioRpcError) as direct:
            await api.admin.CreateSchedule(request, metadata=api.md)
    assert node.value.code() == direct.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason = direct.value.details().split(": ", 1)[-1]
    assert f"nodes[0].parameters.{field}" in node.value.details()
    assert reason in node.value.details(), (reason, node.value.details())
