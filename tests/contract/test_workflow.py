"""The one protobuf <-> workflow mapping: round trips, the engine's problems at
request paths, execution settings with the engine's defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodedrop.contract import check, document_of, from_json, problems_to_proto, to_proto
from nodedrop.engine import Limits, WorkflowSettings, parse_workflow, validate_workflow
from nodedrop.workflow.v1 import workflow_pb2 as pb

WORKFLOWS = Path(__file__).parent.parent / "workflows"


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.json"))[:12], ids=lambda p: p.stem)
def test_document_and_proto_round_trip(path: Path) -> None:
    document = {"name": path.stem, **json.loads(path.read_text())["workflow"]}
    definition, problems = check(to_proto(document))
    assert definition is not None, problems
    assert parse_workflow(definition.document) == parse_workflow(document)
    assert to_proto(definition.document) == to_proto(document)


def test_numbers_keep_their_type() -> None:
    document = {
        "name": "w",
        "nodes": [
            {"id": "t", "type": "manual_trigger"},
            {
                "id": "s",
                "type": "set",
                "parameters": {"fields": {"a": 1, "b": 1.5, "c": "json.x"}},
                "retry": {"max_tries": 2, "wait_s": 0.5},
                "timeout_s": 3.0,
                "on_error": "error_output",
            },
        ],
        "connections": [{"from": "t", "to": "s"}],
    }
    definition, problems = check(to_proto(document))
    assert definition is not None, problems
    back = parse_workflow(definition.document).node("s")
    assert back == parse_workflow(document).node("s")
    assert type(back.parameters["fields"]["a"]) is int


def test_undecodable_parameters_are_reported_once_at_the_message_field() -> None:
    msg = pb.Workflow(
        name="w",
        nodes=[
            pb.Node(id="t", type="manual_trigger"),
            pb.Node(id="a", type="if", parameters_json="{nope"),
            pb.Node(id="b", type="if", parameters_json="[1]"),
        ],
        connections=[pb.Connection(source="t", target="a"), pb.Connection(source="t", target="b")],
    )
    definition, problems = check(msg)
    assert definition is None
    # The `if` nodes' missing condition is the same cause: not reported again.
    assert [(p.path, p.code) for p in problems] == [
        ("workflow.nodes[1].parameters_json", "invalid_json"),
        ("workflow.nodes[2].parameters_json", "not_an_object"),
    ]


def test_engine_problems_come_back_at_message_field_names() -> None:
    msg = pb.Workflow(
        name="w",
        nodes=[
            pb.Node(id="bad id", type="manual_trigger", on_error=7),  # type: ignore[arg-type]
            pb.Node(id="t", type="manual_trigger"),
            pb.Node(id="n", type="noop", parameters_json='{"unknown": 1}'),
        ],
        connections=[
            pb.Connection(source="t", target="ghost"),
            pb.Connection(source="t", source_output="nope", target="n"),
        ],
        settings=pb.WorkflowSettings(timeout_s=0),
    )
    definition, problems = check(msg, "w")
    assert definition is None
    paths = {p.path for p in problems}
    assert {
        "w.nodes[0].id",
        "w.nodes[0].on_error",
        "w.connections[0].target",
        "w.connections[1].source_output",
        "w.settings.timeout_s",
    } <= paths, paths
    assert any(p.startswith("w.nodes[2].parameters.") for p in paths), paths


def test_a_workflow_needs_a_name_and_the_limits_apply() -> None:
    msg = to_proto({"name": " ", "nodes": [{"id": "t", "type": "manual_trigger"}] * 3})
    _, problems = check(msg, limits=Limits(max_nodes=2))
    assert {(p.path, p.code) for p in problems} == {
        ("workflow.name", "required"),
        ("workflow.nodes", "too_many_nodes"),
    }


def test_settings_take_the_engines_defaults() -> None:
    definition, _ = check(
        to_proto(
            {
                "name": "w",
                "nodes": [{"id": "t", "type": "manual_trigger"}],
                "settings": {"max_attempts": 5},
            }
        )
    )
    assert definition is not None
    assert definition.settings == WorkflowSettings(max_attempts=5)
    stored = from_json(definition.json)
    assert stored.settings == definition.settings
    assert from_json('{"name": "old"}').settings == WorkflowSettings()


def test_document_of_leaves_checks_to_the_engine() -> None:
    document, problems = document_of(pb.Workflow(nodes=[pb.Node(id="x", parameters_json="1")]))
    assert document["nodes"][0]["id"] == "x"
    assert [p.path for p in problems] == ["workflow.nodes[0].parameters_json"]


def test_problems_to_proto() -> None:
    (msg,) = problems_to_proto(validate_workflow({"nodes": []}))
    assert (msg.path, msg.code) == ("nodes", "no_trigger")
