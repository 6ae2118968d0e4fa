"""Control nodes: loop, wait, stop_and_error."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

from nodedrop.engine.context import NodeContext
from nodedrop.engine.errors import NodeError
from nodedrop.engine.expressions import Expression, Template
from nodedrop.engine.model import Items, Node, NodeOutputs
from nodedrop.engine.nodes.transform import main_items
from nodedrop.engine.registry import (
    CompileContext,
    NodeType,
    ParamSpec,
    Prepared,
    Reporter,
    integer,
    number_or_expression,
    template,
)

LOOP = "loop"
DEFAULT_BATCH_SIZE = 1
DEFAULT_MAX_ITERATIONS = 10_000


def loop_settings(parameters: Mapping[str, Any]) -> tuple[int, int]:
    """(batch_size, max_iterations) of a validated loop node."""
    batch = parameters.get("batch_size")
    limit = parameters.get("max_iterations")
    return (
        batch if isinstance(batch, int) else DEFAULT_BATCH_SIZE,
        limit if isinstance(limit, int) else DEFAULT_MAX_ITERATIONS,
    )


def _loop_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    batch, _ = loop_settings(node.parameters)

    # The executor drives loops itself (it must re-run the body per batch); this
    # runner is what a single-node test run sees: the first batch.
    def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
        items = main_items(inputs)
        return {"loop": items[:batch], "done": []}

    return Prepared(run, is_async=False)


def _wait_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    seconds = values["seconds"]

    async def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
        items = main_items(inputs)
        delay = seconds
        if isinstance(seconds, Expression):
            delay = seconds.evaluate(ctx.env(items), items[0] if items else {}, 0)
        if (
            not isinstance(delay, int | float)
            or isinstance(delay, bool)
            or not math.isfinite(delay)
            or delay < 0
        ):
            raise NodeError(
                f"wait seconds must be a non-negative number, got {delay!r}",
                code="invalid_parameter",
                retryable=False,
            )
        await asyncio.sleep(delay)
        return {"main": items}

    return Prepared(run, is_async=True)


def _stop_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    message: Template = values["message"] or Template("workflow stopped by stop_and_error")

    def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
        items = main_items(inputs)
        text = message.render(ctx.env(items), items[0] if items else {}, 0)
        raise NodeError(str(text), code="stop_and_error", retryable=False)

    return Prepared(run, is_async=False)


LOOP_TYPE = NodeType(
    LOOP,
    params=(
        ParamSpec("batch_size", "integer >= 1", integer(1), default=DEFAULT_BATCH_SIZE),
        ParamSpec("max_iterations", "integer >= 1", integer(1), default=DEFAULT_MAX_ITERATIONS),
    ),
    factory=_loop_factory,
    outputs=("loop", "done"),
    description="Emits the next batch on 'loop' each time it is entered; when none is left, "
    "all items collected from the back edge on 'done'.",
)
WAIT = NodeType(
    "wait",
    params=(ParamSpec("seconds", "number or expression", number_or_expression, required=True),),
    factory=_wait_factory,
    description="Passes items on after the delay; cancellable at once.",
)
STOP_AND_ERROR = NodeType(
    "stop_and_error",
    params=(ParamSpec("message", "template", template, default=None),),
    factory=_stop_factory,
    outputs=(),
    description="Fails the execution; not retried.",
)
