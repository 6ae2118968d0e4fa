"""ExecuteNode: runs one node on given items through the engine; stores nothing.

Bad input (the node's shape, its parameters, the items) is INVALID_ARGUMENT
with one field violation per problem, paths into the request (`node.id`,
`node.parameters_json.condition`, `inputs_json[b]`); a node that runs and
fails answers OK with the failure in the response's `error`, as the user
asked to see exactly that.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from nodedrop.api.checks import Violations
from nodedrop.api.convert import duration
from nodedrop.common.errors import ResourceExhausted
from nodedrop.contract import document_of
from nodedrop.engine import (
    EngineConfig,
    ExecutionInfo,
    Node,
    NodeError,
    Problem,
    ValidationError,
    execute_node,
)
from nodedrop.engine.parse import parse_workflow
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as pb
from nodedrop.workflow.v1 import workflow_pb2

__all__ = ["NodeTester"]

# A test run is interactive: a node waiting longer than this is cut short
# (a node's own timeout_s, when lower, applies first).
DEFAULT_MAX_RUN_S = 60.0
MAX_PORTS = 32


def _node_path(path: str) -> str:
    """An engine path inside the one-node wrapper -> the path into the request."""
    for wrapper in ("nodes[0].", "node_test.nodes[0]."):
        if path.startswith(wrapper):
            path = path[len(wrapper) :]
            break
    if path.startswith("parameters") and not path.startswith("parameters_json"):
        path = "parameters_json" + path[len("parameters") :]
    return f"node.{path}" if path else "node"


class NodeTester:
    def __init__(
        self,
        *,
        max_request_bytes: int,
        config: EngineConfig | None = None,
        max_run_s: float = DEFAULT_MAX_RUN_S,
    ) -> None:
        self._max_request_bytes = max_request_bytes
        self._config = config or EngineConfig()
        self._max_run_s = max_run_s

    async def run(self, request: pb.ExecuteNodeRequest, tenant: str) -> pb.ExecuteNodeResponse:
        if request.ByteSize() > self._max_request_bytes:
            raise ResourceExhausted(
                f"request is {request.ByteSize()} bytes; the limit is {self._max_request_bytes}"
            )
        v = Violations()
        node = self._node(request, v) if request.HasField("node") else None
        if not request.HasField("node"):
            v.add("node", "required")
        inputs: dict[str, Any] = {"main": []}
        depth = self._config.limits.max_data_depth
        main = v.json_items(
            "input_items_json", request.input_items_json, allow_object=False, max_depth=depth
        )
        if isinstance(main, list):
            inputs["main"] = main
        if len(request.inputs_json) > MAX_PORTS:
            v.add("inputs_json", f"at most {MAX_PORTS} ports")
        for port, text in sorted(request.inputs_json.items()):
            items = v.json_items(f"inputs_json[{port}]", text, allow_object=False, max_depth=depth)
            if not text.strip():
                v.add(f"inputs_json[{port}]", "must be a JSON array of objects")
            elif isinstance(items, list):
                if port == "main" and request.input_items_json.strip():
                    v.add(f"inputs_json[{port}]", "main is given in input_items_json already")
                inputs[port] = items
        trigger = v.json_items(
            "trigger_data_json", request.trigger_data_json, allow_object=True, max_depth=depth
        )
        v.raise_if_any()
        assert node is not None
        return await self._execute(node, inputs, trigger, tenant)

    def _node(self, request: pb.ExecuteNodeRequest, v: Violations) -> Node | None:
        wrapper = workflow_pb2.Workflow(name="node-test", nodes=[request.node])
        document, problems = document_of(wrapper, "node_test")
        for p in problems:
            v.add(_node_path(p.path), f"{p.code}: {p.message}")
        if problems:
            return None
        try:
            workflow = parse_workflow(document)
        except ValidationError as exc:
            _add_problems(v, exc.problems)
            return None
        return workflow.nodes[0]

    async def _execute(
        self, node: Node, inputs: dict[str, Any], trigger: Any, tenant: str
    ) -> pb.ExecuteNodeResponse:
        response = pb.ExecuteNodeResponse()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._max_run_s):
                outputs = await execute_node(
                    node,
                    inputs,
                    trigger_data=trigger,
                    config=self._config,
                    execution=ExecutionInfo("test", tenant=tenant),
                    timeout_s=self._max_run_s,
                )
        except ValidationError as exc:
            v = Violations()
            _add_problems(v, exc.problems)
            v.raise_if_any()
            raise
        except NodeError as exc:
            response.error.CopyFrom(
                execution_pb2.ExecutionError(
                    message=exc.message,
                    node_id=exc.node_id or node.id,
                    code=exc.code,
                    retryable=exc.retryable,
                )
            )
        except TimeoutError:
            response.error.CopyFrom(
                execution_pb2.ExecutionError(
                    message=f"the test run was stopped after {self._max_run_s:g} s",
                    node_id=node.id,
                    code="test_timeout",
                    retryable=False,
                )
            )
        else:
            for port, items in outputs.items():
                response.outputs_json[port] = orjson.dumps(items).decode()
        response.duration.CopyFrom(duration(time.perf_counter() - started))
        return response


def _add_problems(v: Violations, problems: list[Problem]) -> None:
    for p in problems:
        v.add(_node_path(p.path), f"{p.code}: {p.message}")
