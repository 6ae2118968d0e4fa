"""The built-in node types of NODES.md."""

from __future__ import annotations

import functools

from nodedrop.engine.nodes.code import CODE
from nodedrop.engine.nodes.control import LOOP_TYPE, STOP_AND_ERROR, WAIT
from nodedrop.engine.nodes.http import HTTP_REQUEST
from nodedrop.engine.nodes.routing import IF, MERGE, SWITCH
from nodedrop.engine.nodes.subworkflow import EXECUTE_WORKFLOW
from nodedrop.engine.nodes.transform import AGGREGATE, FILTER, NOOP, SET
from nodedrop.engine.nodes.triggers import MANUAL_TRIGGER, SCHEDULE_TRIGGER
from nodedrop.engine.nodes.webhook import RESPOND_TO_WEBHOOK, WEBHOOK_TRIGGER
from nodedrop.engine.registry import NodeRegistry, NodeType

BUILTIN_TYPES: tuple[NodeType, ...] = (
    MANUAL_TRIGGER,
    WEBHOOK_TRIGGER,
    SCHEDULE_TRIGGER,
    SET,
    FILTER,
    IF,
    SWITCH,
    MERGE,
    LOOP_TYPE,
    AGGREGATE,
    WAIT,
    HTTP_REQUEST,
    NOOP,
    STOP_AND_ERROR,
    EXECUTE_WORKFLOW,
    CODE,
    RESPOND_TO_WEBHOOK,
)


@functools.cache
def default_registry() -> NodeRegistry:
    """The shared registry of built-in types. Do not register into it: ``copy()`` it."""
    registry = NodeRegistry()
    for t in BUILTIN_TYPES:
        registry.register(t)
    return registry


__all__ = ["BUILTIN_TYPES", "default_registry"]
