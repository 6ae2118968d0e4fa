"""Active workflows: activating a stored version registers its triggers (its
webhook routes in the repository, a schedule on the scheduler for a
``schedule_trigger``); deactivating removes them.

The schedule is created through the scheduler's CreateSchedule, as
QueueAdminService's CreateSchedule does, with the workflow id set so
ListSchedules shows which workflow it belongs to.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from nodedrop.api.checks import Violations
from nodedrop.api.model import Activation, WebhookRoute
from nodedrop.api.repository import ExecutionRepository
from nodedrop.api.subworkflows import SubworkflowPins
from nodedrop.api.workflow_cache import CachedWorkflow, WorkflowCache
from nodedrop.common.client import call
from nodedrop.common.errors import FailedPrecondition, NotFound, Unauthenticated, Unavailable
from nodedrop.common.logging import get_logger
from nodedrop.contract import to_proto
from nodedrop.queue.v1 import scheduler_service_pb2 as sched_pb
from nodedrop.queue.v1 import scheduler_service_pb2_grpc as sched_grpc
from nodedrop.workflow.v1 import workflow_pb2

__all__ = [
    "Activations",
    "SchedulePort",
    "ScheduleTrigger",
    "SchedulerSchedules",
    "Triggers",
    "triggers_of",
]

log = get_logger("nodedrop.api.activation")
_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class ScheduleTrigger:
    """A schedule_trigger's parameters (docs/workflows.md), checked when the
    workflow was stored (nodedrop.engine.schedule_rules, as CreateSchedule)."""

    cron: str
    timezone: str = "UTC"
    overlap: str = "skip"
    catch_up: str = "skip"
    catch_up_window_s: float = 0.0
    jitter_s: float = 0.0


class SchedulePort(Protocol):
    async def create(
        self, tenant_id: str, workflow: workflow_pb2.Workflow, trigger: ScheduleTrigger
    ) -> str:
        """The new schedule's id."""
        ...

    async def delete(self, tenant_id: str, schedule_id: str) -> None: ...


class SchedulerSchedules:
    """SchedulePort on the scheduler's RPCs, with the API's service credential."""

    def __init__(self, channel: grpc.aio.Channel, metadata: Sequence[tuple[str, str]]) -> None:
        self._stub = sched_grpc.SchedulerServiceStub(channel)
        self._metadata = tuple(metadata)

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await call(method, request, timeout_s=_TIMEOUT_S, metadata=self._metadata)
        except Unauthenticated as exc:
            raise Unavailable("the scheduler refused the API's service credential") from exc
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"the scheduler failed: {exc.code().name}") from exc

    async def create(
        self, tenant_id: str, workflow: workflow_pb2.Workflow, trigger: ScheduleTrigger
    ) -> str:
        schedule = sched_pb.Schedule(
            tenant_id=tenant_id,
            workflow_id=workflow.id,
            workflow=workflow,
            cron=trigger.cron,
            timezone=trigger.timezone,
            overlap=sched_pb.OverlapPolicy.Value(f"OVERLAP_POLICY_{trigger.overlap.upper()}"),
            catch_up=sched_pb.CatchUpPolicy.Value(f"CATCH_UP_POLICY_{trigger.catch_up.upper()}"),
        )
        schedule.catch_up_window.FromMilliseconds(round(trigger.catch_up_window_s * 1000))
        schedule.jitter.FromMilliseconds(round(trigger.jitter_s * 1000))
        r = await self._call(
            self._stub.CreateSchedule, sched_pb.CreateScheduleRequest(schedule=schedule)
        )
        return str(r.schedule.id)

    async def delete(self, tenant_id: str, schedule_id: str) -> None:
        # Deleted by hand already (NOT_FOUND): the activation's intent holds.
        with contextlib.suppress(NotFound):
            await self._call(
                self._stub.DeleteSchedule,
                sched_pb.DeleteScheduleRequest(schedule_id=schedule_id, tenant_id=tenant_id),
            )


@dataclass(frozen=True, slots=True)
class Triggers:
    # (node id, path) of each enabled webhook_trigger.
    webhooks: tuple[tuple[str, str], ...]
    # The enabled schedule_trigger's, if any.
    schedule: ScheduleTrigger | None


