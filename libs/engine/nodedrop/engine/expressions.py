"""CEL expressions and ``{{ expr }}`` templates, compiled once and cached.

Evaluation hands CEL only the variables an expression references: converting
a Python value into CEL costs time proportional to its size, so passing
``items`` or ``nodes`` to every expression would make a 1,000-item node
quadratic.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cel
import orjson

from nodedrop.engine.cancel import CancelToken
from nodedrop.engine.errors import (
    ExpressionCostError,
    ExpressionError,
    NodeError,
    NodeTimeoutError,
)
from nodedrop.engine.expression_cost import measure, shape_of
from nodedrop.engine.limits import DEFAULT_LIMITS, Limits
from nodedrop.engine.model import Item, Items

_POSITION = re.compile(r"<input>:(\d+):(\d+):\s*(.*?)(?:\n|$)")
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)

_INT_DOUBLE_HINT = (
    " CEL never mixes int and double: convert one side, e.g. double(json.qty) * 1.5"
    " or json.qty + int(json.extra)."
)


# Evaluations between two looks at the clock: one evaluation is bounded by
# the cost limit, so a deadline is seen well within a second.
_CLOCK_EVERY = 32


@dataclass(slots=True)
class EvalEnv:
    """What every expression of one node run can see, besides the current item,
    and what that run may still spend (expression cost, time)."""

    items: Items
    nodes: Mapping[str, Items]
    trigger: Any
    execution: Mapping[str, Any]
    # Values of expressions that do not depend on the item (no `json`, no
    # `index`), computed once per node run: `size(items)` must not convert the
    # whole list again for every item.
    cache: dict[int, Any] = field(default_factory=dict)
    limits: Limits = DEFAULT_LIMITS
    # time.monotonic() past which the node stops: its own timeout_s (given
    # here, for the message) or, when None, the execution's deadline.
    deadline: float | None = None
    node_id: str = ""
    timeout_s: float | None = None
    # measure() of the shared variables, taken once per node run.
    sizes: dict[str, tuple[int, int]] | None = None
    cancel: CancelToken | None = None
    spent: int = 0
    countdown: int = _CLOCK_EVERY

    def tick(self) -> None:
        """Called every _CLOCK_EVERY evaluations: stops a node past its deadline
        or of a cancelled execution (one running on a thread is not interrupted)."""
        self.countdown = _CLOCK_EVERY
        if self.cancel is not None and self.cancel.cancelled:
            raise NodeError(
                f"node {self.node_id!r} stopped: the execution was cancelled",
                code="cancelled",
                retryable=False,
            )
        if self.deadline is not None and time.monotonic() >= self.deadline:
            if self.timeout_s is not None:
                raise NodeTimeoutError(f"node {self.node_id!r} timed out after {self.timeout_s:g}s")
            raise NodeTimeoutError(f"node {self.node_id!r} ran past the execution's deadline")

    def size(self, name: str, value: Any) -> tuple[int, int]:
        if self.sizes is None:
            self.sizes = {}
        got = self.sizes.get(name)
        if got is None:
            got = self.sizes[name] = measure(value)
        return got


class CompileError(ValueError):
    """An expression or template did not compile; the message says where."""

    def __init__(self, message: str, path: str = "", code: str = "invalid_expression") -> None:
        super().__init__(message)
        self.path = path
        self.code = code


# The functions the CEL library in use evaluates. It compiles a call to any
# name and fails only when the call runs ("Undefined variable or function"),
# so validation checks each called name against these. Operators (`_+_`,
# `@in`, `!_`) are the parser's own and always known; macros (has, all,
# exists, exists_one, map, filter) are expanded before this check.
FUNCTIONS = frozenset(
    {
        "size",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "string",
        "bytes",
        "double",
        "int",
        "uint",
        "dyn",
        "type",
        "timestamp",
        "duration",
        "getFullYear",
        "getMonth",
        "getDayOfYear",
        "getDayOfMonth",
        "getDate",
        "getDayOfWeek",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
        # optional.of(x), optional.none(), optional.ofNonZeroValue(x) and their methods.
        "of",
        "none",
        "ofNonZeroValue",
        "hasValue",
        "value",
        "or",
        "orValue",
    }
)
# A called name that is no identifier is an operator.
_FUNCTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


@functools.lru_cache(maxsize=8192)
def _compile_program(source: str) -> Any:
    return cel.compile(source)


def _unknown_functions(program: Any) -> list[str]:
    return sorted(
        name for name in program.functions() if name not in FUNCTIONS and _FUNCTION_NAME.match(name)
    )


def _compile_error_message(source: str, path: str, exc: Exception) -> str:
    text = str(exc)
    m = _POSITION.search(text)
    if m:
        return (
            f"expression `{source}` ({path}) does not compile at line {m.group(1)}, "
            f"column {m.group(2)}: {m.group(3).strip()}"
        )
    return f"expression `{source}` ({path}) does not compile: {text}"


class Expression:
    """One compiled CEL expression, evaluated per item."""

    __slots__ = (
        "_costed",
        "_exec",
        "_execution",
        "_index",
        "_items",
        "_json",
        "_nodes",
        "_shape",
        "_trigger",
        "path",
        "source",
    )

    def __init__(self, source: str, path: str = "") -> None:
        self.source = source
        self.path = path
        try:
            program = _compile_program(source)
        except Exception as exc:  # the binding raises ValueError and, for some input, others
            raise CompileError(_compile_error_message(source, path, exc), path) from None
        unknown = _unknown_functions(program)
        if unknown:
            raise CompileError(
                f"expression `{source}` ({path}) calls "
                + ", ".join(f"{name}()" for name in unknown)
                + ", which CEL does not have; it has "
                + ", ".join(sorted(FUNCTIONS)),
                path,
                "unknown_function",
            )
        self._exec = program.execute
        names = set(program.variables())
        self._json = "json" in names
        self._index = "index" in names
        self._items = "items" in names
        self._nodes = "nodes" in names
        self._trigger = "trigger" in names
        self._execution = "execution" in names
        self._shape = shape = shape_of(source)
        # Most expressions name the item once or twice and have no comprehension:
        # their cost and result are bounded by the item's size, and they skip the
        # estimate. The shared variables can be as large as all items.
        self._costed = (
            shape.depth > 0 or shape.refs > 2 or self._items or self._nodes or self._trigger
        )

    def evaluate(self, env: EvalEnv, item: Item | None = None, index: int = 0) -> Any:
        env.countdown -= 1
        if env.countdown <= 0:
            env.tick()
        if not (self._json or self._index):
            key = id(self)
            cache = env.cache
            if key in cache:
                value, size = cache[key]
                if size:
                    # Each use puts the value into another item: its size counts again.
                    self._spend(env, size)
                return value
            value = self._evaluate(env, item, index)
            cache[key] = (value, measure(value)[0] if self._costed else 0)
            return value
        return self._evaluate(env, item, index)

    def _evaluate(self, env: EvalEnv, item: Item | None, index: int) -> Any:
        ctx: dict[str, Any] = {}
        if self._json:
            ctx["json"] = item if item is not None else {}
        if self._index:
            ctx["index"] = index
        if self._items:
            ctx["items"] = env.items
        if self._nodes:
            ctx["nodes"] = env.nodes
        if self._trigger:
            ctx["trigger"] = env.trigger
        if self._execution:
            ctx["execution"] = env.execution
        if self._costed:
            self._charge(env, ctx)
        try:
            value = self._exec(ctx)
        except Exception as exc:  # CEL reports every runtime error as some builtin exception
            raise ExpressionError(self._runtime_message(exc)) from None
        return to_json_value(value)

    def _charge(self, env: EvalEnv, ctx: dict[str, Any]) -> None:
        """Raises ExpressionCostError, before evaluating, when this evaluation's
        estimated cost (expression_cost.py) is over the limit or would take
        the node run's total over its own."""
        total = 0
        longest = 0
        for name, value in ctx.items():
            if name == "index":
                continue
            count, length = measure(value) if name == "json" else env.size(name, value)
            total += count
            longest = max(longest, length)
        shape = self._shape
        cost = total * shape.refs + shape.iterations(longest) * (total if shape.fans_out else 1)
        limits = env.limits
        if cost > limits.max_expression_cost:
            raise ExpressionCostError(
                f"expression `{self.source}` ({self.path}) would cost about {cost:,} "
                f"(comprehensions nested {shape.depth} deep over up to {longest:,} elements, "
                f"{total:,} values read); the limit (max_expression_cost) is "
                f"{limits.max_expression_cost:,}"
            )
        self._spend(env, cost)

    def _spend(self, env: EvalEnv, cost: int) -> None:
        env.spent += cost
        limit = env.limits.max_node_expression_cost
        if env.spent > limit:
            raise ExpressionCostError(
                f"expression `{self.source}` ({self.path}): the node's expressions would "
                f"cost more than {limit:,} in all (max_node_expression_cost); this one "
                f"costs about {cost:,} per item"
            )

    def evaluate_bool(self, env: EvalEnv, item: Item, index: int) -> bool:
        value = self.evaluate(env, item, index)
        if value is True or value is False:
            return value
        raise ExpressionError(
            f"expression `{self.source}` ({self.path}) must give a bool, "
            f"got {type(value).__name__} {value!r}"
        )

    def _runtime_message(self, exc: Exception) -> str:
        head = f"expression `{self.source}` ({self.path}) failed"
        if isinstance(exc, KeyError):
            key = exc.args[0] if exc.args else "?"
            return f"{head}: no such key {key!r}; test for it first with has(json.{key})"
        text = str(exc) or type(exc).__name__
        hint = ""
        if isinstance(exc, TypeError) and ("coerce" in text or "int" in text):
            hint = _INT_DOUBLE_HINT
        return f"{head}: {text}{hint}"


