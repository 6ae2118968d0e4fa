"""Workflow validation at the API: every problem of the decoding and the engine, once each."""

from __future__ import annotations

from nodedrop.api.validation import Rules
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb


def test_edge_and_engine_problems_come_together_once_each() -> None:
    wf = wf_pb.Workflow(
        name="mixed",
        nodes=[
            wf_pb.Node(id="start", type="manual_trigger"),
            wf_pb.Node(id="bad id!", type="noop"),
            wf_pb.Node(id="x", type="no_such_type"),
            wf_pb.Node(id="cond", type="if", parameters_json='{"condition": "json.a >"}'),
        ],
        connections=[
            wf_pb.Connection(source="start", target="ghost"),
            wf_pb.Connection(source="start", target="x"),
            wf_pb.Connection(source="start", target="cond"),
        ],
    )
    definition, problems = Rules(max_nodes=100).problems_of(wf, "workflow")
    assert definition is None
    paths = [p.path for p in problems]
    # The malformed id and the dangling connection, at the message's field names.
    assert "workflow.nodes[1].id" in paths
    assert "workflow.connections[0].target" in paths
    # The unknown type and the bad expression, at the indices of the request.
    assert any(p.startswith("workflow.nodes[2]") for p in paths), paths
    assert any(p.startswith("workflow.nodes[3].parameters") for p in paths), paths
    # Nothing about nodes[1] or connections[0] a second time.
    assert sum(p.startswith("workflow.nodes[1]") for p in paths) == 1, paths
    assert sum(p.startswith("workflow.connections[0]") for p in paths) == 1, paths


def test_a_valid_workflow_has_no_problems() -> None:
    wf = wf_pb.Workflow(
        name="ok",
        nodes=[wf_pb.Node(id="start", type="manual_trigger"), wf_pb.Node(id="n", type="noop")],
        connections=[wf_pb.Connection(source="start", target="n")],
    )
    definition, problems = Rules(max_nodes=100).problems_of(wf, "workflow")
    assert definition is not None and problems == []
