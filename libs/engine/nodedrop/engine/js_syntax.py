"""Syntax checking of a code node's JavaScript, at validation.

QuickJS parses the whole script before it runs any of it, and the script
starts with ``throw 0``: whatever the user's text holds (even a ``})`` that
closes the wrapper early), nothing of it runs here; a syntax error comes back
with its line and column. The wrapper is the one the sandbox runs the code in
(``nodedrop.sandbox``), so what validates here parses there.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import quickjs

__all__ = ["WRAPPER_LINES", "JsSyntaxError", "check_syntax", "wrap"]

# Lines the wrapper puts before the user's first line.
WRAPPER_LINES = 2
# Far more than the parser needs for the largest parameters a node may have
# (Limits.max_parameter_bytes): QuickJS's parser has crashed in its
# out-of-memory paths (its issue tracker), so validation must never reach them.
_PARSE_MEMORY = 128 * 1024 * 1024
_PARSE_STACK = 512 * 1024
_POSITION = re.compile(r"<input>:(\d+)(?::(\d+))?")


# The globals of docs/workflows.md ("Code"), as the parameters of the function
# the code is the body of (the sandbox's prelude passes them in this order).
_PARAMS = "$input, $json, items, $, $node, $trigger, $execution, $itemIndex, console"


def wrap(source: str, prologue: str = "throw 0;") -> str:
    """``source`` as the body of the async function the sandbox calls."""
    return f"{prologue}\n(async function ({_PARAMS}) {{\n{source}\n}})"


@dataclass(frozen=True, slots=True)
class JsSyntaxError:
    message: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


_local = threading.local()


def _context() -> quickjs.Context:
    # A context is not thread-safe; validation runs on any thread.
    ctx: quickjs.Context | None = getattr(_local, "ctx", None)
    if ctx is None:
        ctx = quickjs.Context()
        ctx.set_memory_limit(_PARSE_MEMORY)
        ctx.set_max_stack_size(_PARSE_STACK)
        # Parsing is not interrupted by the time limit; the throw ends the rest.
        ctx.set_time_limit(1)
        _local.ctx = ctx
    return ctx


def check_syntax(source: str) -> JsSyntaxError | None:
    """The first syntax error of ``source`` as a code node's body, or None."""
    try:
        _context().eval(wrap(source))
    except quickjs.JSException as exc:
        text = str(exc)
        first = text.split("\n", 1)[0]
        if first == "0":
            return None  # parsed; the wrapper's throw ended it before anything ran
        match = _POSITION.search(text)
        line = int(match.group(1)) - WRAPPER_LINES if match else 1
        column = int(match.group(2)) if match and match.group(2) else 1
        return JsSyntaxError(first, max(line, 1), column)
    except quickjs.StackOverflow:
        return JsSyntaxError("the code nests too deeply to parse", 1, 1)
    return None
