"""Validation: every problem of a definition at once, each with a path and a code.

``analyze`` is shared with the executor's plan: it compiles each node once, so
a workflow that validated never compiles its expressions a second time.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from nodedrop.engine.errors import Problem
from nodedrop.engine.limits import DEFAULT_LIMITS, Limits
from nodedrop.engine.model import MAIN, OnError, Workflow
from nodedrop.engine.nodes.control import LOOP
from nodedrop.engine.parse import parse_into, workflow_to_dict
from nodedrop.engine.registry import CompileContext, NodeRegistry, Prepared, Reporter

_INDEXED = re.compile(r"(nodes|connections)\[(\d+)\]")


@dataclass
class Analysis:
    problems: list[Problem]
    prepared: dict[str, Prepared] = field(default_factory=dict)
    # loop node id -> ids of the nodes its `loop` output reaches before coming back.
    bodies: dict[str, frozenset[str]] = field(default_factory=dict)
    # Indexes into workflow.connections of the edges back into a loop node.
    back_edges: frozenset[int] = frozenset()


def validate_workflow(
    data: Mapping[str, Any] | Workflow | Any,
    limits: Limits = DEFAULT_LIMITS,
    registry: NodeRegistry | None = None,
) -> list[Problem]:
    """Every problem of ``data`` (the JSON format or a parsed Workflow); [] when valid.

    Never raises on bad input: whatever the input, the answer is a list of problems.
    """
    if registry is None:
        from nodedrop.engine.nodes import default_registry  # noqa: PLC0415 - import cycle

        registry = default_registry()
    try:
        if isinstance(data, Workflow):
            # Built in code: check it as if it came from JSON,
            # so ids, retry, timeouts and settings get the same checks.
            reporter = Reporter()
            parse_into(workflow_to_dict(data), reporter)
            wf: Workflow | None = data
        else:
            reporter = Reporter()
            depth = _depth(data, limits.max_nesting_depth + 1)
            if depth > limits.max_nesting_depth:
                return [
                    Problem(
                        "",
                        "nesting_too_deep",
                        f"the definition nests deeper than {limits.max_nesting_depth} levels",
                    )
                ]
            kept: tuple[list[int], list[int]] = ([], [])
            wf = parse_into(data, reporter, kept)
            if wf is None:
                return reporter.problems
            # Nodes left out for a problem of their own still exist: a connection
            # to one is not dangling (one cause, one report).
            absent = frozenset(_ids(data)) - {n.id for n in wf.nodes}
            analysis = analyze(wf, registry, limits, absent=absent)
            return reporter.problems + _renumber(analysis.problems, kept)
        if wf is None:
            return reporter.problems
        return reporter.problems + analyze(wf, registry, limits).problems
    except RecursionError:
        return [Problem("", "nesting_too_deep", "the definition nests too deeply")]


def _ids(data: Mapping[str, Any]) -> list[str]:
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        return []
    return [n["id"] for n in nodes if isinstance(n, Mapping) and isinstance(n.get("id"), str)]


def _renumber(problems: list[Problem], kept: tuple[list[int], list[int]]) -> list[Problem]:
    """Paths of the analysis (indices into the parsed workflow, which left out
    what had a problem) as indices into the definition."""
    out = []
    for p in problems:
        m = _INDEXED.match(p.path)
        if m is None:
            out.append(p)
            continue
        table = kept[0] if m.group(1) == "nodes" else kept[1]
        i = int(m.group(2))
        at = table[i] if i < len(table) else i
        out.append(Problem(f"{m.group(1)}[{at}]{p.path[m.end() :]}", p.code, p.message))
    return out


def _depth(value: Any, cap: int) -> int:
    """Nesting depth of a JSON value, counted without recursion and stopping at ``cap``."""
    best = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, Mapping):
            children: Any = v.values()
        elif isinstance(v, list | tuple):
            children = v
        else:
            continue
        d += 1
        if d > best:
            best = d
            if best >= cap:
                return best
        stack.extend((c, d) for c in children)
    return best


def _long_strings(value: Any, path: str, limit: int, out: list[str]) -> None:
    if isinstance(value, str):
        if len(value) > limit:
            out.append(path)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _long_strings(v, f"{path}.{k}", limit, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _long_strings(v, f"{path}[{i}]", limit, out)


def analyze(
    wf: Workflow,
    registry: NodeRegistry,
    limits: Limits,
    depth: int = 0,
    absent: frozenset[str] = frozenset(),
) -> Analysis:
    r = Reporter()
    cctx = CompileContext(registry, limits, depth)
    if len(wf.nodes) > limits.max_nodes:
        r.add("nodes", "too_many_nodes", f"{len(wf.nodes)} nodes, the limit is {limits.max_nodes}")
    if len(wf.connections) > limits.max_connections:
        r.add(
            "connections",
            "too_many_connections",
            f"{len(wf.connections)} connections, the limit is {limits.max_connections}",
        )
    if r.problems:
        # Refused whatever else is wrong with it; analysing it would cost in
        # proportion to a size the limits exist to refuse.
        return Analysis(r.problems)

    index: dict[str, int] = {}
    outputs: dict[str, tuple[str, ...]] = {}
    inputs: dict[str, tuple[str, ...] | None] = {}
    triggers: list[int] = []
    prepared: dict[str, Prepared] = {}
    for i, node in enumerate(wf.nodes):
        path = f"nodes[{i}]"
        if node.id in index:
            r.add(
                f"{path}.id",
                "duplicate_id",
                f"node id {node.id!r} is already used by nodes[{index[node.id]}]",
            )
            continue
        index[node.id] = i
        ntype = registry.find(node.type)
        if ntype is None:
            r.add(
                f"{path}.type",
                "unknown_node_type",
                f"unknown node type {node.type!r} (known: {', '.join(registry.names())})",
            )
            continue
        if ntype.trigger:
            triggers.append(i)
        ports = ntype.output_ports(node.parameters)
        if node.on_error is OnError.CONTINUE and MAIN not in ports:
            ports = (*ports, MAIN)
        if node.on_error is OnError.ERROR_OUTPUT:
            ports = (*ports, "error")
        outputs[node.id] = ports
        inputs[node.id] = ntype.inputs
        ppath = f"{path}.parameters"
        if node.parameters:
            if _depth(node.parameters, limits.max_nesting_depth + 1) > limits.max_nesting_depth:
                r.add(
                    ppath,
                    "nesting_too_deep",
                    f"parameters nest deeper than {limits.max_nesting_depth} levels",
                )
                continue
            try:
                size = len(orjson.dumps(node.parameters))
            except (TypeError, orjson.JSONEncodeError):
                r.add(ppath, "invalid_parameter", "parameters are not JSON")
                continue
            if size > limits.max_parameter_bytes:
                r.add(
                    ppath,
                    "parameters_too_large",
                    f"parameters take {size} bytes, the limit is {limits.max_parameter_bytes}",
                )
                continue
            long: list[str] = []
            _long_strings(node.parameters, ppath, limits.max_expression_length, long)
            if long:
                for p in long:
                    r.add(
                        p,
                        "expression_too_long",
                        f"longer than {limits.max_expression_length} characters",
                    )
                continue
        compiled = ntype.compile(node, ppath, r, cctx)
        if compiled is not None:
            prepared[node.id] = compiled

    if not triggers and wf.nodes:
        r.add("nodes", "no_trigger", "a workflow needs exactly one trigger node")
    elif not wf.nodes:
        r.add("nodes", "no_trigger", "a workflow needs nodes, starting with one trigger")
    for extra in triggers[1:]:
        r.add(
            f"nodes[{extra}]",
            "multiple_triggers",
            f"{wf.nodes[extra].id!r} is a second trigger; a workflow has exactly one",
        )

    seen: set[tuple[str, str, str, str]] = set()
    good: list[int] = []
    for ci, c in enumerate(wf.connections):
        path = f"connections[{ci}]"
        ok = True
        for end, key in ((c.source, "from"), (c.target, "to")):
            if end not in index:
                if end not in absent:
                    r.add(f"{path}.{key}", "dangling_connection", f"no node with id {end!r}")
                ok = False
        if not ok:
            continue
        if c.source in outputs and c.source_output not in outputs[c.source]:
            shown = ", ".join(outputs[c.source]) or "none"
            r.add(
                f"{path}.output",
                "unknown_port",
                f"{c.source!r} has no output {c.source_output!r} (outputs: {shown})",
            )
            ok = False
        if c.target in inputs:
            accepted = inputs[c.target]
            if accepted is not None and not accepted:
                r.add(
                    f"{path}.to",
                    "trigger_has_input",
                    f"{c.target!r} is a trigger and takes no input",
                )
                ok = False
            elif accepted is not None and c.target_input not in accepted:
                r.add(
                    f"{path}.input",
                    "unknown_port",
                    f"{c.target!r} has no input {c.target_input!r} (inputs: {', '.join(accepted)})",
                )
                ok = False
        key4 = (c.source, c.source_output, c.target, c.target_input)
        if key4 in seen:
            r.add(path, "duplicate_connection", "the same connection appears twice")
            ok = False
        seen.add(key4)
        if c.source == c.target and wf.nodes[index[c.source]].type != LOOP:
            r.add(path, "cycle", f"{c.source!r} is connected to itself")
            ok = False
        if ok:
            good.append(ci)

    bodies, back = _loops(wf, good, r)
    _check_acyclic(wf, good, back, r)
    return Analysis(r.problems, prepared, bodies, frozenset(back))


def _loops(
    wf: Workflow, good: list[int], r: Reporter
) -> tuple[dict[str, frozenset[str]], set[int]]:
    succ: dict[str, list[tuple[str, str]]] = {}
    for ci in good:
        c = wf.connections[ci]
        succ.setdefault(c.source, []).append((c.source_output, c.target))
    bodies: dict[str, frozenset[str]] = {}
    for node in wf.nodes:
        if node.type != LOOP or node.id in bodies:
            continue
        body: set[str] = set()
        queue = deque(t for port, t in succ.get(node.id, ()) if port == "loop")
        while queue:
            n = queue.popleft()
            if n == node.id or n in body:
                continue
            body.add(n)
            queue.extend(t for _, t in succ.get(n, ()))
        bodies[node.id] = frozenset(body)
    back: set[int] = set()
    for ci in good:
        c = wf.connections[ci]
        if c.target in bodies and (c.source in bodies[c.target] or c.source == c.target):
            back.add(ci)
    for a, body_a in bodies.items():
        for b in body_a:
            if b in bodies and a in bodies[b]:
                r.add(
                    f"nodes[{_pos(wf, a)}]",
                    "invalid_loop",
                    f"loops {a!r} and {b!r} are each inside the other's body",
                )
    return bodies, back


def _pos(wf: Workflow, node_id: str) -> int:
    return next(i for i, n in enumerate(wf.nodes) if n.id == node_id)


def _check_acyclic(wf: Workflow, good: list[int], back: set[int], r: Reporter) -> None:
    ids = {n.id for n in wf.nodes}
    indeg = dict.fromkeys(ids, 0)
    succ: dict[str, list[str]] = {}
    for ci in good:
        if ci in back:
            continue
        c = wf.connections[ci]
        succ.setdefault(c.source, []).append(c.target)
        indeg[c.target] += 1
    queue = deque(n for n, d in indeg.items() if d == 0)
    done = 0
    while queue:
        n = queue.popleft()
        done += 1
        for t in succ.get(n, ()):
            indeg[t] -= 1
            if indeg[t] == 0:
                queue.append(t)
    if done < len(ids):
        stuck = [n.id for n in wf.nodes if indeg.get(n.id, 0) > 0]
        r.add(
            "connections",
            "cycle",
            "cycle through "
            + ", ".join(repr(s) for s in stuck[:10])
            + "; only a connection back into a loop node may close a cycle",
        )
