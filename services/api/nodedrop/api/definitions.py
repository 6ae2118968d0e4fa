"""Workflow definitions at the API's edge: protobuf <-> the JSON format of
NODES.md, and the checks that need no engine.

The stored form is the NODES.md JSON text (`{"name", "nodes", "connections",
"settings"}`), so a definition runs the same from a file, the API and a
worker. Every problem is reported with its path into the request, the way
the engine reports its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from nodedrop.engine.parse import NODE_ID
from nodedrop.workflow.v1 import workflow_pb2

__all__ = ["Definition", "DefinitionProblem", "from_json", "from_proto", "to_proto"]

_ON_ERROR = {
    workflow_pb2.ON_ERROR_CONTINUE: "continue",
    workflow_pb2.ON_ERROR_ERROR_OUTPUT: "error_output",
    workflow_pb2.ON_ERROR_FAIL: "fail",
}
_ON_ERROR_BACK = {v: k for k, v in _ON_ERROR.items()}
MAX_NAME_CHARS = 200


@dataclass(frozen=True, slots=True)
class DefinitionProblem:
    path: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Definition:
    """A definition that passed the edge checks, as the NODES.md document."""

    document: Mapping[str, Any]
    json: str

    @property
    def name(self) -> str:
        return str(self.document.get("name", ""))

    @property
    def node_count(self) -> int:
        return len(self.document.get("nodes", ()))


def _parameters(text: str, path: str, problems: list[DefinitionProblem]) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        problems.append(DefinitionProblem(path, "invalid_json", f"not valid JSON: {exc}"))
        return {}
    if not isinstance(value, dict):
        problems.append(DefinitionProblem(path, "not_an_object", "must be a JSON object"))
        return {}
    return value


def _finite(value: float) -> bool:
    return math.isfinite(value)


def from_proto(
    wf: workflow_pb2.Workflow, prefix: str, *, max_nodes: int, draft: bool = False
) -> tuple[Definition | None, list[DefinitionProblem]]:
    """Convert and check; problems' paths start with `prefix` (e.g. "workflow").

    With `draft` the document is returned even when there are problems (so the
    engine can report its own as well); it must not be stored or run then.
    """
    problems: list[DefinitionProblem] = []

    def problem(path: str, code: str, message: str) -> None:
        problems.append(DefinitionProblem(f"{prefix}.{path}", code, message))

    name = wf.name.strip()
    if not name:
        problem("name", "required", "a workflow needs a name")
    elif len(name) > MAX_NAME_CHARS:
        problem("name", "too_long", f"at most {MAX_NAME_CHARS} characters")
    if not wf.nodes:
        problem("nodes", "required", "a workflow needs at least one node")
    elif len(wf.nodes) > max_nodes:
        problem("nodes", "too_many_nodes", f"at most {max_nodes} nodes")
    nodes: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, node in enumerate(wf.nodes):
        path = f"nodes[{i}]"
        if not NODE_ID.match(node.id):
            problem(f"{path}.id", "invalid_id", "must match [A-Za-z0-9_-]{1,64}")
        elif node.id in seen:
            problem(f"{path}.id", "duplicate_id", f"node id {node.id!r} is used twice")
        seen.add(node.id)
        if not node.type.strip():
            problem(f"{path}.type", "required", "a node needs a type")
        doc: dict[str, Any] = {"id": node.id, "type": node.type}
        local: list[DefinitionProblem] = []
        doc["parameters"] = _parameters(
            node.parameters_json, f"{prefix}.{path}.parameters_json", local
        )
        problems.extend(local)
        if node.disabled:
            doc["disabled"] = True
        if node.HasField("retry"):
            if node.retry.max_tries < 1 or node.retry.max_tries > 100:
                problem(f"{path}.retry.max_tries", "out_of_range", "must be 1..100")
            if not _finite(node.retry.wait_s) or node.retry.wait_s < 0:
                problem(f"{path}.retry.wait_s", "out_of_range", "must be >= 0")
            doc["retry"] = {"max_tries": node.retry.max_tries, "wait_s": node.retry.wait_s}
        if node.HasField("timeout_s"):
            if not _finite(node.timeout_s) or node.timeout_s <= 0:
                problem(f"{path}.timeout_s", "out_of_range", "must be > 0")
            doc["timeout_s"] = node.timeout_s
        if node.on_error in _ON_ERROR:
            doc["on_error"] = _ON_ERROR[node.on_error]
        elif node.on_error != workflow_pb2.ON_ERROR_UNSPECIFIED:
            problem(f"{path}.on_error", "invalid_enum", f"unknown value {node.on_error}")
        nodes.append(doc)
    connections: list[dict[str, Any]] = []
    for i, conn in enumerate(wf.connections):
        path = f"connections[{i}]"
        for field, ref in (("source", conn.source), ("target", conn.target)):
            if not ref:
                problem(f"{path}.{field}", "required", f"a connection needs a {field}")
            elif ref not in seen:
                problem(f"{path}.{field}", "unknown_node", f"no node with id {ref!r}")
        connections.append(
            {
                "from": conn.source,
                "output": conn.source_output or "main",
                "to": conn.target,
                "input": conn.target_input or "main",
            }
        )
    settings: dict[str, Any] = {}
    if wf.HasField("settings"):
        s = wf.settings
        if s.HasField("timeout_s"):
            if not _finite(s.timeout_s) or s.timeout_s <= 0:
                problem("settings.timeout_s", "out_of_range", "must be > 0")
            settings["timeout_s"] = s.timeout_s
        if s.HasField("max_attempts"):
            if not 1 <= s.max_attempts <= 100:
                problem("settings.max_attempts", "out_of_range", "must be 1..100")
            settings["max_attempts"] = s.max_attempts
        if s.HasField("backoff_s"):
            if not _finite(s.backoff_s) or s.backoff_s < 0:
                problem("settings.backoff_s", "out_of_range", "must be >= 0")
            settings["backoff_s"] = s.backoff_s
    if problems and not draft:
        return None, problems
    document = {"name": name, "nodes": nodes, "connections": connections, "settings": settings}
    return Definition(document, orjson.dumps(document).decode()), problems


def from_json(text: str) -> Definition:
    """A stored definition (already checked when it was stored)."""
    document = orjson.loads(text)
    if not isinstance(document, dict):
        raise ValueError("a stored definition must be a JSON object")
    return Definition(document, text)


def _items(value: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, list):
        yield from (v for v in value if isinstance(v, Mapping))


def to_proto(document: Mapping[str, Any]) -> workflow_pb2.Workflow:
    """The NODES.md document as a protobuf Workflow (id/version/times left to the caller)."""
    wf = workflow_pb2.Workflow(name=str(document.get("name", "")))
    for n in _items(document.get("nodes")):
        node = wf.nodes.add(
            id=str(n.get("id", "")),
            type=str(n.get("type", "")),
            parameters_json=orjson.dumps(n.get("parameters") or {}).decode(),
            disabled=bool(n.get("disabled", False)),
        )
        retry = n.get("retry")
        if isinstance(retry, Mapping):
            node.retry.max_tries = int(retry.get("max_tries", 1))
            node.retry.wait_s = float(retry.get("wait_s", 0))
        if n.get("timeout_s") is not None:
            node.timeout_s = float(n["timeout_s"])
        on_error = n.get("on_error")
        if isinstance(on_error, str) and on_error in _ON_ERROR_BACK:
            node.on_error = _ON_ERROR_BACK[on_error]
    for c in _items(document.get("connections")):
        wf.connections.add(
            source=str(c.get("from", "")),
            source_output=str(c.get("output", "main")),
            target=str(c.get("to", "")),
            target_input=str(c.get("input", "main")),
        )
    settings = document.get("settings")
    if isinstance(settings, Mapping):
        if settings.get("timeout_s") is not None:
            wf.settings.timeout_s = float(settings["timeout_s"])
        if settings.get("max_attempts") is not None:
            wf.settings.max_attempts = int(settings["max_attempts"])
        if settings.get("backoff_s") is not None:
            wf.settings.backoff_s = float(settings["backoff_s"])
    return wf
