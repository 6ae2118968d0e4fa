"""The workflow JSON format of NODES.md <-> domain values."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from nodedrop.engine.errors import ValidationError
from nodedrop.engine.model import (
    MAIN,
    Connection,
    Node,
    NodeRetry,
    OnError,
    Workflow,
    WorkflowSettings,
)
from nodedrop.engine.registry import Reporter

# \Z, not $: `$` also matches before a trailing newline, so "ok\n" passed.
NODE_ID = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
PORT = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")

# Ranges of the timing values (seconds): past these a value is a mistake, and
# an unbounded one (1e300) overflows the deadlines computed from it.
MAX_TIMEOUT_S = 86_400.0
MAX_WAIT_S = 3_600.0
MAX_BACKOFF_S = 3_600.0
MAX_NAME_CHARS = 200

_TOP_KEYS = {"id", "version", "name", "description", "nodes", "connections", "settings"}
_NODE_KEYS = {
    "id",
    "type",
    "parameters",
    "disabled",
    "retry",
    "timeout_s",
    "on_error",
    "name",
    "notes",
    "position",
}
_CONN_KEYS = {"from", "output", "to", "input"}
_SETTINGS_KEYS = {"timeout_s", "max_attempts", "backoff_s"}


def parse_workflow(data: Mapping[str, Any]) -> Workflow:
    """Parse the JSON format; raises ValidationError listing every format problem.

    This checks the shape only; ``validate_workflow`` checks the graph and the
    node parameters too.
    """
    reporter = Reporter()
    wf = parse_into(data, reporter)
    if reporter.problems or wf is None:
        raise ValidationError(reporter.problems)
    return wf


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _in_range(v: Any, top: float, *, positive: bool = False) -> bool:
    if not _is_number(v):
        return False
    return bool((v > 0 if positive else v >= 0) and v <= top)


def _unknown(obj: Mapping[str, Any], allowed: set[str], path: str, r: Reporter) -> None:
    for key in obj:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            r.add(where, "unknown_field", f"unknown field {key!r}")


def parse_into(
    data: Any, r: Reporter, kept: tuple[list[int], list[int]] | None = None
) -> Workflow | None:
    """Parse as much as possible, reporting problems; None when nothing usable is left.

    A node or connection with a problem is left out; ``kept`` (when given)
    receives the index in ``data`` of each node and connection kept."""
    if not isinstance(data, Mapping):
        r.add("", "invalid_type", f"a workflow must be a JSON object, not {type(data).__name__}")
        return None
    _unknown(data, _TOP_KEYS, "", r)
    name = data.get("name", "")
    if not isinstance(name, str):
        r.add("name", "invalid_type", "name must be a string")
        name = ""
    elif len(name) > MAX_NAME_CHARS:
        r.add("name", "too_long", f"a name has at most {MAX_NAME_CHARS} characters")
    raw_nodes = data.get("nodes")
    nodes: list[Node] = []
    if raw_nodes is None:
        r.add("nodes", "missing_field", "a workflow needs a 'nodes' array")
    elif not isinstance(raw_nodes, list):
        r.add("nodes", "invalid_type", "nodes must be an array")
    else:
        for i, raw in enumerate(raw_nodes):
            node = _parse_node(raw, f"nodes[{i}]", r)
            if node is not None:
                nodes.append(node)
                if kept is not None:
                    kept[0].append(i)
    raw_conns = data.get("connections", [])
    conns: list[Connection] = []
    if not isinstance(raw_conns, list):
        r.add("connections", "invalid_type", "connections must be an array")
    else:
        for i, raw in enumerate(raw_conns):
            conn = _parse_connection(raw, f"connections[{i}]", r)
            if conn is not None:
                conns.append(conn)
                if kept is not None:
                    kept[1].append(i)
    settings = _parse_settings(data.get("settings"), r)
    return Workflow(name=name, nodes=tuple(nodes), connections=tuple(conns), settings=settings)


def _parse_node(raw: Any, path: str, r: Reporter) -> Node | None:
    if not isinstance(raw, Mapping):
        r.add(path, "invalid_type", "a node must be an object")
        return None
    _unknown(raw, _NODE_KEYS, path, r)
    ok = True
    node_id = raw.get("id")
    if node_id is None:
        r.add(f"{path}.id", "missing_field", "a node needs an id")
        ok = False
    elif not isinstance(node_id, str) or not NODE_ID.match(node_id):
        r.add(f"{path}.id", "invalid_id", f"node id {node_id!r} must match [A-Za-z0-9_-]{{1,64}}")
        ok = False
    node_type = raw.get("type")
    if node_type is None:
        r.add(f"{path}.type", "missing_field", "a node needs a type")
        ok = False
    elif not isinstance(node_type, str):
        r.add(f"{path}.type", "invalid_type", "type must be a string")
        ok = False
    params = raw.get("parameters", {})
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        r.add(f"{path}.parameters", "invalid_type", "parameters must be an object")
        params, ok = {}, False
    disabled = raw.get("disabled", False)
    if not isinstance(disabled, bool):
        r.add(f"{path}.disabled", "invalid_type", "disabled must be a boolean")
        disabled = False
    retry = _parse_retry(raw.get("retry"), f"{path}.retry", r)
    timeout_s = raw.get("timeout_s")
    if timeout_s is not None and not _in_range(timeout_s, MAX_TIMEOUT_S, positive=True):
        r.add(
            f"{path}.timeout_s",
            "invalid_timeout",
            f"timeout_s must be a number > 0 and <= {MAX_TIMEOUT_S:g}",
        )
        timeout_s = None
    on_error_raw = raw.get("on_error", "fail")
    try:
        on_error = OnError(on_error_raw)
    except ValueError:
        r.add(
            f"{path}.on_error",
            "invalid_on_error",
            f"on_error must be 'fail', 'continue' or 'error_output', not {on_error_raw!r}",
        )
        on_error = OnError.FAIL
    if not ok or not isinstance(node_id, str) or not isinstance(node_type, str):
        return None
    return Node(
        id=node_id,
        type=node_type,
        parameters=dict(params),
        disabled=disabled,
        retry=retry,
        timeout_s=float(timeout_s) if timeout_s is not None else None,
        on_error=on_error,
    )


def _parse_retry(raw: Any, path: str, r: Reporter) -> NodeRetry | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        r.add(path, "invalid_retry", "retry must be an object {max_tries, wait_s}")
        return None
    _unknown(raw, {"max_tries", "wait_s"}, path, r)
    max_tries = raw.get("max_tries", 1)
    wait_s = raw.get("wait_s", 0)
    if not isinstance(max_tries, int) or isinstance(max_tries, bool) or not 1 <= max_tries <= 100:
        r.add(f"{path}.max_tries", "invalid_retry", "max_tries must be an integer from 1 to 100")
        return None
    if not _in_range(wait_s, MAX_WAIT_S):
        r.add(
            f"{path}.wait_s", "invalid_retry", f"wait_s must be a number from 0 to {MAX_WAIT_S:g}"
        )
        return None
    return NodeRetry(max_tries=max_tries, wait_s=float(wait_s))


def _parse_connection(raw: Any, path: str, r: Reporter) -> Connection | None:
    if not isinstance(raw, Mapping):
        r.add(path, "invalid_type", "a connection must be an object {from, to, output?, input?}")
        return None
    _unknown(raw, _CONN_KEYS, path, r)
    ok = True
    for key in ("from", "to"):
        v = raw.get(key)
        if v is None:
            r.add(f"{path}.{key}", "missing_field", f"a connection needs '{key}'")
            ok = False
        elif not isinstance(v, str):
            r.add(f"{path}.{key}", "invalid_type", f"'{key}' must be a node id")
            ok = False
    for key in ("output", "input"):
        v = raw.get(key, MAIN)
        if not isinstance(v, str) or not PORT.match(v):
            r.add(f"{path}.{key}", "invalid_port", f"'{key}' must be a port name")
            ok = False
    if not ok:
        return None
    return Connection(
        source=raw["from"],
        target=raw["to"],
        source_output=raw.get("output", MAIN),
        target_input=raw.get("input", MAIN),
    )


def parse_settings(raw: Any) -> WorkflowSettings:
    """The settings object of a checked definition; what it leaves out takes the defaults."""
    return _parse_settings(raw, Reporter())


def _parse_settings(raw: Any, r: Reporter) -> WorkflowSettings:
    if raw is None:
        return WorkflowSettings()
    if not isinstance(raw, Mapping):
        r.add("settings", "invalid_settings", "settings must be an object")
        return WorkflowSettings()
    _unknown(raw, _SETTINGS_KEYS, "settings", r)
    d = WorkflowSettings()
    timeout_s = raw.get("timeout_s", d.timeout_s)
    if not _in_range(timeout_s, MAX_TIMEOUT_S, positive=True):
        r.add(
            "settings.timeout_s",
            "invalid_settings",
            f"timeout_s must be a number > 0 and <= {MAX_TIMEOUT_S:g}",
        )
        timeout_s = d.timeout_s
    attempts = raw.get("max_attempts", d.max_attempts)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 100:
        r.add("settings.max_attempts", "invalid_settings", "max_attempts must be 1 to 100")
        attempts = d.max_attempts
    backoff = raw.get("backoff_s", d.backoff_s)
    if not _in_range(backoff, MAX_BACKOFF_S):
        r.add(
            "settings.backoff_s",
            "invalid_settings",
            f"backoff_s must be a number from 0 to {MAX_BACKOFF_S:g}",
        )
        backoff = d.backoff_s
    return WorkflowSettings(float(timeout_s), attempts, float(backoff))


def workflow_to_dict(wf: Workflow) -> dict[str, Any]:
    """The JSON format of ``wf``; defaults are left out so files stay short."""
    nodes: list[dict[str, Any]] = []
    for n in wf.nodes:
        d: dict[str, Any] = {"id": n.id, "type": n.type}
        if n.parameters:
            d["parameters"] = dict(n.parameters)
        if n.disabled:
            d["disabled"] = True
        if n.retry is not None:
            d["retry"] = {"max_tries": n.retry.max_tries, "wait_s": n.retry.wait_s}
        if n.timeout_s is not None:
            d["timeout_s"] = n.timeout_s
        if n.on_error is not OnError.FAIL:
            d["on_error"] = n.on_error.value
        nodes.append(d)
    conns: list[dict[str, Any]] = []
    for c in wf.connections:
        cd: dict[str, Any] = {"from": c.source, "to": c.target}
        if c.source_output != MAIN:
            cd["output"] = c.source_output
        if c.target_input != MAIN:
            cd["input"] = c.target_input
        conns.append(cd)
    s = wf.settings
    return {
        "name": wf.name,
        "nodes": nodes,
        "connections": conns,
        "settings": {
            "timeout_s": s.timeout_s,
            "max_attempts": s.max_attempts,
            "backoff_s": s.backoff_s,
        },
    }
