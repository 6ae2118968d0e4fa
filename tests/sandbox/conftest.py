"""Every sandbox adapter, started once per module, and a helper to run code on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest_asyncio

from nodedrop.engine.code import RUN_ONCE_FOR_ALL_ITEMS, CodeOutput, CodeRun, CodeSandbox
from nodedrop.engine.limits import DEFAULT_LIMITS
from nodedrop.sandbox import ProcessSandbox

# The conformance and escape suites run against each of these.
ADAPTERS: dict[str, Callable[[], ProcessSandbox]] = {
    "process": lambda: ProcessSandbox(2, DEFAULT_LIMITS.code_memory_bytes),
}


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=sorted(ADAPTERS))
async def sandbox(request: Any) -> AsyncIterator[CodeSandbox]:
    adapter = ADAPTERS[request.param]()
    await adapter.start()
    yield adapter
    await adapter.close()


def code_run(
    source: str,
    items: list[dict[str, Any]] | None = None,
    *,
    mode: str = RUN_ONCE_FOR_ALL_ITEMS,
    nodes: dict[str, list[dict[str, Any]]] | None = None,
    trigger: Any = None,
    execution: dict[str, Any] | None = None,
    cpu_ms: int = 500,
    memory_bytes: int = 32 * 1024 * 1024,
    max_output_bytes: int = DEFAULT_LIMITS.max_output_bytes,
    max_log_lines: int = 10,
    max_log_bytes: int = 1000,
    tenant: str = "",
) -> CodeRun:
    data = {
        "items": [{"a": 1}] if items is None else items,
        "nodes": nodes or {},
        "trigger": trigger,
        "execution": execution or {"id": "e-1", "attempt": 1, "workflow": "w"},
    }
    return CodeRun(
        source,
        mode,
        orjson.dumps(data),
        cpu_ms,
        memory_bytes,
        max_output_bytes,
        max_log_lines,
        max_log_bytes,
        tenant,
    )


async def run_code(sandbox: CodeSandbox, source: str, **kwargs: Any) -> CodeOutput:
    return await sandbox.run(code_run(source, **kwargs))
