"""Running a node's code: on the event loop, or on a thread when it is given
many items, so that the loop keeps serving while a long synchronous node
works (CEL holds the GIL only for one evaluation at a time, each bounded by
the cost limit)."""

from __future__ import annotations

import asyncio

from nodedrop.engine.context import NodeContext
from nodedrop.engine.model import Items, NodeOutputs
from nodedrop.engine.registry import Prepared

__all__ = ["item_count", "run_node"]


def item_count(inputs: dict[str, Items]) -> int:
    return sum(len(items) for items in inputs.values())


async def run_node(prepared: Prepared, inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
    """The node's outputs; a synchronous node with ``offload_items`` or more
    input items runs on a thread."""
    if not prepared.is_async and item_count(inputs) >= ctx.config.offload_items:
        return await asyncio.to_thread(_run_sync, prepared, inputs, ctx)
    result = prepared.run(inputs, ctx)
    if isinstance(result, dict):
        return result
    return await result


def _run_sync(prepared: Prepared, inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
    result = prepared.run(inputs, ctx)
    if not isinstance(result, dict):  # a synchronous node returns its outputs
        raise TypeError(f"node type of {ctx.node.id!r} is not synchronous")
    return result
