"""Node types for the queue tests, loaded by workers through NODEDROP_PLUGINS.

Each run appends "<execution> <node> <attempt> <unix time>" to the file named by
ND_TEST_SIDE_EFFECTS, so a test counts side effects across worker processes.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

from nodedrop.engine import NodeError, NodeRegistry, NodeType, ParamSpec
from nodedrop.engine.context import NodeContext
from nodedrop.engine.model import Items, Node, NodeOutputs
from nodedrop.engine.registry import CompileContext, Prepared, Reporter, integer


def _record(ctx: NodeContext) -> None:
    path = os.environ.get("ND_TEST_SIDE_EFFECTS")
    if path:
        with open(path, "a") as f:
            f.write(f"{ctx.info.id} {ctx.node.id} {ctx.info.attempt} {time.time():.4f}\n")


def _main(inputs: dict[str, Items]) -> Items:
    return [item for items in inputs.values() for item in items]


def _sleep_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    lo, hi = values["ms_min"], values["ms_max"]

    async def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
        await asyncio.sleep(random.uniform(lo, max(lo, hi)) / 1000)
        _record(ctx)
        return {"main": _main(inputs)}

    return Prepared(run, is_async=True)


def _flaky_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    succeed_on = values["succeed_on"]

    def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
        _record(ctx)
        if succeed_on == 0 or ctx.info.attempt < succeed_on:
            raise NodeError(f"flaky failure on attempt {ctx.info.attempt}", code="flaky")
        return {"main": _main(inputs)}

    return Prepared(run, is_async=False)


def register(registry: NodeRegistry) -> None:
    registry.register(
        NodeType(
            "test_sleep",
            params=(
                ParamSpec("ms_min", "integer", integer(0), default=0),
                ParamSpec("ms_max", "integer", integer(0), default=0),
            ),
            factory=_sleep_factory,
        )
    )
    registry.register(
        NodeType(
            "test_flaky",
            params=(ParamSpec("succeed_on", "integer", integer(0), default=0),),
            factory=_flaky_factory,
        )
    )
