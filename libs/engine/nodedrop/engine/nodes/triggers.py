"""Trigger nodes: they turn the execution's trigger data into the first items."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from nodedrop.engine.context import NodeContext
from nodedrop.engine.errors import NodeError
from nodedrop.engine.expressions import CompileError
from nodedrop.engine.model import Item, Items, Node, NodeOutputs
from nodedrop.engine.registry import (
    CompileContext,
    NodeType,
    ParamSpec,
    Prepared,
    Reporter,
    choice,
    string,
)
from nodedrop.engine.schedule_rules import CatchUp, Overlap, ScheduleError, check_schedule


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


def _seconds(value: Any, path: str, reporter: Reporter) -> float | None:
    # Its range is check_schedule's, so the message is CreateSchedule's.
    if not isinstance(value, int | float) or isinstance(value, bool):
        reporter.add(path, "invalid_parameter", f"expected a number of seconds, got {value!r}")
        return None
    return float(value)


def _scheduled_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    try:
        check_schedule(
            values["cron"],
            values["timezone"],
            jitter_ms=round(values["jitter"] * 1000),
            catch_up=CatchUp(values["catch_up"]),
            catch_up_window_ms=round(values["catch_up_window"] * 1000),
        )
    except ScheduleError as e:
        raise CompileError(e.reason, path=f"{base}.{e.field}", code="invalid_parameter") from None
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
        ParamSpec("cron", "string (5-field cron)", string, required=True),
        ParamSpec("timezone", "string (IANA zone)", string, default="UTC"),
        ParamSpec(
            "overlap",
            "skip | allow | buffer_one",
            choice(*(o.value for o in Overlap)),
            default="skip",
        ),
        ParamSpec(
            "catch_up", "skip | run_last", choice(*(c.value for c in CatchUp)), default="skip"
        ),
        ParamSpec("catch_up_window", "number (seconds)", _seconds, default=0.0),
        ParamSpec("jitter", "number (seconds)", _seconds, default=0.0),
    ),
    factory=_scheduled_factory,
    inputs=(),
    trigger=True,
    description="As manual_trigger with scheduled_at merged into each item.",
)
