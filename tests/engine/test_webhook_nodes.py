"""The webhook nodes: webhook_trigger's parameters and respond_to_webhook's item."""

from __future__ import annotations

from typing import Any

import pytest

from nodedrop.engine import parse_workflow, validate_workflow
from nodedrop.engine.local import run_local


def _hooked(params: dict[str, Any], *extra: dict[str, Any]) -> dict[str, Any]:
    nodes = [{"id": "hook", "type": "webhook_trigger", "parameters": params}, *extra]
    connections = [{"from": "hook", "to": n["id"]} for n in extra]
    return {"name": "w", "nodes": nodes, "connections": connections}


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"path": "/bad path/"}, "nodes[0].parameters.path"),
        ({"path": "a", "methods": ["BREW"]}, "nodes[0].parameters.methods"),
        (
            {"path": "a", "authentication": {"type": "magic"}},
            "nodes[0].parameters.authentication.type",
        ),
        (
            {"path": "a", "authentication": {"type": "header", "name": "X-T"}},
            "nodes[0].parameters.authentication.value",
        ),
        (
            {
                "path": "a",
                "authentication": {"type": "hmac", "secret": "s", "header": "H", "format": "x"},
            },
            "nodes[0].parameters.authentication.format",
        ),
        ({"path": "a", "response_mode": "later"}, "nodes[0].parameters.response_mode"),
        ({"path": "a", "wait_s": 301}, "nodes[0].parameters.wait_s"),
    ],
)
def test_webhook_trigger_parameters_are_checked(params: dict[str, Any], path: str) -> None:
    problems = validate_workflow(_hooked(params))
    assert path in [p.path for p in problems], problems


async def test_respond_to_webhook_renders_its_item_from_the_first_input() -> None:
    respond = {
        "id": "reply",
        "type": "respond_to_webhook",
        "parameters": {
            "status": "{{ json.code }}",
            "headers": {"X-Id": "{{ json.id }}"},
            "body": {"id": "{{ json.id }}", "note": "fixed"},
        },
    }
    wf = parse_workflow(_hooked({"path": "a"}, respond))
    run = await run_local(wf, [{"id": 7, "code": 201}, {"id": 8, "code": 500}])
    assert run.result.outputs["reply"] == [
        # A template that is one expression keeps its type; the API sends header values as text.
        {"status": 201, "headers": {"X-Id": 7}, "body": {"id": 7, "note": "fixed"}}
    ]
