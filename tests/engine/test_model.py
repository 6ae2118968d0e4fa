"""Public surface, JSON and protobuf round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodedrop import engine
from nodedrop.engine import (
    ExecutionInfo,
    MemoryCheckpointStore,
    MemoryEventSink,
    Node,
    NodeRetry,
    OnError,
    ValidationError,
    Workflow,
    parse_workflow,
    run_workflow,
    validate_workflow,
    workflow_to_dict,
)
from nodedrop.engine.protobuf import (
    node_from_proto,
    problems_to_proto,
    workflow_from_proto,
    workflow_to_proto,
)
from nodedrop.workflow.v1 import workflow_pb2 as pb

WORKFLOWS = Path(__file__).parent.parent / "workflows"


def test_exports_match_all() -> None:
    public = {name for name in dir(engine) if not name.startswith("_")}
    modules = {n for n in public if type(getattr(engine, n)).__name__ == "module"}
    assert public - modules == set(engine.__all__)


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.json"))[:12], ids=lambda p: p.stem)
def test_json_and_proto_round_trip(path: Path) -> None:
    wf = parse_workflow(json.loads(path.read_text())["workflow"])
    assert parse_workflow(workflow_to_dict(wf)) == wf
    again = workflow_from_proto(workflow_to_proto(wf))
    assert again == wf


def test_numbers_keep_their_type_through_proto() -> None:
    node = Node(
        "s",
        "set",
        {"fields": {"a": 1, "b": 1.5, "c": "json.x"}},
        retry=NodeRetry(2, 0.5),
        timeout_s=3.0,
        on_error=OnError.ERROR_OUTPUT,
    )
    wf = Workflow("w", (Node("t", "manual_trigger"), node))
    back = workflow_from_proto(workflow_to_proto(wf)).node("s")
    assert back == node
    assert type(back.parameters["fields"]["a"]) is int


def test_bad_parameters_json_in_proto() -> None:
    with pytest.raises(ValidationError) as info:
        node_from_proto(pb.Node(id="a", type="set", parameters_json="{nope"), "nodes[0]")
    assert info.value.problems[0].path == "nodes[0].parameters_json"
    with pytest.raises(ValidationError):
        node_from_proto(pb.Node(id="a", type="set", parameters_json="[1]"))


def test_proto_workflow_gets_shape_checks() -> None:
    msg = pb.Workflow(
        name="w",
        nodes=[pb.Node(id="bad id", type="manual_trigger")],
        settings=pb.WorkflowSettings(timeout_s=0),
    )
    wf = workflow_from_proto(msg)
    codes = {(p.path, p.code) for p in validate_workflow(wf)}
    assert ("nodes[0].id", "invalid_id") in codes
    assert ("settings.timeout_s", "invalid_settings") in codes


async def test_run_refuses_a_workflow_with_shape_problems() -> None:
    wf = Workflow("w", (Node("t", "manual_trigger", retry=NodeRetry(0, 0)),))
    with pytest.raises(ValidationError):
        await run_workflow(
            wf,
            execution=ExecutionInfo("e"),
            trigger_data=None,
            sink=MemoryEventSink(),
            checkpoints=MemoryCheckpointStore(),
        )


def test_problems_to_proto() -> None:
    (msg,) = problems_to_proto(validate_workflow({"nodes": []}))
    assert (msg.path, msg.code) == ("nodes", "no_trigger")
