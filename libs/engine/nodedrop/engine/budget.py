"""The data budgets of one execution attempt, checked as each node completes.

Every node's outputs are encoded once, here: the encoding is what the
checkpoint stores, so its length is the byte count the budgets need at no
extra cost, and the adapters reuse the text instead of encoding again.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from nodedrop.engine.errors import LimitExceededError
from nodedrop.engine.events import EngineEvent, EventType
from nodedrop.engine.limits import Limits
from nodedrop.engine.model import NodeOutputs

__all__ = ["SUMMARY_KEY", "Budget", "check_data_depth"]

# Not a valid port name, so a summary cannot be taken for a node's outputs.
SUMMARY_KEY = "$summary"


class Budget:
    __slots__ = ("largest", "limits", "spent")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.spent = 0
        # Most items any node output so far (no node can have many inputs before).
        self.largest = 0

    def completed(self, node_id: str, outputs: NodeOutputs) -> EngineEvent:
        """NODE_COMPLETED for ``outputs``, with the encoding the checkpoint stores;
        raises LimitExceededError when they are over a budget."""
        limits = self.limits
        count = 0
        for items in outputs.values():
            count += len(items)
        self.largest = max(self.largest, count)
        if count > limits.max_output_items:
            raise LimitExceededError(
                f"node {node_id!r} output {count:,} items; the limit (max_output_items) "
                f"is {limits.max_output_items:,}"
            )
        try:
            encoded = orjson.dumps(outputs)
        except orjson.JSONEncodeError as exc:
            raise LimitExceededError(
                f"node {node_id!r} output cannot be stored as JSON ({exc}); data may nest "
                f"at most {limits.max_data_depth} levels (max_data_depth)"
            ) from None
        size = len(encoded)
        if size > limits.max_output_bytes:
            raise LimitExceededError(
                f"node {node_id!r} output is {size:,} bytes of JSON; the limit "
                f"(max_output_bytes) is {limits.max_output_bytes:,}"
            )
        if self.spent + size > limits.max_execution_bytes:
            raise LimitExceededError(
                f"node {node_id!r} output ({size:,} bytes) takes the execution's outputs "
                f"to {self.spent + size:,} bytes; the limit (max_execution_bytes) is "
                f"{limits.max_execution_bytes:,}"
            )
        self.spent += size
        text = encoded.decode()
        if size <= limits.max_event_bytes:
            return EngineEvent(
                EventType.NODE_COMPLETED, node_id, time.time(), outputs, None, text, text
            )
        summary = {
            SUMMARY_KEY: {
                "bytes": size,
                "items": {port: len(items) for port, items in outputs.items()},
                "max_event_bytes": limits.max_event_bytes,
            }
        }
        return EngineEvent(
            EventType.NODE_COMPLETED,
            node_id,
            time.time(),
            summary,
            None,
            orjson.dumps(summary).decode(),
            text,
        )


def check_data_depth(value: object, limits: Limits, what: str) -> None:
    """Raises LimitExceededError when ``value`` nests deeper than max_data_depth."""
    depth = data_depth(value, limits.max_data_depth + 1)
    if depth > limits.max_data_depth:
        raise LimitExceededError(
            f"{what} nests deeper than {limits.max_data_depth} levels (max_data_depth)"
        )


def data_depth(value: object, cap: int) -> int:
    """Nesting depth of a JSON value, counted level by level (no recursion) and
    stopping at ``cap``; scalars are skipped without being stacked."""
    depth = 0
    level: list[Any] = [value] if type(value) is dict or type(value) is list else []
    while level:
        depth += 1
        if depth >= cap:
            return depth
        below: list[Any] = []
        for v in level:
            children = v.values() if type(v) is dict else v
            below += [c for c in children if type(c) is dict or type(c) is list]
        level = below
    return depth
