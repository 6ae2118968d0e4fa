"""Routing nodes: if, switch, merge."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from nodedrop.engine.context import NodeContext
from nodedrop.engine.expressions import CompileError, Expression
from nodedrop.engine.model import Item, Items, Node, NodeOutputs
from nodedrop.engine.nodes.transform import main_items
from nodedrop.engine.registry import (
    CompileContext,
    NodeType,
    ParamSpec,
    Prepared,
    Reporter,
    boolean,
    choice,
    expression,
    string,
)

PORT_NAME = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")


def _if_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    cond = values["condition"]

    def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
        items = main_items(inputs)
        env = ctx.env(items)
        yes: Items = []
        no: Items = []
        for i, item in enumerate(items):
            (yes if cond.evaluate_bool(env, item, i) else no).append(item)
        return {"true": yes, "false": no}

    return Prepared(run, is_async=False)


def _cases(value: Any, path: str, reporter: Reporter) -> tuple[tuple[str, Expression], ...] | None:
    if not isinstance(value, list):
        reporter.add(path, "invalid_parameter", "expected an array of {output, condition}")
        return None
    out: list[tuple[str, Expression]] = []
    ok = True
    for i, case in enumerate(value):
        p = f"{path}[{i}]"
        if not isinstance(case, dict):
            reporter.add(p, "invalid_parameter", "expected an object {output, condition}")
            ok = False
            continue
        extra = set(case) - {"output", "condition"}
        if extra:
            reporter.add(p, "unknown_parameter", f"unknown keys {sorted(extra)}")
            ok = False
        name = case.get("output")
        if not isinstance(name, str) or not PORT_NAME.match(name):
            reporter.add(
                f"{p}.output", "invalid_parameter", "output must match [A-Za-z0-9_-]{1,64}"
            )
            ok = False
        cond = case.get("condition")
        if cond is None:
            reporter.add(f"{p}.condition", "missing_parameter", "each case needs a condition")
            ok = False
            continue
        try:
            expr = expression(cond, f"{p}.condition", reporter)
        except CompileError as exc:
            reporter.add(exc.path, exc.code, str(exc))
            ok = False
            continue
        if expr is None:
            ok = False
        elif isinstance(name, str):
            out.append((name, expr))
    return tuple(out) if ok else None


def _port_name(value: Any, path: str, reporter: Reporter) -> str | None:
    text = string(value, path, reporter)
    if text is not None and not PORT_NAME.match(text):
        reporter.add(path, "invalid_parameter", "output name must match [A-Za-z0-9_-]{1,64}")
        return None
    return text


def switch_outputs(params: Mapping[str, Any]) -> tuple[str, ...]:
    names: list[str] = []
    for case in params.get("cases") or ():
        if isinstance(case, dict) and isinstance(case.get("output"), str):
            names.append(case["output"])
    default = params.get("default")
    if isinstance(default, str):
        names.append(default)
    return tuple(dict.fromkeys(names))


def _switch_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    cases: tuple[tuple[str, Expression], ...] = values["cases"]
    default: str | None = values["default"]
    all_matches: bool = values["all_matches"]
    ports = switch_outputs(node.parameters)

    def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
        items = main_items(inputs)
        env = ctx.env(items)
        out: dict[str, Items] = {p: [] for p in ports}
        for i, item in enumerate(items):
            matched = False
            for name, cond in cases:
                if cond.evaluate_bool(env, item, i):
                    matched = True
                    out[name].append(item)
                    if not all_matches:
                        break
            if not matched and default is not None:
                out[default].append(item)
        return out

    return Prepared(run, is_async=False)


def _merge_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared | None:
    mode = values["mode"]
    if mode == "join" and not values["key"]:
        reporter.add(f"{base}.key", "missing_parameter", "merge in join mode needs 'key'")
        return None
    key: str = values["key"] or ""
    left = values["join"] == "left"

    def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
        if mode == "append":
            if len(inputs) == 1:
                return {"main": next(iter(inputs.values()))}
            out: Items = []
            for name in sorted(inputs):
                out.extend(inputs[name])
            return {"main": out}
        if mode == "zip":
            lists = [inputs[name] for name in sorted(inputs)]
            length = max((len(x) for x in lists), default=0)
            zipped: Items = []
            for i in range(length):
                merged: Item = {}
                for lst in lists:
                    if i < len(lst):
                        merged.update(lst[i])
                zipped.append(merged)
            return {"main": zipped}
        return {"main": _join(inputs.get("a", []), inputs.get("b", []), key, left)}

    return Prepared(run, is_async=False)


def _join(a: Items, b: Items, key: str, left: bool) -> Items:
    index: dict[Any, list[Item]] = {}
    for item in b:
        if key in item:
            index.setdefault(_hashable(item[key]), []).append(item)
    out: Items = []
    for item in a:
        matches = index.get(_hashable(item[key])) if key in item else None
        if matches:
            out.extend({**item, **m} for m in matches)
        elif left:
            out.append(item)
    return out


def _hashable(value: Any) -> Any:
    # Join keys compare as JSON values; 1 and 1.0 are the same number in JSON,
    # but True is not 1, so booleans get their own tag.
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, dict | list):
        return ("json", orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    return value


IF = NodeType(
    "if",
    params=(ParamSpec("condition", "expression (bool)", expression, required=True),),
    factory=_if_factory,
    outputs=("true", "false"),
    description="Routes each item to 'true' or 'false'.",
)
SWITCH = NodeType(
    "switch",
    params=(
        ParamSpec("cases", "array of {output, condition}", _cases, required=True),
        ParamSpec("default", "output name", _port_name, default=None),
        ParamSpec("all_matches", "boolean", boolean, default=False),
    ),
    factory=_switch_factory,
    outputs=switch_outputs,
    description="Each item to its first matching case (every match with all_matches), "
    "else to default, else dropped.",
)
MERGE = NodeType(
    "merge",
    params=(
        ParamSpec(
            "mode", "'append' | 'zip' | 'join'", choice("append", "zip", "join"), default="append"
        ),
        ParamSpec("key", "field name (join)", string, default=None),
        ParamSpec("join", "'inner' | 'left'", choice("inner", "left"), default="inner"),
    ),
    factory=_merge_factory,
    inputs=None,
    description="Combines its inputs once every connected input is resolved.",
)
