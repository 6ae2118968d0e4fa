"""WorkflowService: stored, versioned workflow definitions of the caller's tenant."""

from __future__ import annotations

import uuid

from nodedrop.api import pagination
from nodedrop.api.activation import Activations
from nodedrop.api.checks import Violations, reject_nul
from nodedrop.api.convert import workflow
from nodedrop.api.repository import ExecutionRepository
from nodedrop.api.validation import Rules
from nodedrop.api.workflow_cache import WorkflowCache
from nodedrop.common.auth import SCOPE_EXECUTE, SCOPE_READ, require_scope
from nodedrop.common.errors import NotFound
from nodedrop.contract import problems_to_proto
from nodedrop.engine import EngineConfig
from nodedrop.workflow.v1 import workflow_service_pb2 as pb
from nodedrop.workflow.v1 import workflow_service_pb2_grpc

__all__ = ["WorkflowServicer"]


class WorkflowServicer(workflow_service_pb2_grpc.WorkflowServiceServicer):
    def __init__(
        self,
        repository: ExecutionRepository,
        *,
        max_nodes: int,
        cache: WorkflowCache | None = None,
        engine: EngineConfig | None = None,
        activations: Activations | None = None,
    ) -> None:
        self._repo = repository
        self._activations = activations or Activations(
            cache or WorkflowCache(repository), repository, None
        )
        self._rules = Rules(max_nodes=max_nodes, engine=engine)
        self._cache = cache

    async def CreateWorkflow(
        self, request: pb.CreateWorkflowRequest, context: object
    ) -> pb.CreateWorkflowResponse:
        principal = require_scope(SCOPE_EXECUTE)
        reject_nul(request)
        definition = self._rules.definition(request.workflow, "workflow")
        record = await self._repo.create_workflow(
            principal.tenant_id, str(uuid.uuid4()), definition.name, definition.json
        )
        return pb.CreateWorkflowResponse(workflow=workflow(record))

    async def GetWorkflow(
        self, request: pb.GetWorkflowRequest, context: object
    ) -> pb.GetWorkflowResponse:
        principal = require_scope(SCOPE_READ)
        version = _version_of(request)
        record = await self._repo.get_workflow(principal.tenant_id, request.workflow_id, version)
        if record is None:
            raise NotFound(f"workflow {request.workflow_id!r} not found")
        msg = workflow(record)
        msg.active_version = (
            await self._repo.active_versions(principal.tenant_id, [record.id])
        ).get(record.id, 0)
        return pb.GetWorkflowResponse(workflow=msg)

    async def ListWorkflows(
        self, request: pb.ListWorkflowsRequest, context: object
    ) -> pb.ListWorkflowsResponse:
        principal = require_scope(SCOPE_READ)
        reject_nul(request)
        v = Violations()
        size = v.page_size("page_size", request.page_size)
        if len(request.name_prefix) > 200:
            v.add("name_prefix", "at most 200 characters")
        v.raise_if_any()
        after = None
        if request.page_token:
            name, ident = pagination.decode(request.page_token, "page_token", 2)
            after = (str(name), str(ident))
        records = await self._repo.list_workflows(
            principal.tenant_id, request.name_prefix, after, size + 1
        )
        active = await self._repo.active_versions(
            principal.tenant_id, [r.id for r in records[:size]]
        )
        response = pb.ListWorkflowsResponse(workflows=[workflow(r) for r in records[:size]])
        for msg in response.workflows:
            msg.active_version = active.get(msg.id, 0)
        if len(records) > size:
            last = records[size - 1]
            response.next_page_token = pagination.encode([last.name, last.id])
        return response

    async def UpdateWorkflow(
        self, request: pb.UpdateWorkflowRequest, context: object
    ) -> pb.UpdateWorkflowResponse:
        principal = require_scope(SCOPE_EXECUTE)
        reject_nul(request)
        v = Violations()
        v.uuid("workflow_id", request.workflow_id)
        expected = request.expected_version if request.HasField("expected_version") else None
        if expected is not None and expected < 1:
            v.add("expected_version", "must be >= 1")
        definition, problems = self._rules.problems_of(request.workflow, "workflow")
        for p in problems:
            v.add(p.path, f"{p.code}: {p.message}")
        v.raise_if_any()
        assert definition is not None
        record = await self._repo.update_workflow(
            principal.tenant_id, request.workflow_id, definition.name, definition.json, expected
        )
        if self._cache is not None:
            self._cache.invalidate(principal.tenant_id, request.workflow_id)
        return pb.UpdateWorkflowResponse(workflow=workflow(record))

    async def DeleteWorkflow(
        self, request: pb.DeleteWorkflowRequest, context: object
    ) -> pb.DeleteWorkflowResponse:
        principal = require_scope(SCOPE_EXECUTE)
        v = Violations()
        v.uuid("workflow_id", request.workflow_id)
        v.raise_if_any()
        # A deleted workflow's webhooks answer 404 and its schedule stops.
        await self._activations.deactivate(principal.tenant_id, request.workflow_id)
        deleted = await self._repo.delete_workflow(principal.tenant_id, request.workflow_id)
        if self._cache is not None:
            self._cache.forget(principal.tenant_id, request.workflow_id)
        if not deleted:
            raise NotFound(f"workflow {request.workflow_id!r} not found")
        return pb.DeleteWorkflowResponse()

    async def ListWorkflowVersions(
        self, request: pb.ListWorkflowVersionsRequest, context: object
    ) -> pb.ListWorkflowVersionsResponse:
        principal = require_scope(SCOPE_READ)
        v = Violations()
        v.uuid("workflow_id", request.workflow_id)
        size = v.page_size("page_size", request.page_size)
        v.raise_if_any()
        before = None
        if request.page_token:
            (value,) = pagination.decode(request.page_token, "page_token", 1)
            if not isinstance(value, int):
                v.add("page_token", "not a page token returned by this API")
                v.raise_if_any()
            before = int(value)
        records = await self._repo.list_workflow_versions(
            principal.tenant_id, request.workflow_id, before, size + 1
        )
        if records is None:
            raise NotFound(f"workflow {request.workflow_id!r} not found")
        response = pb.ListWorkflowVersionsResponse(versions=[workflow(r) for r in records[:size]])
        if len(records) > size:
            response.next_page_token = pagination.encode([records[size - 1].version])
        return response

    async def ValidateWorkflow(
        self, request: pb.ValidateWorkflowRequest, context: object
    ) -> pb.ValidateWorkflowResponse:
        require_scope(SCOPE_READ)
        _, problems = self._rules.problems_of(request.workflow, "workflow")
        return pb.ValidateWorkflowResponse(valid=not problems, problems=problems_to_proto(problems))

    async def ActivateWorkflow(
        self, request: pb.ActivateWorkflowRequest, context: object
    ) -> pb.ActivateWorkflowResponse:
        principal = require_scope(SCOPE_EXECUTE)
        version = _version_of(request)
        cached, activation = await self._activations.activate(
            principal.tenant_id, request.workflow_id, version
        )
        msg = workflow(cached.record)
        msg.active_version = activation.version
        return pb.ActivateWorkflowResponse(
            workflow=msg,
            webhook_paths=[f"/webhook/{r.tenant_id}/{r.path}" for r in activation.routes],
            schedule_id=activation.schedule_id or "",
        )

    async def DeactivateWorkflow(
        self, request: pb.DeactivateWorkflowRequest, context: object
    ) -> pb.DeactivateWorkflowResponse:
        principal = require_scope(SCOPE_EXECUTE)
        v = Violations()
        v.uuid("workflow_id", request.workflow_id)
        v.raise_if_any()
        record = await self._repo.get_workflow(principal.tenant_id, request.workflow_id, None)
        if record is None:
            raise NotFound(f"workflow {request.workflow_id!r} not found")
        await self._activations.deactivate(principal.tenant_id, request.workflow_id)
        return pb.DeactivateWorkflowResponse(workflow=workflow(record))


def _version_of(request: pb.GetWorkflowRequest | pb.ActivateWorkflowRequest) -> int | None:
    """The checked workflow id and optional version of a request naming one
    version of a stored workflow (None: the latest)."""
    v = Violations()
    v.uuid("workflow_id", request.workflow_id)
    version = request.version if request.HasField("version") else None
    if version is not None and version < 1:
        v.add("version", "must be >= 1")
    v.raise_if_any()
    return version