def triggers_of(document: Mapping[str, Any]) -> Triggers:
    """The triggers a version registers; InvalidArgument with a field violation
    per reason it cannot be activated."""
    v = Violations()
    webhooks: list[tuple[str, str]] = []
    schedules: list[ScheduleTrigger] = []
    seen: dict[str, str] = {}
    nodes = document.get("nodes")
    for i, node in enumerate(nodes if isinstance(nodes, list) else []):
        if not isinstance(node, dict) or node.get("disabled"):
            continue
        params = node.get("parameters") or {}
        if node.get("type") == "webhook_trigger":
            path = str(params.get("path") or "").strip("/")
            if not path:
                v.add(f"nodes[{i}].parameters.path", "a webhook_trigger needs a path to activate")
            elif path in seen:
                v.add(f"nodes[{i}].parameters.path", f"also the path of node {seen[path]!r}")
            else:
                seen[path] = str(node.get("id"))
                webhooks.append((str(node.get("id")), path))
        elif node.get("type") == "schedule_trigger":
            schedules.append(_schedule_trigger(params))
            if len(schedules) > 1:
                v.add(f"nodes[{i}]", "at most one schedule_trigger per workflow")
    if not webhooks and not schedules and not v.items:
        v.add("nodes", "nothing to activate: no enabled webhook_trigger or schedule_trigger")
    v.raise_if_any()
    return Triggers(tuple(webhooks), schedules[0] if schedules else None)


def _schedule_trigger(params: Mapping[str, Any]) -> ScheduleTrigger:
    return ScheduleTrigger(
        cron=str(params.get("cron")),
        timezone=str(params.get("timezone") or "UTC"),
        overlap=str(params.get("overlap") or "skip"),
        catch_up=str(params.get("catch_up") or "skip"),
        catch_up_window_s=float(params.get("catch_up_window") or 0),
        jitter_s=float(params.get("jitter") or 0),
    )


class Activations:
    def __init__(
        self,
        workflows: WorkflowCache,
        repository: ExecutionRepository,
        schedules: SchedulePort | None,
        pins: SubworkflowPins | None = None,
    ) -> None:
        self._workflows = workflows
        self._repo = repository
        self._schedules = schedules
        self._pins = pins

    async def activate(
        self, tenant_id: str, workflow_id: str, version: int | None
    ) -> tuple[CachedWorkflow, Activation]:
        cached = await self._workflows.get(tenant_id, workflow_id, version)
        if cached is None:
            what = f" version {version}" if version is not None else ""
            raise NotFound(f"workflow {workflow_id!r}{what} not found")
        record = cached.record
        triggers = triggers_of(cached.definition.document)
        schedule_id: str | None = None
        if triggers.schedule is not None:
            schedule_id = await self._create_schedule(tenant_id, cached, triggers.schedule)
        activation = Activation(
            tenant_id,
            record.id,
            record.version,
            schedule_id,
            tuple(
                WebhookRoute(tenant_id, path, record.id, record.version, node_id)
                for node_id, path in triggers.webhooks
            ),
        )
        try:
            previous = await self._repo.activate(activation)
        except BaseException:
            if schedule_id is not None:
                await self._delete_schedule(tenant_id, schedule_id)
            raise
        if previous is not None and previous.schedule_id:
            await self._delete_schedule(tenant_id, previous.schedule_id)
        log.info(
            "workflow activated",
            tenant_id=tenant_id,
            workflow_id=record.id,
            version=record.version,
            webhooks=len(activation.routes),
            schedule_id=schedule_id,
        )
        return cached, activation

    async def _create_schedule(
        self, tenant_id: str, cached: CachedWorkflow, trigger: ScheduleTrigger
    ) -> str:
        if self._schedules is None:
            raise FailedPrecondition(
                "a schedule_trigger needs the scheduler, which this API is not configured with"
            )
        definition = cached.definition
        if self._pins is not None:
            definition = await self._pins.pin(tenant_id, definition, "workflow_id")
        workflow = to_proto(definition.document)
        workflow.id, workflow.version = cached.record.id, cached.record.version
        return await self._schedules.create(tenant_id, workflow, trigger)

    async def _delete_schedule(self, tenant_id: str, schedule_id: str) -> None:
        if self._schedules is not None:
            await self._schedules.delete(tenant_id, schedule_id)

    async def deactivate(self, tenant_id: str, workflow_id: str) -> Activation | None:
        previous = await self._repo.deactivate(tenant_id, workflow_id)
        if previous is not None and previous.schedule_id:
            await self._delete_schedule(tenant_id, previous.schedule_id)
        if previous is not None:
            log.info("workflow deactivated", tenant_id=tenant_id, workflow_id=workflow_id)
        return previous
