"""Malformed workflows: each gives its code at its path, and nothing escapes validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodedrop.engine import Limits, ValidationError, parse_workflow, validate_workflow


def base() -> dict[str, Any]:
    return {
        "name": "ok",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "check", "type": "if", "parameters": {"condition": "json.n > 1"}},
            {"id": "done", "type": "noop"},
        ],
        "connections": [
            {"from": "start", "to": "check"},
            {"from": "check", "output": "true", "to": "done"},
        ],
    }


def with_(mutate: Any) -> dict[str, Any]:
    wf = base()
    mutate(wf)
    return wf


def node(wf: dict[str, Any], i: int) -> dict[str, Any]:
    n: dict[str, Any] = wf["nodes"][i]
    return n


def _deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"x": value}
    return value


LONG = "json.n > " + "1 + " * 2000 + "1"

MALFORMED: list[tuple[str, Any, str, str]] = [
    ("not an object", [], "", "invalid_type"),
    ("nodes missing", {"name": "x"}, "nodes", "missing_field"),
    ("nodes not an array", {"nodes": {}}, "nodes", "invalid_type"),
    ("node not an object", with_(lambda w: w["nodes"].append(3)), "nodes[3]", "invalid_type"),
    ("node without id", with_(lambda w: node(w, 2).pop("id")), "nodes[2].id", "missing_field"),
    ("bad id", with_(lambda w: node(w, 2).update(id="has space")), "nodes[2].id", "invalid_id"),
    ("duplicate id", with_(lambda w: node(w, 2).update(id="check")), "nodes[2].id", "duplicate_id"),
    (
        "node without type",
        with_(lambda w: node(w, 2).pop("type")),
        "nodes[2].type",
        "missing_field",
    ),
    (
        "unknown type",
        with_(lambda w: node(w, 2).update(type="teleport")),
        "nodes[2].type",
        "unknown_node_type",
    ),
    (
        "unknown node field",
        with_(lambda w: node(w, 2).update(paramters={})),
        "nodes[2].paramters",
        "unknown_field",
    ),
    (
        "missing parameter",
        with_(lambda w: node(w, 1).update(parameters={})),
        "nodes[1].parameters.condition",
        "missing_parameter",
    ),
    (
        "ill-typed parameter",
        with_(lambda w: node(w, 1).update(parameters={"condition": 3})),
        "nodes[1].parameters.condition",
        "invalid_parameter",
    ),
    (
        "unknown parameter",
        with_(lambda w: node(w, 2).update(parameters={"x": 1})),
        "nodes[2].parameters.x",
        "unknown_parameter",
    ),
    (
        "expression does not compile",
        with_(lambda w: node(w, 1).update(parameters={"condition": "json.n >"})),
        "nodes[1].parameters.condition",
        "invalid_expression",
    ),
    (
        "bad enum parameter",
        with_(
            lambda w: w["nodes"].append({"id": "m", "type": "merge", "parameters": {"mode": "x"}})
        ),
        "nodes[3].parameters.mode",
        "invalid_parameter",
    ),
    (
        "switch case without condition",
        with_(
            lambda w: w["nodes"].append(
                {"id": "sw", "type": "switch", "parameters": {"cases": [{"output": "a"}]}}
            )
        ),
        "nodes[3].parameters.cases[0].condition",
        "missing_parameter",
    ),
    (
        "bad cron",
        {"nodes": [{"id": "c", "type": "schedule_trigger", "parameters": {"cron": "every day"}}]},
        "nodes[0].parameters.cron",
        "invalid_parameter",
    ),
    (
        "dangling target",
        with_(lambda w: w["connections"].append({"from": "start", "to": "ghost"})),
        "connections[2].to",
        "dangling_connection",
    ),
    (
        "dangling source",
        with_(lambda w: w["connections"].append({"from": "ghost", "to": "done"})),
        "connections[2].from",
        "dangling_connection",
    ),
    (
        "unknown output port",
        with_(
            lambda w: w["connections"].append({"from": "check", "output": "maybe", "to": "done"})
        ),
        "connections[2].output",
        "unknown_port",
    ),
    (
        "unknown input port",
        with_(lambda w: w["connections"].append({"from": "start", "to": "done", "input": "side"})),
        "connections[2].input",
        "unknown_port",
    ),
    (
        "connection missing to",
        with_(lambda w: w["connections"].append({"from": "start"})),
        "connections[2].to",
        "missing_field",
    ),
    (
        "duplicate connection",
        with_(lambda w: w["connections"].append({"from": "start", "to": "check"})),
        "connections[2]",
        "duplicate_connection",
    ),
    (
        "cycle",
        with_(lambda w: w["connections"].append({"from": "done", "to": "check"})),
        "connections",
        "cycle",
    ),
    (
        "self loop",
        with_(lambda w: w["connections"].append({"from": "done", "to": "done"})),
        "connections[2]",
        "cycle",
    ),
    ("no trigger", with_(lambda w: w["nodes"].pop(0)), "nodes", "no_trigger"),
    (
        "two triggers",
        with_(lambda w: w["nodes"].append({"id": "t2", "type": "webhook_trigger"})),
        "nodes[3]",
        "multiple_triggers",
    ),
    (
        "input into trigger",
        with_(lambda w: w["connections"].append({"from": "done", "to": "start"})),
        "connections[2].to",
        "trigger_has_input",
    ),
    (
        "bad retry",
        with_(lambda w: node(w, 2).update(retry={"max_tries": 0})),
        "nodes[2].retry.max_tries",
        "invalid_retry",
    ),
    (
        "bad timeout",
        with_(lambda w: node(w, 2).update(timeout_s=-1)),
        "nodes[2].timeout_s",
        "invalid_timeout",
    ),
    (
        "bad on_error",
        with_(lambda w: node(w, 2).update(on_error="ignore")),
        "nodes[2].on_error",
        "invalid_on_error",
    ),
    (
        "bad settings",
        with_(lambda w: w.update(settings={"timeout_s": 0})),
        "settings.timeout_s",
        "invalid_settings",
    ),
    (
        "expression too long",
        with_(lambda w: node(w, 1).update(parameters={"condition": LONG})),
        "nodes[1].parameters.condition",
        "expression_too_long",
    ),
    (
        "parameters nest too deep",
        with_(
            lambda w: w["nodes"].append(
                {
                    "id": "h",
                    "type": "http_request",
                    "parameters": {"url": "http://x", "body": _deep(40)},
                }
            )
        ),
        "",
        "nesting_too_deep",
    ),
    (
        "error port without error_output",
        with_(
            lambda w: w["connections"].append({"from": "done", "output": "error", "to": "check"})
        ),
        "connections[2].output",
        "unknown_port",
    ),
    (
        "sub-workflow invalid inside",
        with_(
            lambda w: w["nodes"].append(
                {
                    "id": "sub",
                    "type": "execute_workflow",
                    "parameters": {"workflow": {"nodes": [{"id": "t", "type": "nope"}]}},
                }
            )
        ),
        "nodes[3].parameters.workflow.nodes[0].type",
        "unknown_node_type",
    ),
    (
        "execute_workflow with neither",
        with_(
            lambda w: w["nodes"].append({"id": "sub", "type": "execute_workflow", "parameters": {}})
        ),
        "nodes[3].parameters",
        "missing_parameter",
    ),
]


@pytest.mark.parametrize(
    ("wf", "path", "code"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_workflow_reports_code_at_path(wf: Any, path: str, code: str) -> None:
    problems = validate_workflow(wf)
    assert (path, code) in {(p.path, p.code) for p in problems}, problems


def test_table_is_large_enough() -> None:
    assert len(MALFORMED) >= 25


def test_valid_base_has_no_problems() -> None:
    assert validate_workflow(base()) == []


def test_every_problem_at_once() -> None:
    wf = base()
    node(wf, 1)["parameters"] = {"condition": "json.n >"}
    node(wf, 2)["type"] = "teleport"
    wf["connections"].append({"from": "start", "to": "ghost"})
    codes = {p.code for p in validate_workflow(wf)}
    assert {"invalid_expression", "unknown_node_type", "dangling_connection"} <= codes


def test_expression_problem_names_text_and_position() -> None:
    wf = base()
    node(wf, 1)["parameters"] = {"condition": "json.n >"}
    (problem,) = validate_workflow(wf)
    assert "json.n >" in problem.message
    assert "line 1, column 9" in problem.message


def test_limits_on_nodes_and_connections() -> None:
    limits = Limits(max_nodes=2, max_connections=1)
    codes = {p.code for p in validate_workflow(base(), limits)}
    assert {"too_many_nodes", "too_many_connections"} <= codes


def test_parameter_bytes_limit() -> None:
    wf = base()
    node(wf, 2).update(type="set", parameters={"fields": {"x": "'" + "a" * 500 + "'"}})
    problems = validate_workflow(wf, Limits(max_parameter_bytes=100))
    assert ("nodes[2].parameters", "parameters_too_large") in {(p.path, p.code) for p in problems}


def test_loop_back_edge_is_not_a_cycle() -> None:
    wf = {
        "nodes": [
            {"id": "t", "type": "manual_trigger"},
            {"id": "l", "type": "loop"},
            {"id": "body", "type": "noop"},
        ],
        "connections": [
            {"from": "t", "to": "l"},
            {"from": "l", "output": "loop", "to": "body"},
            {"from": "body", "to": "l"},
        ],
    }
    assert validate_workflow(wf) == []


def test_parse_raises_validation_error_with_problems() -> None:
    with pytest.raises(ValidationError) as info:
        parse_workflow({"nodes": [{"id": 1}]})
    assert {p.code for p in info.value.problems} >= {"invalid_id", "missing_field"}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "type",
                    "nodes",
                    "connections",
                    "parameters",
                    "from",
                    "to",
                    "output",
                    "input",
                    "condition",
                    "cases",
                    "settings",
                    "retry",
                    "on_error",
                    "workflow",
                    "mode",
                    "fields",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_fuzz_never_raises(data: Any) -> None:
    problems = validate_workflow(data)
    assert isinstance(problems, list)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_fuzz_mutated_valid_workflow_never_raises(data: st.DataObject) -> None:
    wf = copy.deepcopy(base())
    target = data.draw(st.sampled_from(["node", "conn", "top"]))
    value = data.draw(JSON)
    if target == "node":
        i = data.draw(st.integers(0, 2))
        key = data.draw(
            st.sampled_from(
                ["id", "type", "parameters", "retry", "on_error", "timeout_s", "disabled"]
            )
        )
        wf["nodes"][i][key] = value
    elif target == "conn":
        key = data.draw(st.sampled_from(["from", "to", "output", "input"]))
        wf["connections"][0][key] = value
    else:
        key = data.draw(st.sampled_from(["nodes", "connections", "settings", "name"]))
        wf[key] = value
    assert isinstance(validate_workflow(wf), list)


def test_paths_after_a_node_left_out_keep_their_index() -> None:
    problems = validate_workflow(
        {
            "nodes": [
                {"id": "bad id", "type": "noop"},
                {"id": "t", "type": "manual_trigger"},
                {"id": "n", "type": "noop", "parameters": {"unknown": 1}},
            ],
            "connections": [
                {"from": "t", "to": "bad id"},
                {"from": "t", "to": "ghost"},
                {"from": "t", "to": "n"},
            ],
        }
    )
    paths = sorted(p.path for p in problems)
    # The node with the bad id is reported once: the connection to it is not dangling.
    assert paths == ["connections[1].to", "nodes[0].id", "nodes[2].parameters.unknown"], paths
