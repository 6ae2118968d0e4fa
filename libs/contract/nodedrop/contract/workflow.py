"""nodedrop.workflow.v1.Workflow <-> the workflow document of docs/workflows.md.

The document (`{"name", "nodes", "connections", "settings"}`) is the stored
form: a definition runs the same from a file, the API and a worker. Decoding a
message checks only what the message itself can get wrong (parameters_json
that is not a JSON object); every rule of a workflow is the engine's, so
``check`` hands the document to ``validate_workflow`` and reports its problems
with paths into the request: protobuf field names (`connections[0].target`,
`nodes[1].parameters_json`), then paths into the parameters' JSON
(`nodes[3].parameters.condition`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from nodedrop.engine import (
    DEFAULT_LIMITS,
    Limits,
    NodeRegistry,
    Problem,
    WorkflowSettings,
    validate_workflow,
)
from nodedrop.engine.parse import parse_settings
from nodedrop.workflow.v1 import workflow_pb2 as pb

__all__ = [
    "Definition",
    "check",
    "document_of",
    "from_json",
    "problems_to_proto",
    "settings_of",
    "to_proto",
]

_ON_ERROR = {
    pb.ON_ERROR_FAIL: "fail",
    pb.ON_ERROR_CONTINUE: "continue",
    pb.ON_ERROR_ERROR_OUTPUT: "error_output",
}
_ON_ERROR_BACK = {v: k for k, v in _ON_ERROR.items()}
# Document names of a connection's fields -> the message's.
_CONNECTION_FIELDS = {
    "from": "source",
    "to": "target",
    "output": "source_output",
    "input": "target_input",
}
_CONNECTION_PATH = re.compile(r"(connections\[\d+\])\.(from|to|output|input)\Z")
_PARAMETERS_PATH = re.compile(r"nodes\[\d+\]\.parameters\Z")


@dataclass(frozen=True, slots=True)
class Definition:
    """A definition the engine found valid (or a stored one): the document, its
    JSON text and its execution settings, defaults filled in."""

    document: Mapping[str, Any]
    json: str
    settings: WorkflowSettings

    @property
    def name(self) -> str:
        return str(self.document.get("name", ""))


def settings_of(document: Mapping[str, Any]) -> WorkflowSettings:
    """The execution settings of a document, the engine's defaults for those it leaves out."""
    return parse_settings(document.get("settings"))


def from_json(text: str) -> Definition:
    """A stored definition (the engine checked it when it was stored)."""
    document = orjson.loads(text)
    if not isinstance(document, dict):
        raise ValueError("a stored definition must be a JSON object")
    return Definition(document, text, settings_of(document))


def _parameters(text: str, path: str, problems: list[Problem]) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        problems.append(Problem(path, "invalid_json", f"not valid JSON: {exc}"))
        return {}
    if not isinstance(value, dict):
        problems.append(Problem(path, "not_an_object", "must be a JSON object"))
        return {}
    return value


def _document(wf: pb.Workflow) -> tuple[dict[str, Any], list[Problem]]:
    """The message as a document, and what could not be decoded (document paths).

    Values pass through unchecked, an unknown on_error number included: the
    engine reports them."""
    problems: list[Problem] = []
    nodes: list[dict[str, Any]] = []
    for i, node in enumerate(wf.nodes):
        doc: dict[str, Any] = {
            "id": node.id,
            "type": node.type,
            "parameters": _parameters(node.parameters_json, f"nodes[{i}].parameters", problems),
        }
        if node.disabled:
            doc["disabled"] = True
        if node.HasField("retry"):
            doc["retry"] = {"max_tries": node.retry.max_tries, "wait_s": node.retry.wait_s}
        if node.HasField("timeout_s"):
            doc["timeout_s"] = node.timeout_s
        if node.on_error != pb.ON_ERROR_UNSPECIFIED:
            doc["on_error"] = _ON_ERROR.get(node.on_error, node.on_error)
        nodes.append(doc)
    connections = [
        {
            "from": c.source,
            "output": c.source_output or "main",
            "to": c.target,
            "input": c.target_input or "main",
        }
        for c in wf.connections
    ]
    settings: dict[str, Any] = {}
    if wf.HasField("settings"):
        s = wf.settings
        if s.HasField("timeout_s"):
            settings["timeout_s"] = s.timeout_s
        if s.HasField("max_attempts"):
            settings["max_attempts"] = s.max_attempts
        if s.HasField("backoff_s"):
            settings["backoff_s"] = s.backoff_s
    document = {
        "name": wf.name.strip(),
        "nodes": nodes,
        "connections": connections,
        "settings": settings,
    }
    return document, problems


def _request_path(path: str, prefix: str) -> str:
    if (m := _CONNECTION_PATH.match(path)) is not None:
        path = f"{m.group(1)}.{_CONNECTION_FIELDS[m.group(2)]}"
    elif _PARAMETERS_PATH.match(path):
        path += "_json"
    return f"{prefix}.{path}" if path else prefix


def document_of(wf: pb.Workflow, prefix: str = "workflow") -> tuple[dict[str, Any], list[Problem]]:
    """The message as a document, unchecked, and what could not be decoded
    (paths under ``prefix``)."""
    document, undecoded = _document(wf)
    return document, [Problem(_request_path(p.path, prefix), p.code, p.message) for p in undecoded]


def _under(path: str, flagged: str) -> bool:
    return path == flagged or path.startswith((flagged + ".", flagged + "["))


def check(
    wf: pb.Workflow,
    prefix: str = "workflow",
    *,
    limits: Limits = DEFAULT_LIMITS,
    registry: NodeRegistry | None = None,
) -> tuple[Definition | None, list[Problem]]:
    """The definition of ``wf``, or None and every problem, paths under ``prefix``.

    A workflow the API stores or runs needs a name (a sub-workflow inside
    parameters or a local file need not have one, so this is no engine rule).
    What the engine says about parameters that could not be decoded is left
    out: one cause, one report.
    """
    document, undecoded = _document(wf)
    problems = list(undecoded)
    if not document["name"]:
        problems.append(Problem("name", "required", "a workflow needs a name"))
    flagged = [p.path for p in undecoded]
    problems.extend(
        p
        for p in validate_workflow(document, limits, registry)
        if not any(_under(p.path, f) for f in flagged)
    )
    if problems:
        return None, [Problem(_request_path(p.path, prefix), p.code, p.message) for p in problems]
    return Definition(document, orjson.dumps(document).decode(), settings_of(document)), []


def _items(value: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, list):
        yield from (v for v in value if isinstance(v, Mapping))


def to_proto(document: Mapping[str, Any]) -> pb.Workflow:
    """A document as the message (id, version and times are the caller's).

    Takes any document, valid or not: the receiver validates it."""
    wf = pb.Workflow(name=str(document.get("name", "")))
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


def problems_to_proto(problems: Iterable[Problem]) -> list[pb.ValidationProblem]:
    return [pb.ValidationProblem(path=p.path, code=p.code, message=p.message) for p in problems]
