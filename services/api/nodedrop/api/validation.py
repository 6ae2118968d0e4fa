"""Workflow validation at the API: the engine's rules through the one mapping
(nodedrop.contract), with this API's cap on nodes and the node types it runs.

Every problem becomes one google.rpc.BadRequest field violation, its field the
path into the request (e.g. "workflow.nodes[2].parameters.condition").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from nodedrop.common.errors import FieldViolation, InvalidArgument
from nodedrop.contract import Definition, check
from nodedrop.engine import EngineConfig, Problem
from nodedrop.workflow.v1 import workflow_pb2

__all__ = ["Rules", "raise_problems"]


class Rules:
    """What a workflow sent to this API is checked against."""

    def __init__(self, *, max_nodes: int, engine: EngineConfig | None = None) -> None:
        config = engine or EngineConfig()
        self._limits = replace(config.limits, max_nodes=min(max_nodes, config.limits.max_nodes))
        self._registry = config.registry

    def problems_of(
        self, wf: workflow_pb2.Workflow, prefix: str
    ) -> tuple[Definition | None, list[Problem]]:
        """The definition, or None and every problem (paths under ``prefix``)."""
        return check(wf, prefix, limits=self._limits, registry=self._registry)

    def definition(self, wf: workflow_pb2.Workflow, prefix: str) -> Definition:
        """The definition; INVALID_ARGUMENT listing every problem."""
        definition, problems = self.problems_of(wf, prefix)
        raise_problems(problems)
        assert definition is not None
        return definition


def raise_problems(problems: Sequence[Problem]) -> None:
    if problems:
        first = problems[0]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidArgument(
            f"invalid workflow: {first.path}: {first.message}{more}",
            [FieldViolation(p.path, f"{p.code}: {p.message}") for p in problems],
        )
