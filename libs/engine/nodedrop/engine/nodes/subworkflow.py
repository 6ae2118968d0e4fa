"""execute_workflow: runs another workflow with the items as its trigger data.

A stored workflow is referenced by ``workflow_id`` (and optionally
``workflow_version``); the API pins it when the execution is submitted: it
writes the version it resolved to ``workflow_version`` and that version's
definition to ``workflow``, so the reference runs from the execution's own
snapshot and every retry, resume or recovery runs the same version.  The
engine never looks a workflow up: a reference that was not pinned fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nodedrop.engine.context import NodeContext
from nodedrop.engine.errors import NodeError, ValidationError
from nodedrop.engine.model import Items, Node, NodeOutputs, Workflow
from nodedrop.engine.nodes.transform import main_items
from nodedrop.engine.parse import parse_into
from nodedrop.engine.ports import MemoryCheckpointStore, NullSink
from nodedrop.engine.registry import (
    CompileContext,
    NodeType,
    ParamSpec,
    Prepared,
    Reporter,
    choice,
    integer,
    json_object,
    string,
)
from nodedrop.engine.results import ExecutionInfo


def _inline(
    raw: Mapping[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Workflow | None:
    from nodedrop.engine.validate import analyze  # noqa: PLC0415 - validate imports the nodes

    if cctx.depth + 1 > cctx.limits.max_nesting_depth:
        reporter.add(base, "nesting_too_deep", "sub-workflows nest too deeply")
        return None
    sub = Reporter()
    wf = parse_into(raw, sub)
    if wf is not None and not sub.problems:
        sub.problems.extend(analyze(wf, cctx.registry, cctx.limits, cctx.depth + 1).problems)
    for p in sub.problems:
        reporter.add(f"{base}.{p.path}" if p.path else base, p.code, p.message)
    return wf if not sub.problems else None


def _factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared | None:
    raw = values["workflow"]
    workflow_id: str | None = values["workflow_id"]
    version: int | None = values["workflow_version"]
    if version is not None and workflow_id is None:
        reporter.add(f"{base}.workflow_version", "invalid_parameter", "needs 'workflow_id'")
        return None
    # All three together are the pinned form the API writes.
    pinned = raw is not None and workflow_id is not None and version is not None
    if not pinned and (raw is None) == (workflow_id is None):
        reporter.add(
            base,
            "missing_parameter",
            "execute_workflow needs exactly one of 'workflow' and 'workflow_id'",
        )
        return None
    inline = _inline(raw, f"{base}.workflow", reporter, cctx) if raw is not None else None
    if raw is not None and inline is None:
        return None
    each = values["mode"] == "each"

    async def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
        from nodedrop.engine.executor import run_workflow  # noqa: PLC0415 - import cycle

        if ctx.depth + 1 > ctx.config.max_subworkflow_depth:
            raise NodeError(
                f"sub-workflows nest deeper than {ctx.config.max_subworkflow_depth} levels",
                code="subworkflow_depth",
                retryable=False,
            )
        wf = inline
        if wf is None:
            raise NodeError(
                f"sub-workflow {workflow_id!r} was not pinned: a workflow_id is resolved "
                "when the execution is submitted through the API (elsewhere, use an "
                "inline 'workflow')",
                code="subworkflow_unpinned",
                retryable=False,
            )
        items = main_items(inputs)
        batches: list[Any] = list(items) if each else [items]
        out: Items = []
        for n, trigger in enumerate(batches):
            sub_info = ExecutionInfo(
                f"{ctx.info.id}/{ctx.node.id}/{n}",
                ctx.info.attempt,
                workflow_id or "",
                ctx.info.tenant,
            )
            try:
                result = await run_workflow(
                    wf,
                    execution=sub_info,
                    trigger_data=trigger,
                    sink=NullSink(),
                    checkpoints=MemoryCheckpointStore(),
                    config=ctx.config,
                    depth=ctx.depth + 1,
                )
            except ValidationError as exc:
                raise NodeError(
                    f"sub-workflow is invalid: {exc}", code="invalid_subworkflow", retryable=False
                ) from None
            if not result.ok:
                err = result.error
                raise NodeError(
                    f"sub-workflow {result.status.value}: {err.message if err else ''}",
                    code=f"subworkflow_{result.status.value}",
                    retryable=err.retryable if err else True,
                )
            for node_items in result.outputs.values():
                out.extend(node_items)
        return {"main": out}

    return Prepared(run, is_async=True)


EXECUTE_WORKFLOW = NodeType(
    "execute_workflow",
    params=(
        ParamSpec("workflow", "inline workflow definition", json_object, default=None),
        ParamSpec("workflow_id", "string", string, default=None),
        ParamSpec("workflow_version", "integer >= 1", integer(1), default=None),
        ParamSpec("mode", "'once' | 'each'", choice("once", "each"), default="once"),
    ),
    factory=_factory,
    description="Runs the sub-workflow with the items as trigger data; emits its result items.",
)
