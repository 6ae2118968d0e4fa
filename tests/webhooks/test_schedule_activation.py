"""Activating a schedule_trigger workflow creates its schedule on the real
scheduler, tagged with the workflow id; deactivating deletes it."""

from __future__ import annotations

import pytest

from nodedrop.admin.v1 import queue_admin_service_pb2 as admin_pb
from nodedrop.contract import to_proto
from nodedrop.workflow.v1 import workflow_service_pb2 as wfs_pb
from tests.helpers.system import running_system

pytestmark = pytest.mark.timeout(90)

TICKING = {
    "name": "hourly",
    "nodes": [
        {"id": "tick", "type": "schedule_trigger", "parameters": {"cron": "0 * * * *"}},
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
