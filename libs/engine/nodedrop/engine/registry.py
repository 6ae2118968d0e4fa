"""Node types: each declares its parameter schema and its ports, and compiles a
node into a runner once per workflow.

A deployment adds its own types with ``registry.register(NodeType(...))``; the
built-in ones come from ``default_registry()``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from nodedrop.engine.errors import Problem, UnknownNodeTypeError
from nodedrop.engine.expressions import (
    CompileError,
    EvalEnv,
    Expression,
    Template,
    compile_nested_templates,
)
from nodedrop.engine.limits import Limits
from nodedrop.engine.model import Items, Node, NodeOutputs

if TYPE_CHECKING:
    from nodedrop.engine.context import NodeContext


class Reporter:
    """Collects validation problems so that every one is reported at once."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, code: str, message: str) -> None:
        self.problems.append(Problem(path, code, message))

    def __len__(self) -> int:
        return len(self.problems)


ParamParser = Callable[[Any, str, Reporter], Any]


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One parameter: its JSON kind (for docs and errors) and a parser that checks
    and compiles a given value (expressions become ``Expression`` objects)."""

    name: str
    kind: str
    parse: ParamParser
    required: bool = False
    default: Any = None
    description: str = ""


class SyncRunner(Protocol):
    """Runs inline on the executor's loop: no awaits, so no task per node."""

    def __call__(self, inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs: ...


class AsyncRunner(Protocol):
    def __call__(self, inputs: dict[str, Items], ctx: NodeContext) -> Awaitable[NodeOutputs]: ...


@dataclass(frozen=True, slots=True)
class Prepared:
    """A node compiled for execution."""

    run: SyncRunner | AsyncRunner
    is_async: bool


@dataclass(frozen=True, slots=True)
class CompileContext:
    registry: NodeRegistry
    limits: Limits
    # How many inline sub-workflows enclose this one.
    depth: int = 0


Factory = Callable[[Node, dict[str, Any], str, Reporter, CompileContext], Prepared | None]


@dataclass(frozen=True, slots=True)
class NodeType:
    name: str
    params: tuple[ParamSpec, ...]
    factory: Factory
    # None means "any input name" (merge); a trigger has no inputs.
    inputs: tuple[str, ...] | None = ("main",)
    outputs: tuple[str, ...] | Callable[[Mapping[str, Any]], tuple[str, ...]] = ("main",)
    trigger: bool = False
    description: str = ""

    def output_ports(self, parameters: Mapping[str, Any]) -> tuple[str, ...]:
        if callable(self.outputs):
            try:
                return self.outputs(parameters)
            except Exception:  # malformed parameters are reported by the parsers
                return ()
        return self.outputs

    def compile(
        self, node: Node, base: str, reporter: Reporter, ctx: CompileContext
    ) -> Prepared | None:
        """Check and compile ``node``'s parameters; problems go to ``reporter``."""
        before = len(reporter)
        params = node.parameters
        known = {p.name for p in self.params}
        for key in params:
            if key not in known:
                reporter.add(
                    f"{base}.{key}",
                    "unknown_parameter",
                    f"{self.name} has no parameter {key!r}"
                    + (f" (known: {', '.join(sorted(known))})" if known else ""),
                )
        values: dict[str, Any] = {}
        for spec in self.params:
            path = f"{base}.{spec.name}"
            if spec.name not in params or params[spec.name] is None:
                if spec.required:
                    reporter.add(path, "missing_parameter", f"{self.name} needs {spec.name!r}")
                values[spec.name] = spec.default
                continue
            try:
                values[spec.name] = spec.parse(params[spec.name], path, reporter)
            except CompileError as exc:
                reporter.add(exc.path or path, exc.code, str(exc))
        if len(reporter) > before:
            return None
        try:
            return self.factory(node, values, base, reporter, ctx)
        except CompileError as exc:
            reporter.add(exc.path or base, exc.code, str(exc))
            return None


@dataclass
class NodeRegistry:
    """Node types by name. ``copy()`` before registering custom types so the
    default registry stays untouched."""

    _types: dict[str, NodeType] = field(default_factory=dict)

    def register(self, node_type: NodeType, *, replace: bool = False) -> None:
        if node_type.name in self._types and not replace:
            raise ValueError(f"node type {node_type.name!r} is already registered")
        self._types[node_type.name] = node_type

    def get(self, name: str) -> NodeType:
        try:
            return self._types[name]
        except KeyError:
            raise UnknownNodeTypeError(name) from None

    def find(self, name: str) -> NodeType | None:
        return self._types.get(name)

    def names(self) -> list[str]:
        return sorted(self._types)

    def __iter__(self) -> Iterator[NodeType]:
        return iter(self._types.values())

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def copy(self) -> NodeRegistry:
        return NodeRegistry(dict(self._types))


# ---- parameter parsers ------------------------------------------------------------------


def _type_error(reporter: Reporter, path: str, want: str, value: Any) -> None:
    reporter.add(path, "invalid_parameter", f"expected {want}, got {_json_type(value)}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def expression(value: Any, path: str, reporter: Reporter) -> Expression | None:
    if not isinstance(value, str):
        _type_error(reporter, path, "an expression (string)", value)
        return None
    if not value.strip():
        reporter.add(path, "invalid_expression", "expression is empty")
        return None
    return Expression(value, path)


def template(value: Any, path: str, reporter: Reporter) -> Template | None:
    if not isinstance(value, str):
        _type_error(reporter, path, "a string", value)
        return None
    return Template(value, path)


def string(value: Any, path: str, reporter: Reporter) -> str | None:
    if not isinstance(value, str):
        _type_error(reporter, path, "a string", value)
        return None
    return value


def choice(*choices: str) -> ParamParser:
    def parse(value: Any, path: str, reporter: Reporter) -> str | None:
        if value not in choices:
            reporter.add(
                path,
                "invalid_parameter",
                f"expected one of {', '.join(repr(c) for c in choices)}, got {value!r}",
            )
            return None
        return str(value)

    return parse


def boolean(value: Any, path: str, reporter: Reporter) -> bool | None:
    if not isinstance(value, bool):
        _type_error(reporter, path, "a boolean", value)
        return None
    return value


def integer(minimum: int | None = None, maximum: int | None = None) -> ParamParser:
    def parse(value: Any, path: str, reporter: Reporter) -> int | None:
        if not isinstance(value, int) or isinstance(value, bool):
            _type_error(reporter, path, "an integer", value)
            return None
        if minimum is not None and value < minimum:
            reporter.add(path, "invalid_parameter", f"must be at least {minimum}, got {value}")
            return None
        if maximum is not None and value > maximum:
            reporter.add(path, "invalid_parameter", f"must be at most {maximum}, got {value}")
            return None
        return value

    return parse


def number(minimum: float | None = None) -> ParamParser:
    def parse(value: Any, path: str, reporter: Reporter) -> float | None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            _type_error(reporter, path, "a number", value)
            return None
        if minimum is not None and value < minimum:
            reporter.add(path, "invalid_parameter", f"must be at least {minimum}, got {value}")
            return None
        return float(value)

    return parse


def number_or_expression(value: Any, path: str, reporter: Reporter) -> float | Expression | None:
    if isinstance(value, str):
        return expression(value, path, reporter)
    parsed: float | None = number(0)(value, path, reporter)
    return parsed


def string_list(value: Any, path: str, reporter: Reporter) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        _type_error(reporter, path, "an array of strings", value)
        return None
    return tuple(value)


def expression_map(value: Any, path: str, reporter: Reporter) -> dict[str, Any] | None:
    """name -> expression; a non-string value is a literal JSON constant."""
    if not isinstance(value, dict):
        _type_error(reporter, path, "an object of name -> expression", value)
        return None
    out: dict[str, Any] = {}
    for name, src in value.items():
        sub = f"{path}.{name}"
        if isinstance(src, str):
            try:
                out[name] = Expression(src, sub)
            except CompileError as exc:
                reporter.add(exc.path, exc.code, str(exc))
        else:
            out[name] = _Constant(src)
    return out


def templated_json(value: Any, path: str, reporter: Reporter) -> Any:
    return compile_nested_templates(value, path)


def string_map_templates(value: Any, path: str, reporter: Reporter) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        _type_error(reporter, path, "an object", value)
        return None
    for k, v in value.items():
        if not isinstance(v, str | int | float | bool):
            _type_error(reporter, f"{path}.{k}", "a string", v)
            return None
    return {
        k: (compile_nested_templates(v, f"{path}.{k}") if isinstance(v, str) else str(v))
        for k, v in value.items()
    }


def json_object(value: Any, path: str, reporter: Reporter) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        _type_error(reporter, path, "an object", value)
        return None
    return value


@dataclass(frozen=True, slots=True)
class _Constant:
    value: Any

    def evaluate(self, env: EvalEnv, item: Any = None, index: int = 0) -> Any:
        return self.value