class Template:
    """A string that may embed ``{{ expr }}``; a lone ``{{ expr }}`` keeps the value's type."""

    __slots__ = ("_parts", "_single", "source")

    def __init__(self, source: str, path: str = "") -> None:
        self.source = source
        parts: list[str | Expression] = []
        pos = 0
        for m in _TEMPLATE.finditer(source):
            if m.start() > pos:
                parts.append(source[pos : m.start()])
            inner = m.group(1).strip()
            if not inner:
                raise CompileError(f"template {source!r} ({path}) has an empty {{{{ }}}}", path)
            parts.append(Expression(inner, path))
            pos = m.end()
        if pos < len(source):
            parts.append(source[pos:])
        if "{{" in "".join(p for p in parts if isinstance(p, str)):
            raise CompileError(f"template {source!r} ({path}) has an unclosed {{{{", path)
        self._parts = tuple(parts)
        self._single = len(parts) == 1 and isinstance(parts[0], Expression)

    @property
    def is_constant(self) -> bool:
        return all(isinstance(p, str) for p in self._parts)

    def render(self, env: EvalEnv, item: Item | None = None, index: int = 0) -> Any:
        if self._single:
            first = self._parts[0]
            assert isinstance(first, Expression)
            return first.evaluate(env, item, index)
        out: list[str] = []
        for p in self._parts:
            if isinstance(p, str):
                out.append(p)
            else:
                out.append(stringify(p.evaluate(env, item, index)))
        return "".join(out)


def stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def to_json_value(value: Any) -> Any:
    """CEL results made JSON-ready: timestamps as ISO text, durations as seconds, bytes as text."""
    t = type(value)
    if t is str or t is int or t is bool or t is float or value is None:
        return value
    if t is dict:
        return {str(k): to_json_value(v) for k, v in value.items()}
    if t is list or t is tuple:
        return [to_json_value(v) for v in value]
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return base64.b64encode(value).decode()
    if isinstance(value, cel.OptionalValue):
        return to_json_value(value.value()) if value.has_value() else None
    return str(value)


def compile_nested_templates(value: Any, path: str) -> Any:
    """Compile every string inside a JSON value as a template (http bodies, headers)."""
    if isinstance(value, str):
        t = Template(value, path)
        return value if t.is_constant else t
    if isinstance(value, dict):
        return {k: compile_nested_templates(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [compile_nested_templates(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def render_nested(value: Any, env: EvalEnv, item: Item | None, index: int) -> Any:
    if isinstance(value, Template):
        return value.render(env, item, index)
    if isinstance(value, dict):
        return {k: render_nested(v, env, item, index) for k, v in value.items()}
    if isinstance(value, list):
        return [render_nested(v, env, item, index) for v in value]
    return value
