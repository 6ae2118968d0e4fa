"""The engine's bounds: expression cost, deadlines inside CPU-bound nodes, data
budgets, event summaries, data depth, strict ids and settings ranges."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from nodedrop.engine import (
    CancelToken,
    EngineConfig,
    ExecutionStatus,
    Node,
    NodeError,
    execute_node,
    parse_workflow,
    validate_workflow,
)
from nodedrop.engine.budget import SUMMARY_KEY
from nodedrop.engine.events import EventType
from nodedrop.engine.expression_cost import shape_of
from nodedrop.engine.limits import Limits
from nodedrop.engine.local import run_local

CUBIC = "json.l.all(a, json.l.all(b, json.l.all(c, true)))"


def _two(node: dict[str, Any]) -> Any:
    return parse_workflow(
        {
            "nodes": [{"id": "t", "type": "manual_trigger"}, {"id": "n", **node}],
            "connections": [{"from": "t", "to": "n"}],
        }
    )


def _config(**limits: int) -> EngineConfig:
    return EngineConfig(limits=Limits(**limits))


@pytest.mark.parametrize(
    ("source", "depth", "fans_out"),
    [
        ("json.a + 1", 0, False),
        (CUBIC, 3, False),
        ("json.l.map(x, x * 2)", 1, False),
        ("json.l.map(a, json.l)", 1, True),
        ("json.l.map(a, a.map(b, a))", 2, True),
        ("json.l.map(x, x).all(y, true)", 1, False),
        ('"x.all(" + json.s', 0, False),
    ],
)
def test_shape(source: str, depth: int, fans_out: bool) -> None:
    shape = shape_of(source)
    assert (shape.depth, shape.fans_out) == (depth, fans_out)


async def test_cubic_comprehension_is_refused_before_it_runs() -> None:
    wf = _two({"type": "filter", "timeout_s": 1, "parameters": {"condition": CUBIC}})
    started = time.perf_counter()
    run = await run_local(wf, {"l": list(range(1000))})
    assert time.perf_counter() - started < 1
    error = run.result.error
    assert error is not None and error.code == "expression_cost_exceeded"
    assert "max_expression_cost" in error.message and not error.retryable


async def test_a_small_comprehension_runs() -> None:
    wf = _two({"type": "filter", "parameters": {"condition": CUBIC}})
    run = await run_local(wf, {"l": list(range(20))})
    assert run.result.ok and run.result.outputs["n"] == [{"l": list(range(20))}]


async def test_a_shared_value_in_every_item_is_charged_at_each_use() -> None:
    items = [{"i": i, "s": "x" * 40} for i in range(5000)]
    fan = _two({"type": "set", "parameters": {"fields": {"all": "items"}}})
    run = await run_local(fan, items)
    error = run.result.error
    assert error is not None and error.code == "expression_cost_exceeded"
    assert "max_node_expression_cost" in error.message
    # A scalar computed from the same list costs once.
    count = _two({"type": "set", "parameters": {"fields": {"n": "size(items)"}}})
    run = await run_local(count, items)
    assert run.result.ok, run.result.error
    assert run.result.outputs["n"][-1]["n"] == 5000


_FIELDS: dict[str, Any] = {"fields": {"y": "json.a + 1", "z": "json.a * 2"}}
_BUSY: dict[str, Any] = {"type": "set", "parameters": _FIELDS}


async def test_node_timeout_stops_a_cpu_bound_node() -> None:
    wf = _two({**_BUSY, "timeout_s": 0.05})
    items = [{"a": i} for i in range(90_000)]
    started = time.perf_counter()
    run = await run_local(wf, items)
    took = time.perf_counter() - started
    error = run.result.error
    assert run.result.status is ExecutionStatus.TIMED_OUT
    assert error is not None and error.code == "node_timeout"
    assert took < 1.0, took


async def test_execution_timeout_stops_a_cpu_bound_node() -> None:
    wf = _two(_BUSY)
    items = [{"a": i} for i in range(90_000)]
    started = time.perf_counter()
    run = await run_local(wf, items, timeout_s=0.05)
    assert run.result.status is ExecutionStatus.TIMED_OUT
    assert run.result.error is not None and run.result.error.code == "execution_timeout"
    assert time.perf_counter() - started < 1.0


async def test_execute_node_limit_stops_a_cpu_bound_node() -> None:
    node = Node(id="n", type="set", parameters=_FIELDS)
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        await execute_node(node, {"main": [{"a": i} for i in range(90_000)]}, timeout_s=0.05)
    assert time.perf_counter() - started < 1.0


def _doubling(merges: int) -> Any:
    nodes: list[dict[str, Any]] = [{"id": "t", "type": "manual_trigger"}]
    connections = []
    previous = "t"
    for k in range(merges):
        nodes.append({"id": f"m{k}", "type": "merge"})
        connections.append({"from": previous, "to": f"m{k}", "input": "a"})
        connections.append({"from": previous, "to": f"m{k}", "input": "b"})
        previous = f"m{k}"
    return parse_workflow({"nodes": nodes, "connections": connections})


async def test_item_budget_stops_a_doubling_chain() -> None:
    run = await run_local(_doubling(26), {"x": 1})
    error = run.result.error
    assert error is not None and error.code == "limit_exceeded"
    assert error.node_id == "m16" and "max_output_items" in error.message


async def test_byte_budgets() -> None:
    wf = _two({"type": "set", "parameters": {"fields": {"s": "json.s + json.s"}}})
    run = await run_local(wf, {"s": "x" * 3000}, config=_config(max_output_bytes=4096))
    error = run.result.error
    assert error is not None and error.code == "limit_exceeded"
    assert "max_output_bytes" in error.message
    run = await run_local(
        _doubling(6), {"s": "x" * 1000}, config=_config(max_execution_bytes=50_000)
    )
    error = run.result.error
    assert error is not None and error.code == "limit_exceeded"
    assert "max_execution_bytes" in error.message


async def test_on_error_continue_turns_a_budget_failure_into_an_item() -> None:
    wf = _two(
        {
            "type": "set",
            "on_error": "continue",
            "parameters": {"fields": {"s": "json.s + json.s"}},
        }
    )
    run = await run_local(wf, {"s": "x" * 3000}, config=_config(max_output_bytes=4096))
    assert run.result.ok
    assert run.result.outputs["n"][0]["error"]["code"] == "limit_exceeded"


async def test_large_outputs_are_summarised_in_events_and_kept_whole() -> None:
    wf = _two({"type": "noop"})
    items = [{"i": i, "pad": "x" * 100} for i in range(100)]
    run = await run_local(wf, items, config=_config(max_event_bytes=1024))
    assert run.result.ok
    completed = [e.event for e in run.events if e.event.type is EventType.NODE_COMPLETED]
    for event in completed:
        summary = event.data[SUMMARY_KEY]
        assert summary["items"] == {"main": 100} and summary["bytes"] > 1024
    assert run.node_outputs["n"]["main"] == items
    assert run.result.outputs["n"] == items


async def test_data_depth() -> None:
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    run = await run_local(_two({"type": "noop"}), {"d": deep})
    error = run.result.error
    assert error is not None and error.code == "limit_exceeded"
    assert "max_data_depth" in error.message
    with pytest.raises(NodeError) as info:
        await execute_node(Node(id="n", type="noop"), {"main": [{"d": deep}]})
    assert info.value.code == "limit_exceeded"


async def test_output_too_deep_to_encode_fails_the_node() -> None:
    nodes: list[dict[str, Any]] = [{"id": "t", "type": "manual_trigger"}]
    connections = []
    for k in range(130):
        nodes.append(
            {
                "id": f"w{k}",
                "type": "set",
                "parameters": {"mode": "replace", "fields": {"w": "[json]"}},
            }
        )
        connections.append({"from": nodes[-2]["id"], "to": f"w{k}"})
    run = await run_local(parse_workflow({"nodes": nodes, "connections": connections}), {})
    error = run.result.error
    assert error is not None and error.code == "limit_exceeded", error


def test_node_ids_and_ports_match_exactly() -> None:
    wf = {
        "nodes": [{"id": "t", "type": "manual_trigger"}, {"id": "ok\n", "type": "noop"}],
        "connections": [{"from": "t", "to": "ok\n"}],
    }
    assert any(p.path == "nodes[1].id" for p in validate_workflow(wf))


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({"timeout_s": 1e300}, "settings.timeout_s"),
        ({"timeout_s": 86_401}, "settings.timeout_s"),
        ({"backoff_s": 1e9}, "settings.backoff_s"),
    ],
)
def test_settings_ranges(settings: dict[str, Any], path: str) -> None:
    wf = {"nodes": [{"id": "t", "type": "manual_trigger"}], "settings": settings}
    assert [p.path for p in validate_workflow(wf)] == [path]


def test_node_timing_ranges() -> None:
    wf = {
        "nodes": [
            {"id": "t", "type": "manual_trigger"},
            {
                "id": "n",
                "type": "noop",
                "timeout_s": 1e300,
                "retry": {"max_tries": 2, "wait_s": 1e9},
            },
        ],
        "connections": [{"from": "t", "to": "n"}],
    }
    paths = {p.path for p in validate_workflow(wf)}
    assert {"nodes[1].timeout_s", "nodes[1].retry.wait_s"} <= paths


def _thread_registry() -> tuple[Any, list[int]]:
    from nodedrop.engine import NodeType  # noqa: PLC0415 - only these tests need it
    from nodedrop.engine.nodes import default_registry  # noqa: PLC0415
    from nodedrop.engine.registry import Prepared  # noqa: PLC0415

    seen: list[int] = []

    def factory(*_: Any) -> Prepared:
        def run(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
            seen.append(threading.get_ident())
            return {"main": inputs.get("main", [])}

        return Prepared(run, is_async=False)

    registry = default_registry().copy()
    registry.register(NodeType("where", params=(), factory=factory))
    return registry, seen


@pytest.mark.parametrize("items", [10, 2000])
async def test_large_synchronous_nodes_run_off_the_loop(items: int) -> None:
    registry, seen = _thread_registry()
    config = EngineConfig(registry=registry, offload_items=1000)
    run = await run_local(_two({"type": "where"}), [{"i": i} for i in range(items)], config=config)
    assert run.result.ok, run.result.error
    on_loop = seen == [threading.get_ident()]
    assert on_loop is (items < 1000), (items, seen)
    node = Node(id="n", type="where")
    seen.clear()
    await execute_node(node, {"main": [{"i": i} for i in range(items)]}, config=config)
    assert (seen == [threading.get_ident()]) is (items < 1000)


async def test_cancel_stops_a_cpu_bound_node_running_on_a_thread() -> None:
    token = CancelToken()
    wf = _two(_BUSY)
    items = [{"a": i} for i in range(90_000)]
    task = asyncio.ensure_future(run_local(wf, items, cancel=token))
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    token.cancel("stop")
    run = await asyncio.wait_for(task, 5)
    assert run.result.status is ExecutionStatus.CANCELLED, run.result
    assert time.perf_counter() - started < 1.0
