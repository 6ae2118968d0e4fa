"""Trigger nodes: they turn the execution's trigger data into the first items."""

from __future__ import annotations

import datetime as _dt
import zoneinfo
from typing import Any

from croniter import croniter

from nodedrop.engine.context import NodeContext
from nodedrop.engine.errors import NodeError
from nodedrop.engine.model import Item, Items, Node, NodeOutputs
from nodedrop.engine.registry import (
    CompileContext,
    NodeType,
    ParamSpec,
    Prepared,
    Reporter,
    string,
)


def trigger_items(data: Any) -> Items:
    """A list becomes items, an object one item, nothing ``[{}]``."""
    if data is None:
        return [{}]
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        out: Items = []
        for i, v in enumerate(data):
            if not isinstance(v, dict):
                raise NodeError(
                    f"trigger data item {i} is a {type(v).__name__}, not a JSON object",
                    code="invalid_trigger_data",
                    retryable=False,
                )
            out.append(v)
        return out
    raise NodeError(
        f"trigger data must be an object, a list of objects or null, not {type(data).__name__}",
        code="invalid_trigger_data",
        retryable=False,
    )


def _emit_trigger(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
    return {"main": trigger_items(ctx.trigger)}


def plain_trigger_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    return Prepared(_emit_trigger, is_async=False)


def _emit_scheduled(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
    now = _dt.datetime.now(_dt.UTC).isoformat()
    out: list[Item] = []
    for item in trigger_items(ctx.trigger):
        out.append(item if "scheduled_at" in item else {**item, "scheduled_at": now})
    return {"main": out}


def _cron(value: Any, path: str, reporter: Reporter) -> str | None:
    text = string(value, path, reporter)
    if text is None:
        return None
    if len(text.split()) != 5 or not croniter.is_valid(text):
        reporter.add(path, "invalid_parameter", f"{text!r} is not a 5-field cron expression")
        return None
    return text


def _timezone(value: Any, path: str, reporter: Reporter) -> str | None:
    text = string(value, path, reporter)
    if text is None:
        return None
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        reporter.add(path, "invalid_parameter", f"unknown time zone {text!r}")
        return None
    return text


def _scheduled_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    return Prepared(_emit_scheduled, is_async=False)


MANUAL_TRIGGER = NodeType(
    "manual_trigger",
    params=(),
    factory=plain_trigger_factory,
    inputs=(),
    trigger=True,
    description="Emits the trigger data: a list as items, an object as one item, nothing as [{}].",
)
SCHEDULE_TRIGGER = NodeType(
    "schedule_trigger",
    params=(
        ParamSpec("cron", "string (5-field cron)", _cron, required=True),
        ParamSpec("timezone", "string (IANA zone)", _timezone, default="UTC"),
    ),
    factory=_scheduled_factory,
    inputs=(),
    trigger=True,
    description="As manual_trigger with scheduled_at merged into each item.",
)
