"""Active workflows: the route table in both repositories, the Activations
rules with a recording schedule port, and the RPCs over a real server."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import grpc
import orjson
import pytest

from nodedrop.api.activation import Activations, ScheduleTrigger, triggers_of
from nodedrop.api.errors import RouteTakenError
from nodedrop.api.model import Activation, WebhookRoute
from nodedrop.api.repository import ExecutionRepository
from nodedrop.api.workflow_cache import WorkflowCache
from nodedrop.common.errors import InvalidArgument
from nodedrop.contract import to_proto
from nodedrop.workflow.v1 import workflow_pb2
from nodedrop.workflow.v1 import workflow_service_pb2 as wfs_pb

from .harness import api_settings, running_api


def hook(path: str, *extra: dict[str, object], schedule: str | None = None) -> dict[str, object]:
    nodes: list[dict[str, object]] = [
        {"id": "hook", "type": "webhook_trigger", "parameters": {"path": path} if path else {}},
        {"id": "tag", "type": "set", "parameters": {"fields": {"seen": "true"}}},
    ]
    connections = [{"from": "hook", "to": "tag"}]
    if schedule is not None:
        nodes.append({"id": "tick", "type": "schedule_trigger", "parameters": {"cron": schedule}})
        connections.append({"from": "tick", "to": "tag"})
    return {"name": "hooked", "nodes": nodes + list(extra), "connections": connections}


def _route(tenant: str, path: str, wf: str) -> WebhookRoute:
    return WebhookRoute(tenant, path, wf, 1, "hook")


async def test_route_table_is_unique_per_tenant_and_replaced_on_reactivation(
    repo: ExecutionRepository,
) -> None:
    for tenant in ("t1", "t2"):
        await repo.ensure_tenant(tenant, tenant)
    for wf in ("w1", "w2"):
        await repo.create_workflow("t1", wf, wf, "{}")
    await repo.create_workflow("t2", "w3", "w3", "{}")
    assert await repo.activate(Activation("t1", "w1", 1, None, (_route("t1", "a", "w1"),))) is None
    # The same path in another tenant does not collide.
    await repo.activate(Activation("t2", "w3", 1, "s3", (_route("t2", "a", "w3"),)))
    with pytest.raises(RouteTakenError) as taken:
        await repo.activate(Activation("t1", "w2", 1, None, (_route("t1", "a", "w2"),)))
    assert taken.value.holder_workflow_id == "w1"
    # Nothing of the refused activation stayed.
    assert await repo.get_activation("t1", "w2") is None
    assert await repo.active_versions("t1", ["w1", "w2", "w3"]) == {"w1": 1}
    # Reactivating replaces the routes: "a" is free again once w1 moved to "b".
    previous = await repo.activate(Activation("t1", "w1", 1, "s1", (_route("t1", "b", "w1"),)))
    assert previous is not None and [r.path for r in previous.routes] == ["a"]
    await repo.activate(Activation("t1", "w2", 1, None, (_route("t1", "a", "w2"),)))
    found = await repo.find_route("t1", "a")
    assert found is not None and found.workflow_id == "w2"
    other = await repo.find_route("t2", "a")
    assert other is not None and other.workflow_id == "w3"
    gone = await repo.deactivate("t1", "w1")
    assert gone is not None and gone.schedule_id == "s1"
    assert await repo.find_route("t1", "b") is None
    assert await repo.deactivate("t1", "w1") is None
    # Another tenant cannot deactivate (or see) a workflow that is not its own.
    assert await repo.deactivate("t1", "w3") is None
    assert await repo.find_route("t2", "a") is not None


def test_triggers_of_refuses_what_cannot_be_activated() -> None:
    triggers = triggers_of(hook("orders/new", schedule="*/5 * * * *"))
    assert triggers.webhooks == (("hook", "orders/new"),)
    assert triggers.schedule == ScheduleTrigger("*/5 * * * *", "UTC")
    with pytest.raises(InvalidArgument) as no_path:
        triggers_of(hook(""))
    assert no_path.value.violations[0].field == "nodes[0].parameters.path"
    twice = hook("x", {"id": "again", "type": "webhook_trigger", "parameters": {"path": "x"}})
    with pytest.raises(InvalidArgument) as duplicate:
        triggers_of(twice)
    assert "also the path of node 'hook'" in duplicate.value.violations[0].description
    manual = {"name": "m", "nodes": [{"id": "s", "type": "manual_trigger"}], "connections": []}
    with pytest.raises(InvalidArgument, match="nothing to activate"):
        triggers_of(manual)


@dataclass
class RecordingSchedules:
    created: list[tuple[str, str, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    async def create(
        self, tenant_id: str, workflow: workflow_pb2.Workflow, trigger: ScheduleTrigger
    ) -> str:
        schedule_id = f"sch-{len(self.created) + 1}"
        self.created.append((tenant_id, workflow.id, trigger.cron))
        return schedule_id

    async def delete(self, tenant_id: str, schedule_id: str) -> None:
        self.deleted.append(schedule_id)


async def test_activation_creates_and_removes_its_schedule(repo: ExecutionRepository) -> None:
    await repo.ensure_tenant("t1", "t1")
    schedules = RecordingSchedules()
    activations = Activations(WorkflowCache(repo, latest_ttl_s=0), repo, schedules)
    for wf, path in (("w1", "p"), ("w2", "p")):
        await repo.create_workflow(
            "t1", wf, wf, orjson.dumps(hook(path, schedule="0 * * * *")).decode()
        )
    _, first = await activations.activate("t1", "w1", None)
    assert first.schedule_id == "sch-1" and schedules.created == [("t1", "w1", "0 * * * *")]
    # Re-activating makes the new schedule and removes the old one.
    await activations.activate("t1", "w1", 1)
    assert schedules.deleted == ["sch-1"]
    # A taken path refuses the activation and deletes the schedule made for it.
    with pytest.raises(RouteTakenError):
        await activations.activate("t1", "w2", None)
    assert schedules.deleted == ["sch-1", "sch-3"]
    await activations.deactivate("t1", "w1")
    assert schedules.deleted == ["sch-1", "sch-3", "sch-2"]


async def test_activate_rpcs(pg_repo: ExecutionRepository, redis_url: str) -> None:
    settings = api_settings(redis_url, f"t-act-{uuid.uuid4().hex[:8]}")
    async with running_api(settings, pg_repo) as api:
        a = (("authorization", f"Bearer {api.key}"),)
        b = (("authorization", f"Bearer {api.other_key}"),)

        async def create(doc: dict[str, object], md: object) -> str:
            response = await api.wf.CreateWorkflow(
                wfs_pb.CreateWorkflowRequest(workflow=to_proto(doc)), metadata=md
            )
            return str(response.workflow.id)

        first = await create(hook("orders"), a)
        second = await create(hook("orders"), a)
        theirs = await create(hook("orders"), b)
        activated = await api.wf.ActivateWorkflow(
            wfs_pb.ActivateWorkflowRequest(workflow_id=first), metadata=a
        )
        assert activated.workflow.active_version == 1
        assert list(activated.webhook_paths) == ["/webhook/tenant-a/orders"]
        # Tenant B's same path is its own route.
        await api.wf.ActivateWorkflow(
            wfs_pb.ActivateWorkflowRequest(workflow_id=theirs), metadata=b
        )
        with pytest.raises(grpc.aio.AioRpcError) as taken:
            await api.wf.ActivateWorkflow(
                wfs_pb.ActivateWorkflowRequest(workflow_id=second), metadata=a
            )
        assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert first in (taken.value.details() or "")
        assert theirs not in (taken.value.details() or "")
        got = await api.wf.GetWorkflow(wfs_pb.GetWorkflowRequest(workflow_id=first), metadata=a)
        assert got.workflow.active_version == 1
        listed = await api.wf.ListWorkflows(wfs_pb.ListWorkflowsRequest(), metadata=a)
        assert {w.id: w.active_version for w in listed.workflows} == {first: 1, second: 0}
        # Another tenant's workflow is unknown to the caller.
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await api.wf.DeactivateWorkflow(
                wfs_pb.DeactivateWorkflowRequest(workflow_id=theirs), metadata=a
            )
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        await api.wf.DeactivateWorkflow(
            wfs_pb.DeactivateWorkflowRequest(workflow_id=first), metadata=a
        )
        await api.wf.ActivateWorkflow(
            wfs_pb.ActivateWorkflowRequest(workflow_id=second), metadata=a
        )
        no_path = await create(hook(""), a)
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await api.wf.ActivateWorkflow(
                wfs_pb.ActivateWorkflowRequest(workflow_id=no_path), metadata=a
            )
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "path" in (invalid.value.details() or "")
