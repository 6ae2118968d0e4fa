"""InlineDefinitions: a definition that passed is not checked again; one with
problems always is, and the cache stays bounded."""

from __future__ import annotations

from typing import Any

import pytest

from nodedrop.api import inline_definitions, validation
from nodedrop.api.definitions import to_proto
from nodedrop.api.inline_definitions import InlineDefinitions


def _workflow(name: str, *, valid: bool = True) -> Any:
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "manual_trigger"}]
    if valid:
        nodes.append({"id": "tag", "type": "set", "parameters": {"fields": {"a": "1"}}})
    else:
        nodes.append({"id": "tag", "type": "no_such_node"})
    return to_proto({"name": name, "nodes": nodes, "connections": [{"from": "start", "to": "tag"}]})


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = validation.problems_of

    def counting(wf: Any, prefix: str, *, max_nodes: int, registry: Any = None) -> Any:
        seen.append(wf.name)
        return real(wf, prefix, max_nodes=max_nodes, registry=registry)

    monkeypatch.setattr(inline_definitions, "problems_of", counting)
    return seen


def test_a_valid_definition_is_checked_once(checks: list[str]) -> None:
    inline = InlineDefinitions(max_nodes=100)
    first, problems = inline.check(_workflow("a"), "workflow")
    assert first is not None and problems == []
    again, problems = inline.check(_workflow("a"), "workflow")
    assert again is first and problems == []
    assert checks == ["a"]


def test_a_definition_with_problems_is_checked_every_time(checks: list[str]) -> None:
    inline = InlineDefinitions(max_nodes=100)
    for _ in range(2):
        definition, problems = inline.check(_workflow("bad", valid=False), "workflow")
        assert definition is None
        assert [p.path for p in problems] == ["workflow.nodes[1].type"]
    assert checks == ["bad", "bad"]


def test_the_least_recently_used_definition_is_forgotten(checks: list[str]) -> None:
    inline = InlineDefinitions(max_nodes=100, size=2)
    for name in ("a", "b", "a", "c", "a", "b"):
        inline.check(_workflow(name), "workflow")
    # "b" was the least recently used when "c" came in.
    assert checks == ["a", "b", "c", "b"]
