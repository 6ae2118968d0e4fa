"""Workflow validation at the API: the edge checks, then the engine's.

Every problem of both passes becomes one google.rpc.BadRequest field
violation, its field the path into the request (e.g.
"workflow.nodes[2].parameters.condition").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from nodedrop.api.definitions import Definition, DefinitionProblem, from_proto
from nodedrop.common.errors import FieldViolation, InvalidArgument
from nodedrop.engine import NodeRegistry
from nodedrop.engine.validate import validate_workflow
from nodedrop.workflow.v1 import workflow_pb2

__all__ = ["check_definition", "problems_of", "raise_problems"]

_PART = re.compile(r"(nodes|connections)\[(\d+)\]")


def _engine_problems(
    definition: Definition, prefix: str, registry: NodeRegistry | None
) -> list[DefinitionProblem]:
    return [
        DefinitionProblem(f"{prefix}.{p.path}" if p.path else prefix, p.code, p.message)
        for p in validate_workflow(definition.document, registry=registry)
    ]


def _index(path: str, prefix: str, kind: str) -> int | None:
    match = _PART.match(path, len(prefix) + 1) if path.startswith(prefix + ".") else None
    if match is None or match.group(1) != kind:
        return None
    return int(match.group(2))


def _engine_draft(
    draft: Definition, edge: list[DefinitionProblem], prefix: str
) -> tuple[dict[str, Any], list[int], set[int]]:
    """The draft with what the edge checks flagged neutralised, indices kept: a flagged
    node becomes a noop under a stand-in id (connections follow it), a flagged
    connection is left out. Returns the document, the original index of each kept
    connection, and the flagged node indices."""
    bad_nodes = {i for p in edge if (i := _index(p.path, prefix, "nodes")) is not None}
    bad_conns = {i for p in edge if (i := _index(p.path, prefix, "connections")) is not None}
    nodes = [dict(n) for n in draft.document.get("nodes", ())]
    # A duplicate keeps its connections with the first node of that id.
    healthy = {str(n.get("id")) for i, n in enumerate(nodes) if i not in bad_nodes}
    renamed: dict[str, str] = {}
    for i in bad_nodes:
        if i < len(nodes):
            stand_in = f"flagged-{i}"
            if str(nodes[i].get("id")) not in healthy:
                renamed[str(nodes[i].get("id"))] = stand_in
            nodes[i] = {"id": stand_in, "type": "noop", "parameters": {}}
    kept = [j for j in range(len(draft.document.get("connections", ()))) if j not in bad_conns]
    connections = []
    for j in kept:
        c = dict(draft.document["connections"][j])
        c["from"] = renamed.get(c["from"], c["from"])
        c["to"] = renamed.get(c["to"], c["to"])
        connections.append(c)
    document = {**draft.document, "nodes": nodes, "connections": connections}
    return document, kept, bad_nodes


def problems_of(
    wf: workflow_pb2.Workflow,
    prefix: str,
    *,
    max_nodes: int,
    registry: NodeRegistry | None = None,
) -> tuple[Definition | None, list[DefinitionProblem]]:
    """Every problem: the edge checks', then the engine's on the same draft, except
    about a node or connection the edge checks already flagged (one cause, one report)."""
    draft, edge = from_proto(wf, prefix, max_nodes=max_nodes, draft=True)
    if draft is None or len(wf.nodes) > max_nodes:
        return None, edge
    if not edge:
        problems = _engine_problems(draft, prefix, registry)
        return (None, problems) if problems else (draft, [])
    document, kept, bad_nodes = _engine_draft(draft, edge, prefix)
    problems = list(edge)
    for p in validate_workflow(document, registry=registry):
        path = f"{prefix}.{p.path}" if p.path else prefix
        node = _index(path, prefix, "nodes")
        if node is not None and node in bad_nodes:
            continue
        conn = _index(path, prefix, "connections")
        if conn is not None:
            original = f"connections[{kept[conn]}]" if conn < len(kept) else None
            if original is None:
                continue
            path = path.replace(f"connections[{conn}]", original, 1)
        problems.append(DefinitionProblem(path, p.code, p.message))
    return None, problems


def raise_problems(problems: Sequence[DefinitionProblem]) -> None:
    if problems:
        first = problems[0]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidArgument(
            f"invalid workflow: {first.path}: {first.message}{more}",
            [FieldViolation(p.path, f"{p.code}: {p.message}") for p in problems],
        )


def check_definition(
    wf: workflow_pb2.Workflow,
    prefix: str,
    *,
    max_nodes: int,
    registry: NodeRegistry | None = None,
) -> Definition:
    definition, problems = problems_of(wf, prefix, max_nodes=max_nodes, registry=registry)
    raise_problems(problems)
    assert definition is not None
    return definition
