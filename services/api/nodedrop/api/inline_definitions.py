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

from nodedrop.api.validation import Rules
from nodedrop.contract import Definition
from nodedrop.engine import Problem
from nodedrop.workflow.v1 import workflow_pb2

__all__ = ["InlineDefinitions"]


class InlineDefinitions:
    def __init__(self, rules: Rules, *, size: int = 256) -> None:
        self._rules = rules
        self._size = size
        self._valid: OrderedDict[bytes, Definition] = OrderedDict()

    def check(
        self, wf: workflow_pb2.Workflow, prefix: str
    ) -> tuple[Definition | None, list[Problem]]:
        """As ``Rules.problems_of``: the definition, or None and every problem."""
        key = wf.SerializeToString(deterministic=True)
        known = self._valid.get(key)
        if known is not None:
            self._valid.move_to_end(key)
            return known, []
        definition, problems = self._rules.problems_of(wf, prefix)
        if definition is not None:
            self._valid[key] = definition
            if len(self._valid) > self._size:
                self._valid.popitem(last=False)
        return definition, problems
