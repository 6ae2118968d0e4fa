"""Errors raised by the engine.

Hierarchy (one root, structured fields rather than parsed messages)::

    EngineError
    ├── ValidationError      a workflow definition is malformed (every problem at once)
    ├── NodeError            a node failed; carries ErrorInfo (code, retryable)
    │   ├── ExpressionError  a CEL expression did not compile or evaluate
    │   ├── NodeTimeoutError a node ran past its timeout_s (or the execution deadline)
    │   ├── LimitExceededError a node went past a budget (items, bytes, nesting)
    │   ├── ExpressionCostError an expression would cost more than the limit
    │   └── CodeError        a code node's user code failed or went past a sandbox limit
    └── UnknownNodeTypeError the registry has no such type (single-node runs)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation problem: where (a path into the definition), what (a stable code), why."""

    path: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<workflow>'}: {self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a node or an execution failed; travels in events and results."""

    message: str
    code: str
    node_id: str | None = None
    retryable: bool = True

    def to_dict(self) -> dict[str, object]:
        return {
            "message": self.message,
            "code": self.code,
            "node_id": self.node_id,
            "retryable": self.retryable,
        }


class EngineError(Exception):
    """Root of every error the engine raises on purpose."""


class ValidationError(EngineError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        summary = "; ".join(str(p) for p in self.problems[:5])
        more = f" (+{len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"invalid workflow: {summary}{more}")


class NodeError(EngineError):
    def __init__(
        self,
        message: str,
        *,
        code: str = "node_error",
        node_id: str | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.node_id = node_id
        self.retryable = retryable

    @property
    def info(self) -> ErrorInfo:
        return ErrorInfo(self.message, self.code, self.node_id, self.retryable)

    def for_node(self, node_id: str) -> NodeError:
        if self.node_id is None:
            self.node_id = node_id
        return self


class ExpressionError(NodeError):
    def __init__(self, message: str, *, node_id: str | None = None) -> None:
        # The same expression fails the same way on a retry of the same data.
        super().__init__(message, code="expression_error", node_id=node_id, retryable=False)


class NodeTimeoutError(NodeError):
    def __init__(self, message: str, *, node_id: str | None = None) -> None:
        super().__init__(message, code="node_timeout", node_id=node_id, retryable=True)


class UnknownNodeTypeError(EngineError):
    def __init__(self, node_type: str) -> None:
        super().__init__(f"unknown node type {node_type!r}")
        self.node_type = node_type


class LimitExceededError(NodeError):
    """A node went past a budget of its execution (items, bytes, nesting)."""

    def __init__(self, message: str, *, node_id: str | None = None) -> None:
        # The same data goes past the same budget again on a retry.
        super().__init__(message, code="limit_exceeded", node_id=node_id, retryable=False)


class ExpressionCostError(NodeError):
    """An expression's estimated cost is over the limit; it was not evaluated."""

    def __init__(self, message: str, *, node_id: str | None = None) -> None:
        super().__init__(message, code="expression_cost_exceeded", node_id=node_id, retryable=False)


class CodeError(NodeError):
    """A code node's run failed inside its sandbox.

    ``code`` is one of ``code_error`` (the user code threw, or returned what is
    not items), ``code_timeout`` (CPU time), ``code_memory_exceeded`` (memory or
    stack), each final; or ``code_runner_lost`` (the runner process died or
    stopped answering for a reason of its own), which a retry may get past.
    """

    def __init__(self, message: str, *, code: str, node_id: str | None = None) -> None:
        super().__init__(message, code=code, node_id=node_id, retryable=code == CODE_RUNNER_LOST)


CODE_ERROR = "code_error"
CODE_TIMEOUT = "code_timeout"
CODE_MEMORY_EXCEEDED = "code_memory_exceeded"
CODE_RUNNER_LOST = "code_runner_lost"
