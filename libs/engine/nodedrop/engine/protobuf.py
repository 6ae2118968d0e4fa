"""Conversion between domain values and nodedrop.workflow.v1 messages (the only
module of the engine that knows protobuf). Parameters travel as JSON text."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from nodedrop.engine.errors import Problem, ValidationError
from nodedrop.engine.model import (
    MAIN,
    Connection,
    Node,
    NodeRetry,
    OnError,
    Workflow,
    WorkflowSettings,
)
from nodedrop.workflow.v1 import workflow_pb2 as pb

_ON_ERROR_TO_PB = {
    OnError.FAIL: pb.ON_ERROR_FAIL,
    OnError.CONTINUE: pb.ON_ERROR_CONTINUE,
    OnError.ERROR_OUTPUT: pb.ON_ERROR_ERROR_OUTPUT,
}
_ON_ERROR_FROM_PB = {v: k for k, v in _ON_ERROR_TO_PB.items()}
_ON_ERROR_FROM_PB[pb.ON_ERROR_UNSPECIFIED] = OnError.FAIL


def node_from_proto(msg: pb.Node, path: str = "node") -> Node:
    """Raises ValidationError (with paths under ``path``) for bad parameters JSON or enums."""
    problems: list[Problem] = []
    params: object = {}
    if msg.parameters_json:
        try:
            params = orjson.loads(msg.parameters_json)
        except orjson.JSONDecodeError as exc:
            problems.append(Problem(f"{path}.parameters_json", "invalid_json", str(exc)))
    if not isinstance(params, dict):
        problems.append(
            Problem(f"{path}.parameters_json", "invalid_type", "parameters must be a JSON object")
        )
        params = {}
    on_error = _ON_ERROR_FROM_PB.get(msg.on_error)
    if on_error is None:
        problems.append(Problem(f"{path}.on_error", "invalid_on_error", "unknown on_error value"))
        on_error = OnError.FAIL
    if problems:
        raise ValidationError(problems)
    retry = None
    if msg.HasField("retry"):
        retry = NodeRetry(max_tries=msg.retry.max_tries, wait_s=msg.retry.wait_s)
    return Node(
        id=msg.id,
        type=msg.type,
        parameters=params,
        disabled=msg.disabled,
        retry=retry,
        timeout_s=msg.timeout_s if msg.HasField("timeout_s") else None,
        on_error=on_error,
    )


def node_to_proto(node: Node) -> pb.Node:
    msg = pb.Node(
        id=node.id,
        type=node.type,
        parameters_json=orjson.dumps(dict(node.parameters)).decode(),
        disabled=node.disabled,
        on_error=_ON_ERROR_TO_PB[node.on_error],
    )
    if node.retry is not None:
        msg.retry.CopyFrom(pb.NodeRetry(max_tries=node.retry.max_tries, wait_s=node.retry.wait_s))
    if node.timeout_s is not None:
        msg.timeout_s = node.timeout_s
    return msg


def workflow_from_proto(msg: pb.Workflow) -> Workflow:
    """The domain workflow of ``msg``; structural validation is ``validate_workflow``'s job
    (pass the result to it). Raises ValidationError for undecodable parameters."""
    problems: list[Problem] = []
    nodes: list[Node] = []
    for i, n in enumerate(msg.nodes):
        try:
            nodes.append(node_from_proto(n, f"nodes[{i}]"))
        except ValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ValidationError(problems)
    d = WorkflowSettings()
    s = msg.settings
    settings = WorkflowSettings(
        timeout_s=s.timeout_s if s.HasField("timeout_s") else d.timeout_s,
        max_attempts=s.max_attempts if s.HasField("max_attempts") else d.max_attempts,
        backoff_s=s.backoff_s if s.HasField("backoff_s") else d.backoff_s,
    )
    conns = tuple(
        Connection(
            source=c.source,
            target=c.target,
            source_output=c.source_output or MAIN,
            target_input=c.target_input or MAIN,
        )
        for c in msg.connections
    )
    return Workflow(name=msg.name, nodes=tuple(nodes), connections=conns, settings=settings)


def workflow_to_proto(wf: Workflow) -> pb.Workflow:
    return pb.Workflow(
        name=wf.name,
        nodes=[node_to_proto(n) for n in wf.nodes],
        connections=[
            pb.Connection(
                source=c.source,
                source_output=c.source_output,
                target=c.target,
                target_input=c.target_input,
            )
            for c in wf.connections
        ],
        settings=pb.WorkflowSettings(
            timeout_s=wf.settings.timeout_s,
            max_attempts=wf.settings.max_attempts,
            backoff_s=wf.settings.backoff_s,
        ),
    )


def problems_to_proto(problems: Iterable[Problem]) -> list[pb.ValidationProblem]:
    return [pb.ValidationProblem(path=p.path, code=p.code, message=p.message) for p in problems]
