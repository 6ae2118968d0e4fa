"""Single-node runs: the API's "test this node" call."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from nodedrop.engine.budget import Budget, check_data_depth
from nodedrop.engine.config import EngineConfig
from nodedrop.engine.context import NodeContext
from nodedrop.engine.errors import ErrorInfo, NodeError, NodeTimeoutError, ValidationError
from nodedrop.engine.model import Items, Node, NodeOutputs
from nodedrop.engine.offload import item_count, run_node
from nodedrop.engine.registry import CompileContext, Reporter
from nodedrop.engine.results import ExecutionInfo


async def execute_node(
    node: Node,
    inputs: dict[str, Items],
    *,
    trigger_data: Any = None,
    config: EngineConfig | None = None,
    execution: ExecutionInfo | None = None,
    nodes: dict[str, Items] | None = None,
    timeout_s: float | None = None,
) -> NodeOutputs:
    """Run one node on the given input items and return its outputs per port.

    Raises ValidationError for bad parameters (or an unknown type) and NodeError
    (with ``.info``) when the node fails, LimitExceededError included when the
    inputs or outputs are over the budgets. Retry and on_error do not apply: a
    test run shows the node's own behaviour. ``timeout_s`` bounds the whole
    run, CPU-bound nodes included (TimeoutError), as the node's own timeout_s
    does (NodeTimeoutError).
    """
    cfg = config if config is not None else EngineConfig()
    ntype = cfg.registry.find(node.type)
    reporter = Reporter()
    if ntype is None:
        reporter.add("type", "unknown_node_type", f"unknown node type {node.type!r}")
        raise ValidationError(reporter.problems)
    prepared = ntype.compile(node, "parameters", reporter, CompileContext(cfg.registry, cfg.limits))
    if prepared is None:
        raise ValidationError(reporter.problems)
    info = execution or ExecutionInfo("test")
    started = time.monotonic()
    outer = started + timeout_s if timeout_s is not None else float("inf")
    deadline, own_timeout = outer, None
    if node.timeout_s is not None and started + node.timeout_s < outer:
        deadline, own_timeout = started + node.timeout_s, node.timeout_s
    ctx = NodeContext(
        node,
        trigger_data,
        info.as_variable(""),
        info,
        dict(nodes or {}),
        cfg,
        deadline=deadline,
        timeout_s=own_timeout,
    )
    try:
        check_data_depth(trigger_data, cfg.limits, "the trigger data")
        if item_count(inputs) >= cfg.offload_items:
            await asyncio.to_thread(check_data_depth, inputs, cfg.limits, "the input items")
        else:
            check_data_depth(inputs, cfg.limits, "the input items")
        if node.timeout_s is not None:
            try:
                async with asyncio.timeout(node.timeout_s):
                    result = await run_node(prepared, inputs, ctx)
            except TimeoutError:
                raise NodeTimeoutError(
                    f"node {node.id!r} timed out after {node.timeout_s:g}s"
                ) from None
        else:
            result = await run_node(prepared, inputs, ctx)
        Budget(cfg.limits).completed(node.id, result)
    except NodeTimeoutError as exc:
        if time.monotonic() >= outer:
            raise TimeoutError(f"the test run was stopped after {timeout_s}s") from None
        raise exc.for_node(node.id) from None
    except NodeError as exc:
        raise exc.for_node(node.id) from None
    except Exception as exc:  # a node's bug is reported as that node's failure
        raise NodeError(
            f"internal error: {type(exc).__name__}: {exc}", code="internal_error", node_id=node.id
        ) from exc
    return result


__all__ = ["ErrorInfo", "execute_node"]
