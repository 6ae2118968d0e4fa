"""Sub-workflows by id, pinned when an execution is submitted.

Each ``execute_workflow`` node that names a stored workflow (``workflow_id``,
optionally ``workflow_version``) gets, in the execution's definition snapshot,
the version it resolves to now (``workflow_version``) and that version's
definition (``workflow``); the runtime runs the sub-workflow from there.  So
the snapshot is the whole program: a retry, a resume, a recovery or a worker
anywhere runs the same versions, and no run reads another tenant's workflows,
since resolution looks in the submitting tenant's only.  References inside
the resolved workflows are pinned too, to the depth the engine runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from nodedrop.api.workflow_cache import WorkflowCache
from nodedrop.common.errors import FieldViolation, InvalidArgument
from nodedrop.contract import Definition
from nodedrop.engine import EngineConfig
from nodedrop.engine.validate import validate_workflow

__all__ = ["SubworkflowPins", "carries_pins"]

_TYPE = "execute_workflow"


def _calls(document: Mapping[str, Any]) -> bool:
    nodes = document.get("nodes")
    return isinstance(nodes, list) and any(
        isinstance(n, dict) and n.get("type") == _TYPE for n in nodes
    )


def carries_pins(document: Mapping[str, Any]) -> bool:
    """True when the definition holds pinned sub-workflows (inline sub-workflows
    included): it is then not the text of the stored version it came from."""
    if not _calls(document):
        return False
    for node in document["nodes"]:
        if not isinstance(node, dict) or node.get("type") != _TYPE:
            continue
        params = node.get("parameters")
        if not isinstance(params, dict) or not isinstance(params.get("workflow"), dict):
            continue
        if params.get("workflow_id") is not None or carries_pins(params["workflow"]):
            return True
    return False


class SubworkflowPins:
    def __init__(self, workflows: WorkflowCache, engine: EngineConfig, *, max_bytes: int) -> None:
        self._workflows = workflows
        self._engine = engine
        # The pinned definition may not grow past what one request may carry.
        self._max_bytes = max_bytes

    async def pin(self, tenant_id: str, definition: Definition, prefix: str) -> Definition:
        """The definition with every sub-workflow reference pinned (itself when it has
        none); INVALID_ARGUMENT naming the node when a reference does not resolve."""
        if not _calls(definition.document):
            return definition
        budget = [self._max_bytes - len(definition.json.encode())]
        document = await self._expand(tenant_id, definition.document, prefix, 0, budget)
        if document is definition.document:
            return definition
        problems = validate_workflow(document, self._engine.limits, registry=self._engine.registry)
        if problems:
            raise InvalidArgument(
                f"invalid workflow with its sub-workflows: {problems[0].path}: "
                f"{problems[0].message}",
                [
                    FieldViolation(f"{prefix}.{p.path}" if p.path else prefix, p.message)
                    for p in problems
                ],
            )
        return Definition(document, orjson.dumps(document).decode(), definition.settings)

    async def _expand(
        self,
        tenant_id: str,
        document: Mapping[str, Any],
        path: str,
        depth: int,
        budget: list[int],
    ) -> Mapping[str, Any]:
        nodes = document.get("nodes")
        if not isinstance(nodes, list):
            return document
        changed: dict[int, dict[str, Any]] = {}
        for i, node in enumerate(nodes):
            if not isinstance(node, dict) or node.get("type") != _TYPE:
                continue
            params = node.get("parameters")
            if not isinstance(params, dict):
                continue
            at = f"{path}.nodes[{i}].parameters"
            workflow_id = params.get("workflow_id")
            if workflow_id is None:
                inline = params.get("workflow")
                if isinstance(inline, dict):
                    sub = await self._expand(tenant_id, inline, f"{at}.workflow", depth + 1, budget)
                    if sub is not inline:
                        changed[i] = {**node, "parameters": {**params, "workflow": sub}}
                continue
            pinned = await self._resolve(tenant_id, params, at, depth, budget)
            changed[i] = {**node, "parameters": {**params, **pinned}}
        if not changed:
            return document
        return {**document, "nodes": [changed.get(i, n) for i, n in enumerate(nodes)]}

    async def _resolve(
        self,
        tenant_id: str,
        params: Mapping[str, Any],
        at: str,
        depth: int,
        budget: list[int],
    ) -> dict[str, Any]:
        workflow_id = params["workflow_id"]
        version = params.get("workflow_version")
        field = f"{at}.workflow_id"
        if depth >= self._engine.max_subworkflow_depth:
            raise InvalidArgument.field(
                field,
                f"sub-workflows nest deeper than {self._engine.max_subworkflow_depth} levels "
                "(does a workflow call itself?)",
            )
        if not isinstance(workflow_id, str) or not _is_uuid(workflow_id):
            raise InvalidArgument.field(field, "must be the id of a stored workflow")
        if version is not None and (not isinstance(version, int) or version < 1):
            raise InvalidArgument.field(f"{at}.workflow_version", "must be an integer >= 1")
        # The submitting tenant's workflows only: another tenant's id is not found.
        cached = await self._workflows.get(tenant_id, workflow_id, version)
        if cached is None:
            what = f" version {version}" if version is not None else ""
            raise InvalidArgument.field(field, f"no workflow {workflow_id!r}{what} in this tenant")
        budget[0] -= len(cached.definition.json.encode())
        if budget[0] < 0:
            raise InvalidArgument.field(
                field,
                f"with its sub-workflows the definition exceeds {self._max_bytes} bytes",
            )
        sub = await self._expand(
            tenant_id, cached.definition.document, f"{at}.workflow", depth + 1, budget
        )
        return {"workflow_version": cached.record.version, "workflow": sub}


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
