"""The workflow behind the live view's "Run example" button.

Small but representative: a trigger, a short wait (so progress is visible),
a branch, both sides of it, and a merge; every node is a built-in from NODES.md.
"""

from __future__ import annotations

import orjson

from nodedrop.workflow.v1 import workflow_pb2

_NODES: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("start", "manual_trigger", {}),
    ("pause", "wait", {"seconds": 0.3}),
    ("big", "if", {"condition": "json.amount > 100"}),
    ("vip", "set", {"fields": {"tier": "'vip'"}}),
    ("std", "set", {"fields": {"tier": "'standard'"}}),
    ("all", "merge", {"mode": "append"}),
)
_CONNECTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("start", "main", "pause", "main"),
    ("pause", "main", "big", "main"),
    ("big", "true", "vip", "main"),
    ("big", "false", "std", "main"),
    ("vip", "main", "all", "a"),
    ("std", "main", "all", "b"),
)
TRIGGER_DATA = [{"order": 1, "amount": 250}, {"order": 2, "amount": 40}]


def example_workflow() -> workflow_pb2.Workflow:
    return workflow_pb2.Workflow(
        name="live-view example",
        nodes=[
            workflow_pb2.Node(id=node_id, type=kind, parameters_json=orjson.dumps(params).decode())
            for node_id, kind, params in _NODES
        ],
        connections=[
            workflow_pb2.Connection(source=s, source_output=so, target=t, target_input=ti)
            for s, so, t, ti in _CONNECTIONS
        ],
    )


def example_graph() -> dict[str, object]:
    """Nodes and edges for the page to draw before any event arrives."""
    return {
        "nodes": [{"id": node_id, "type": kind} for node_id, kind, _ in _NODES],
        "edges": [{"from": s, "to": t, "output": so} for s, so, t, _ in _CONNECTIONS],
    }
