"""Inline workflow definitions already checked, by their content.

A client that submits its definition with every ExecuteWorkflow (rather
than storing it once) sends the same bytes again and again; converting and
validating them is most of such a call's handler time. Definitions that
passed are remembered by their serialized bytes, per process and bounded;
one with problems is checked again each time, so its caller always gets
them all.
"""

from __future__ import annotations

from collections import OrderedDict

from nodedrop.api.definitions import Definition, DefinitionProblem
from nodedrop.api.validation import problems_of
from nodedrop.engine import NodeRegistry
from nodedrop.workflow.v1 import workflow_pb2

__all__ = ["InlineDefinitions"]


class InlineDefinitions:
    def __init__(
        self, *, max_nodes: int, size: int = 256, registry: NodeRegistry | None = None
    ) -> None:
        self._max_nodes = max_nodes
        self._registry = registry
        self._size = size
        self._valid: OrderedDict[bytes, Definition] = OrderedDict()

    def check(
        self, wf: workflow_pb2.Workflow, prefix: str
    ) -> tuple[Definition | None, list[DefinitionProblem]]:
        """As ``problems_of``: the definition, or None and every problem."""
        key = wf.SerializeToString(deterministic=True)
        known = self._valid.get(key)
        if known is not None:
            self._valid.move_to_end(key)
            return known, []
        definition, problems = problems_of(
            wf, prefix, max_nodes=self._max_nodes, registry=self._registry
        )
        if definition is not None:
            self._valid[key] = definition
            if len(self._valid) > self._size:
                self._valid.popitem(last=False)
        return definition, problems
