"""A workflow compiled for execution: integer-indexed graph tables built once.

The executor runs many executions of the same workflow; everything that does
not depend on the data (node lookup, port tables, loop bodies, compiled
expressions) is computed here once and cached on the Workflow object.
"""

from __future__ import annotations

from dataclasses import dataclass

from nodedrop.engine.errors import ValidationError
from nodedrop.engine.limits import Limits
from nodedrop.engine.model import MAIN, Node, Workflow
from nodedrop.engine.nodes.control import LOOP, loop_settings
from nodedrop.engine.parse import parse_into, workflow_to_dict
from nodedrop.engine.registry import NodeRegistry, Prepared, Reporter
from nodedrop.engine.validate import analyze


@dataclass(frozen=True, slots=True)
class Plan:
    workflow: Workflow
    ids: tuple[str, ...]
    index: dict[str, int]
    nodes: tuple[Node, ...]
    prepared: tuple[Prepared, ...]
    trigger: int
    is_loop: tuple[bool, ...]
    loop_settings: tuple[tuple[int, int], ...]
    # Per node: its forward incoming slots grouped by input port, ports in name order.
    in_ports: tuple[tuple[tuple[str, tuple[int, ...]], ...], ...]
    in_slots: tuple[tuple[int, ...], ...]
    # Per node: output port -> ((slot, target), ...) for forward connections.
    out: tuple[dict[str, tuple[tuple[int, int], ...]], ...]
    # Per node: output port -> loop nodes it feeds through a back edge.
    back_out: tuple[dict[str, tuple[int, ...]], ...]
    slot_source: tuple[int, ...]
    n_slots: int
    # Per loop node: the nodes of its body (empty for other nodes).
    body: tuple[frozenset[int], ...]
    # Per node: the loops whose body contains it.
    enclosing: tuple[tuple[int, ...], ...]
    first_output: tuple[str | None, ...]


def get_plan(wf: Workflow, registry: NodeRegistry, limits: Limits, depth: int = 0) -> Plan:
    key = id(registry)
    cached = wf._plans.get(key)
    if cached is not None and cached[0] is registry:
        plan: Plan = cached[1]
        return plan
    plan = build_plan(wf, registry, limits, depth)
    wf._plans[key] = (registry, plan)
    return plan


def build_plan(wf: Workflow, registry: NodeRegistry, limits: Limits, depth: int = 0) -> Plan:
    shape = Reporter()
    parse_into(workflow_to_dict(wf), shape)
    analysis = analyze(wf, registry, limits, depth)
    if shape.problems or analysis.problems:
        raise ValidationError(shape.problems + analysis.problems)
    ids = tuple(n.id for n in wf.nodes)
    index = {nid: i for i, nid in enumerate(ids)}
    n = len(ids)
    in_by_port: list[dict[str, list[int]]] = [{} for _ in range(n)]
    out: list[dict[str, list[tuple[int, int]]]] = [{} for _ in range(n)]
    back_out: list[dict[str, list[int]]] = [{} for _ in range(n)]
    slot_source: list[int] = []
    for ci, c in enumerate(wf.connections):
        s, t = index[c.source], index[c.target]
        if ci in analysis.back_edges:
            back_out[s].setdefault(c.source_output, []).append(t)
            continue
        slot = len(slot_source)
        slot_source.append(s)
        in_by_port[t].setdefault(c.target_input, []).append(slot)
        out[s].setdefault(c.source_output, []).append((slot, t))
    bodies = [frozenset(index[b] for b in analysis.bodies.get(nid, ())) for nid in ids]
    enclosing = [tuple(L for L in range(n) if i in bodies[L]) for i in range(n)]
    trigger = next(i for i, node in enumerate(wf.nodes) if registry.get(node.type).trigger)
    first_output: list[str | None] = []
    for node in wf.nodes:
        ports = registry.get(node.type).output_ports(node.parameters)
        first_output.append(ports[0] if ports else (MAIN if node.disabled else None))
    return Plan(
        workflow=wf,
        ids=ids,
        index=index,
        nodes=wf.nodes,
        prepared=tuple(analysis.prepared[i] for i in ids),
        trigger=trigger,
        is_loop=tuple(node.type == LOOP for node in wf.nodes),
        loop_settings=tuple(loop_settings(node.parameters) for node in wf.nodes),
        in_ports=tuple(
            tuple((p, tuple(slots)) for p, slots in sorted(ports.items())) for ports in in_by_port
        ),
        in_slots=tuple(tuple(s for slots in ports.values() for s in slots) for ports in in_by_port),
        out=tuple({p: tuple(v) for p, v in o.items()} for o in out),
        back_out=tuple({p: tuple(v) for p, v in o.items()} for o in back_out),
        slot_source=tuple(slot_source),
        n_slots=len(slot_source),
        body=tuple(bodies),
        enclosing=tuple(enclosing),
        first_output=tuple(first_output),
    )
