"""Test node types registered through the public registry API."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

from nodedrop.engine import EngineConfig, NodeError, NodeType, Prepared, default_registry
from nodedrop.engine.context import NodeContext
from nodedrop.engine.model import Items, Node, NodeOutputs
from nodedrop.engine.registry import CompileContext, Reporter


class SideEffects:
    """Counts runs per node id: a stand-in for an external side effect."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        # node id -> how many runs fail before one succeeds
        self.failures: dict[str, int] = {}


def counting_config(effects: SideEffects, **kwargs: Any) -> EngineConfig:
    def factory(
        node: Node, values: dict[str, Any], base: str, r: Reporter, c: CompileContext
    ) -> Prepared:
        def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
            effects.runs[ctx.node.id] += 1
            if effects.failures.get(ctx.node.id, 0) >= effects.runs[ctx.node.id]:
                raise NodeError(f"flaky failure {effects.runs[ctx.node.id]}", code="flaky")
            items = inputs.get("main", [])
            return {"main": [{**it, ctx.node.id: True} for it in items]}

        return Prepared(run, is_async=False)

    registry = default_registry().copy()
    registry.register(NodeType("count", params=(), factory=factory))
    return EngineConfig(registry=registry, **kwargs)


def chain(ids: list[str], node_type: str = "count") -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "manual_trigger"}]
    nodes += [{"id": i, "type": node_type} for i in ids]
    order = ["start", *ids]
    conns = [{"from": a, "to": b} for a, b in itertools.pairwise(order)]
    return {"name": "chain", "nodes": nodes, "connections": conns}
