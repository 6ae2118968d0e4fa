"""Workflow validation at the API: the edge checks, then the engine's.

Every problem of both passes becomes one google.rpc.BadRequest field
violation, its field the path into the request (e.g.
"workflow.nodes[2].parameters.condition").
"""

from __future__ import annotations

from collections.abc import Sequence

from nodedrop.api.definitions import Definition, DefinitionProblem, from_proto
from nodedrop.common.errors import FieldViolation, InvalidArgument
from nodedrop.engine.validate import validate_workflow
from nodedrop.workflow.v1 import workflow_pb2

__all__ = ["check_definition", "problems_of", "raise_problems"]


def _engine_problems(definition: Definition, prefix: str) -> list[DefinitionProblem]:
    return [
        DefinitionProblem(f"{prefix}.{p.path}" if p.path else prefix, p.code, p.message)
        for p in validate_workflow(definition.document)
    ]


def problems_of(
    wf: workflow_pb2.Workflow, prefix: str, *, max_nodes: int
) -> tuple[Definition | None, list[DefinitionProblem]]:
    definition, problems = from_proto(wf, prefix, max_nodes=max_nodes)
    if definition is None:
        return None, problems
    problems = _engine_problems(definition, prefix)
    return (None, problems) if problems else (definition, [])


def raise_problems(problems: Sequence[DefinitionProblem]) -> None:
    if problems:
        first = problems[0]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidArgument(
            f"invalid workflow: {first.path}: {first.message}{more}",
            [FieldViolation(p.path, f"{p.code}: {p.message}") for p in problems],
        )


def check_definition(wf: workflow_pb2.Workflow, prefix: str, *, max_nodes: int) -> Definition:
    definition, problems = problems_of(wf, prefix, max_nodes=max_nodes)
    raise_problems(problems)
    assert definition is not None
    return definition
