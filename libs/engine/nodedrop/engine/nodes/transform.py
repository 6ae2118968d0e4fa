"""Item transforms: set, filter, aggregate, noop."""

from __future__ import annotations

from typing import Any

from nodedrop.engine.context import NodeContext
from nodedrop.engine.model import Item, Items, Node, NodeOutputs
from nodedrop.engine.registry import (
    CompileContext,
    NodeType,
    ParamSpec,
    Prepared,
    Reporter,
    choice,
    expression,
    expression_map,
    string,
    string_list,
)


def main_items(inputs: dict[str, Items]) -> Items:
    main = inputs.get("main")
    return main if main is not None else []


def _set_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    fields = tuple((values["fields"] or {}).items())
    replace = values["mode"] == "replace"
    remove = tuple(values["remove"] or ())

    def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
        items = main_items(inputs)
        env = ctx.env(items)
        out: list[Item] = []
        for i, item in enumerate(items):
            new: Item = {} if replace else dict(item)
            for name, expr in fields:
                new[name] = expr.evaluate(env, item, i)
            for name in remove:
                new.pop(name, None)
            out.append(new)
        return {"main": out}

    return Prepared(run, is_async=False)


def _filter_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    cond = values["condition"]

    def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
        items = main_items(inputs)
        env = ctx.env(items)
        return {"main": [it for i, it in enumerate(items) if cond.evaluate_bool(env, it, i)]}

    return Prepared(run, is_async=False)


def _aggregate_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    field_name = values["field"]

    def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
        return {"main": [{field_name: main_items(inputs)}]}

    return Prepared(run, is_async=False)


def _passthrough(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
    return {"main": main_items(inputs)}


def _noop_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    return Prepared(_passthrough, is_async=False)


SET = NodeType(
    "set",
    params=(
        ParamSpec("fields", "object of name -> expression", expression_map, default={}),
        ParamSpec("mode", "'merge' | 'replace'", choice("merge", "replace"), default="merge"),
        ParamSpec("remove", "array of field names", string_list, default=()),
    ),
    factory=_set_factory,
    description="One output item per input item, with fields set from expressions.",
)
FILTER = NodeType(
    "filter",
    params=(ParamSpec("condition", "expression (bool)", expression, required=True),),
    factory=_filter_factory,
    description="Keeps the items whose condition is true.",
)
AGGREGATE = NodeType(
    "aggregate",
    params=(ParamSpec("field", "string", string, default="items"),),
    factory=_aggregate_factory,
    description="One item {field: [all input items]}.",
)
NOOP = NodeType("noop", params=(), factory=_noop_factory, description="Passes items on.")
