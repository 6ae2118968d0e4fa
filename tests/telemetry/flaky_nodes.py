"""Node types for the telemetry tests, loaded by the in-process worker and
scheduler through NODEDROP_PLUGINS: one fails its first attempt (retryable) and
succeeds after; one always fails with a message quoting secrets, as a driver's
error may quote a connection string."""

from __future__ import annotations

from typing import Any

from nodedrop.engine import NodeError, NodeRegistry, NodeType
from nodedrop.engine.context import NodeContext
from nodedrop.engine.model import Items, Node, NodeOutputs
from nodedrop.engine.registry import CompileContext, Prepared, Reporter


def _factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
        if ctx.info.attempt < 2:
            raise NodeError(f"first attempt fails ({ctx.info.attempt})", code="flaky")
        return {"main": [item for items in inputs.values() for item in items]}

    return Prepared(run, is_async=False)


LEAKED_PASSWORD = "S3cretPassw0rd99"
LEAKED_KEY = "ndk_0123456789ab_Zy9SecretPartOfTheKey"


def _leaky(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
        raise NodeError(
            f"connect to postgresql://app:{LEAKED_PASSWORD}@db:5432/x failed (key {LEAKED_KEY})",
            code="leaky",
            retryable=False,
        )

    return Prepared(run, is_async=False)


def register(registry: NodeRegistry) -> None:
    registry.register(NodeType("telemetry_flaky", params=(), factory=_factory))
    registry.register(NodeType("telemetry_leaky", params=(), factory=_leaky))
