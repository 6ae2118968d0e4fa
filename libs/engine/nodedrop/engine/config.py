"""Engine configuration shared by every execution of a process."""

from __future__ import annotations

from dataclasses import dataclass, field

from nodedrop.engine.code import CodeSandbox
from nodedrop.engine.http_policy import HttpPolicy
from nodedrop.engine.limits import DEFAULT_LIMITS, Limits
from nodedrop.engine.registry import NodeRegistry


def _default_registry() -> NodeRegistry:
    from nodedrop.engine.nodes import default_registry  # noqa: PLC0415 - nodes import config

    return default_registry()


@dataclass(frozen=True)
class EngineConfig:
    registry: NodeRegistry = field(default_factory=_default_registry)
    http: HttpPolicy = field(default_factory=HttpPolicy)
    # Async nodes (wait, http_request, execute_workflow) running at once per execution.
    max_parallel_nodes: int = 16
    limits: Limits = DEFAULT_LIMITS
    max_subworkflow_depth: int = 8
    # A synchronous node given at least this many items runs on a thread, so
    # that the event loop keeps serving between its expression evaluations
    # (each bounded by the cost limit); smaller runs stay inline, where a
    # thread would cost more than the node.
    offload_items: int = 1000
    # Where code nodes run (nodedrop.sandbox.ProcessSandbox); without one a
    # code node fails with code_unavailable.
    code: CodeSandbox | None = None
