"""code: user JavaScript, run by the EngineConfig's CodeSandbox.

The source is parsed at validation (syntax errors with line and column); at
run time the node hands the sandbox its items, the main outputs of the
earlier nodes the code names, the trigger data and the execution, and turns
what comes back into its ``main`` output. Console lines go out beside it on
the ``$console`` key of its outputs, which no connection can take.
"""

from __future__ import annotations

from typing import Any

import orjson

from nodedrop.engine.code import RUN_ONCE_FOR_ALL_ITEMS, RUN_ONCE_FOR_EACH_ITEM, CodeRun
from nodedrop.engine.context import NodeContext
from nodedrop.engine.errors import CodeError
from nodedrop.engine.js_syntax import check_syntax
from nodedrop.engine.model import Items, Node, NodeOutputs
from nodedrop.engine.nodes.transform import main_items
from nodedrop.engine.registry import (
    CompileContext,
    NodeType,
    ParamSpec,
    Prepared,
    Reporter,
    choice,
    string,
)

__all__ = ["CODE", "CONSOLE_KEY"]

# Not a valid port name: the console lines ride with the outputs, never along a connection.
CONSOLE_KEY = "$console"

_PYTHON_REFUSED = (
    "language 'python' is not available: no Python interpreter here can be held to "
    "the sandbox's guarantees (no filesystem, network or host access, a CPU-time and "
    "a memory limit per run); use 'javascript'"
)


def _code_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared | None:
    if values["language"] == "python":
        reporter.add(f"{base}.language", "language_unavailable", _PYTHON_REFUSED)
        return None
    source: str = values["code"]
    problem = check_syntax(source)
    if problem is not None:
        reporter.add(f"{base}.code", "code_syntax_error", str(problem))
        return None
    mode: str = values["mode"]

    async def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
        sandbox = ctx.config.code
        if sandbox is None:
            raise CodeError(
                "this process runs no code sandbox (EngineConfig.code)", code="code_unavailable"
            )
        limits = ctx.config.limits
        # Only the nodes whose id the code spells out: sending every earlier
        # output to every run would cost what the code never reads.
        nodes = {nid: out for nid, out in ctx.nodes.items() if nid in source}
        data = orjson.dumps(
            {
                "items": main_items(inputs),
                "nodes": nodes,
                "trigger": ctx.trigger,
                "execution": ctx.execution,
            }
        )
        output = await sandbox.run(
            CodeRun(
                source,
                mode,
                data,
                limits.code_cpu_ms,
                limits.code_memory_bytes,
                limits.max_output_bytes,
                limits.max_code_log_lines,
                limits.max_code_log_bytes,
                ctx.info.tenant,
            )
        )
        if output.logs:
            return {"main": output.items, CONSOLE_KEY: output.logs}
        return {"main": output.items}

    return Prepared(run, is_async=True)


CODE = NodeType(
    "code",
    params=(
        ParamSpec("code", "JavaScript (a function body)", string, required=True),
        ParamSpec(
            "mode",
            f"'{RUN_ONCE_FOR_ALL_ITEMS}' | '{RUN_ONCE_FOR_EACH_ITEM}'",
            choice(RUN_ONCE_FOR_ALL_ITEMS, RUN_ONCE_FOR_EACH_ITEM),
            default=RUN_ONCE_FOR_ALL_ITEMS,
        ),
        ParamSpec(
            "language",
            "'javascript' | 'python'",
            choice("javascript", "python"),
            default="javascript",
        ),
    ),
    factory=_code_factory,
    description="Runs JavaScript over the items in a sandbox (docs/workflows.md, Code).",
)
