"""Workflow domain values: immutable once parsed.

Items are plain JSON objects (``dict[str, Any]``) and are never copied by the
engine: a node that changes an item builds a new dict, so the same item object
can safely flow to several branches.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Item = dict[str, Any]
Items = list[Item]
# Output port name -> items emitted on it.
NodeOutputs = dict[str, Items]

MAIN = "main"


class OnError(enum.StrEnum):
    FAIL = "fail"
    CONTINUE = "continue"
    ERROR_OUTPUT = "error_output"


@dataclass(frozen=True, slots=True)
class NodeRetry:
    """Node-level retry within one attempt: ``max_tries`` counts every try, the first included."""

    max_tries: int = 1
    wait_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    type: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    disabled: bool = False
    retry: NodeRetry | None = None
    timeout_s: float | None = None
    on_error: OnError = OnError.FAIL


@dataclass(frozen=True, slots=True)
class Connection:
    source: str
    target: str
    source_output: str = MAIN
    target_input: str = MAIN


@dataclass(frozen=True, slots=True)
class WorkflowSettings:
    timeout_s: float = 300.0
    max_attempts: int = 3
    backoff_s: float = 2.0


@dataclass(frozen=True, eq=True)
class Workflow:
    name: str
    nodes: tuple[Node, ...]
    connections: tuple[Connection, ...] = ()
    settings: WorkflowSettings = WorkflowSettings()
    # Compiled execution plans, keyed by the registry they were built with.
    # Cached on the object so a workflow reused across executions compiles once.
    _plans: dict[int, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)
