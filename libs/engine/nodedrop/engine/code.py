"""The code node's port: where user code runs.

The engine never runs user code itself. A code node hands one ``CodeRun`` to
the ``CodeSandbox`` of its EngineConfig and awaits a ``CodeOutput``; the
sandbox enforces the run's CPU time and memory and raises ``CodeError`` (with
its code) when the code fails or goes past one. The real adapter
(``nodedrop.sandbox.ProcessSandbox``) runs QuickJS in runner processes, so
neither the worker nor the API can be frozen or crashed by what it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from nodedrop.engine.model import Item

__all__ = [
    "RUN_ONCE_FOR_ALL_ITEMS",
    "RUN_ONCE_FOR_EACH_ITEM",
    "CodeOutput",
    "CodeRun",
    "CodeSandbox",
]

# n8n's names for the two modes, so its users' workflows read the same.
RUN_ONCE_FOR_ALL_ITEMS = "runOnceForAllItems"
RUN_ONCE_FOR_EACH_ITEM = "runOnceForEachItem"


@dataclass(frozen=True, slots=True)
class CodeRun:
    """One run of a code node: its source, mode and what its globals see.

    ``data_json`` is the JSON text of ``{"items", "nodes", "trigger",
    "execution"}``: encoded once by the engine, parsed once inside the sandbox.
    ``tenant`` (ExecutionInfo.tenant) is whose run it is, for the sandbox's
    fair share of runners between tenants.
    """

    source: str
    mode: str
    data_json: bytes
    cpu_ms: int
    memory_bytes: int
    max_output_bytes: int
    max_log_lines: int
    max_log_bytes: int
    tenant: str = ""


@dataclass(frozen=True, slots=True)
class CodeOutput:
    """The items the code returned (each a JSON object) and its console lines."""

    items: list[Item]
    logs: list[dict[str, Any]]


@runtime_checkable
class CodeSandbox(Protocol):
    async def run(self, run: CodeRun) -> CodeOutput:
        """The run's output; raises CodeError (or LimitExceededError for an
        output over ``max_output_bytes``). Cancelling the await stops the run."""
        ...
