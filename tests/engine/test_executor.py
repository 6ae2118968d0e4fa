"""Executor behaviour: concurrency, resume, retry, cancellation, ports and events."""

from __future__ import annotations

import asyncio
import time

import pytest

from nodedrop.engine import (
    CancelToken,
    EngineEvent,
    EventType,
    ExecutionInfo,
    ExecutionStatus,
    MemoryCheckpointStore,
    MemoryEventSink,
    Node,
    NodeError,
    NodeRetry,
    ValidationError,
    execute_node,
    parse_workflow,
    run_workflow,
    validate_workflow,
)
from nodedrop.engine.local import run_local

from .helpers import SideEffects, chain, counting_config


async def test_parallel_waits_run_concurrently() -> None:
    wf = parse_workflow(
        {
            "nodes": [
                {"id": "t", "type": "manual_trigger"},
                {"id": "a", "type": "wait", "parameters": {"seconds": 0.2}},
                {"id": "b", "type": "wait", "parameters": {"seconds": 0.2}},
            ],
            "connections": [{"from": "t", "to": "a"}, {"from": "t", "to": "b"}],
        }
    )
    started = time.perf_counter()
    run = await run_local(wf, {})
    elapsed = time.perf_counter() - started
    assert run.result.status is ExecutionStatus.COMPLETED
    assert elapsed < 0.35, elapsed
    assert set(run.result.outputs) == {"a", "b"}


async def test_resume_runs_only_nodes_not_checkpointed() -> None:
    effects = SideEffects()
    config = counting_config(effects)
    wf = parse_workflow(chain(["n1", "n2", "n3", "n4", "n5"]))
    first = MemoryCheckpointStore()
    result = await run_workflow(
        wf,
        execution=ExecutionInfo("e1"),
        trigger_data={"x": 1},
        sink=MemoryEventSink(),
        checkpoints=first,
        config=config,
    )
    assert result.ok
    assert effects.runs == dict.fromkeys(["n1", "n2", "n3", "n4", "n5"], 1)
    # The first k=3 nodes (trigger, n1, n2) are checkpointed; a rerun runs only n3..n5.
    completed = {k: first.outputs[k] for k in ("start", "n1", "n2")}
    effects.runs.clear()
    sink = MemoryEventSink()
    again = MemoryCheckpointStore()
    result2 = await run_workflow(
        wf,
        execution=ExecutionInfo("e1", attempt=2),
        trigger_data={"x": 1},
        sink=sink,
        checkpoints=again,
        completed=completed,
        config=config,
    )
    assert result2.ok
    assert effects.runs == {"n3": 1, "n4": 1, "n5": 1}
    assert result2.outputs == result.outputs
    assert set(again.outputs) == {"n3", "n4", "n5"}
    started = [e.node_id for e in sink.events if e.type is EventType.NODE_STARTED]
    assert started == ["n3", "n4", "n5"]


async def test_node_completed_goes_to_checkpoints_not_sink() -> None:
    wf = parse_workflow(chain(["a"], "noop"))
    sink = MemoryEventSink()
    saved: list[tuple[str, EngineEvent]] = []

    class Store:
        async def save(self, node_id: str, outputs: dict, event: EngineEvent) -> None:  # type: ignore[type-arg]
            assert event.type is EventType.NODE_COMPLETED and event.data == outputs
            saved.append((node_id, event))

    result = await run_workflow(
        wf, execution=ExecutionInfo("e"), trigger_data=None, sink=sink, checkpoints=Store()
    )
    assert result.ok
    assert [n for n, _ in saved] == ["start", "a"]
    assert all(e.type is not EventType.NODE_COMPLETED for e in sink.events)


async def test_node_retry_succeeds_after_failures() -> None:
    effects = SideEffects()
    effects.failures["n1"] = 2
    data = chain(["n1"])
    data["nodes"][1]["retry"] = {"max_tries": 3, "wait_s": 0.01}
    run = await run_local(parse_workflow(data), {}, config=counting_config(effects))
    assert run.result.ok
    assert effects.runs["n1"] == 3


async def test_node_retry_exhausted_fails_retryable() -> None:
    effects = SideEffects()
    effects.failures["n1"] = 5
    data = chain(["n1", "n2"])
    data["nodes"][1]["retry"] = {"max_tries": 2, "wait_s": 0}
    run = await run_local(parse_workflow(data), {}, config=counting_config(effects))
    assert run.result.status is ExecutionStatus.FAILED
    assert run.result.error is not None
    assert run.result.error.node_id == "n1" and run.result.error.retryable
    assert effects.runs["n1"] == 2 and effects.runs["n2"] == 0
    failed = [e for e in run.events if e.event.type is EventType.NODE_FAILED]
    assert len(failed) == 1 and failed[0].event.error is not None


async def test_cancel_interrupts_wait_at_once() -> None:
    wf = parse_workflow(
        {
            "nodes": [
                {"id": "t", "type": "manual_trigger"},
                {"id": "w", "type": "wait", "parameters": {"seconds": 30}},
            ],
            "connections": [{"from": "t", "to": "w"}],
        }
    )
    token = CancelToken()
    asyncio.get_running_loop().call_later(0.05, token.cancel, "user asked")
    started = time.perf_counter()
    run = await run_local(wf, {}, cancel=token)
    assert time.perf_counter() - started < 1.0
    assert run.result.status is ExecutionStatus.CANCELLED
    assert run.result.error is not None and run.result.error.message == "user asked"
    assert run.events[-1].event.type is EventType.EXECUTION_CANCELLED


async def test_cancel_with_asyncio_event() -> None:
    wf = parse_workflow(
        {
            "nodes": [
                {"id": "t", "type": "manual_trigger"},
                {"id": "w", "type": "wait", "parameters": {"seconds": 30}},
            ],
            "connections": [{"from": "t", "to": "w"}],
        }
    )
    event = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, event.set)
    run = await run_local(wf, {}, cancel=event)
    assert run.result.status is ExecutionStatus.CANCELLED


async def test_outer_cancellation_is_not_swallowed() -> None:
    wf = parse_workflow(
        {
            "nodes": [
                {"id": "t", "type": "manual_trigger"},
                {"id": "w", "type": "wait", "parameters": {"seconds": 30}},
            ],
            "connections": [{"from": "t", "to": "w"}],
        }
    )
    task = asyncio.ensure_future(run_local(wf, {}))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_invalid_workflow_raises_before_running() -> None:
    wf = parse_workflow({"nodes": [{"id": "t", "type": "noop"}]})
    with pytest.raises(ValidationError):
        await run_workflow(
            wf,
            execution=ExecutionInfo("e"),
            trigger_data=None,
            sink=MemoryEventSink(),
            checkpoints=MemoryCheckpointStore(),
        )


async def test_plan_is_compiled_once_per_workflow_object() -> None:
    wf = parse_workflow(chain(["a"], "noop"))
    for _ in range(3):
        await run_local(wf, {})
    assert len(wf._plans) == 1


async def test_execute_node_outputs_per_port() -> None:
    node = Node("big", "if", {"condition": "json.n > 1"})
    out = await execute_node(node, {"main": [{"n": 1}, {"n": 2}]})
    assert out == {"true": [{"n": 2}], "false": [{"n": 1}]}


async def test_execute_node_failure_carries_error_info() -> None:
    node = Node("calc", "set", {"fields": {"x": "json.n * 1.5"}})
    with pytest.raises(NodeError) as info:
        await execute_node(node, {"main": [{"n": 2}]})
    assert info.value.info.node_id == "calc"
    assert info.value.info.code == "expression_error"
    assert "double(" in info.value.info.message


async def test_execute_node_bad_parameters() -> None:
    with pytest.raises(ValidationError) as info:
        await execute_node(Node("w", "wait", {}), {"main": [{}]})
    assert info.value.problems[0].code == "missing_parameter"


async def test_execute_node_timeout() -> None:
    node = Node("w", "wait", {"seconds": 5}, timeout_s=0.05)
    with pytest.raises(NodeError) as info:
        await execute_node(node, {"main": [{}]})
    assert info.value.code == "node_timeout"


async def test_retry_dataclass_roundtrip() -> None:
    data = chain(["a"], "noop")
    data["nodes"][1]["retry"] = {"max_tries": 4, "wait_s": 0.5}
    assert parse_workflow(data).node("a").retry == NodeRetry(4, 0.5)


async def test_loop_resume_after_finished_loop_does_not_rerun_body() -> None:
    effects = SideEffects()
    config = counting_config(effects)
    data = {
        "nodes": [
            {"id": "t", "type": "manual_trigger"},
            {"id": "l", "type": "loop", "parameters": {"batch_size": 2}},
            {"id": "body", "type": "count"},
            {"id": "after", "type": "count"},
        ],
        "connections": [
            {"from": "t", "to": "l"},
            {"from": "l", "output": "loop", "to": "body"},
            {"from": "body", "to": "l"},
            {"from": "l", "output": "done", "to": "after"},
        ],
    }
    wf = parse_workflow(data)
    store = MemoryCheckpointStore()
    result = await run_workflow(
        wf,
        execution=ExecutionInfo("e"),
        trigger_data=[{"i": i} for i in range(5)],
        sink=MemoryEventSink(),
        checkpoints=store,
        config=config,
    )
    assert result.ok and effects.runs == {"body": 3, "after": 1}
    effects.runs.clear()
    completed = {k: v for k, v in store.outputs.items() if k != "after"}
    result2 = await run_workflow(
        wf,
        execution=ExecutionInfo("e", 2),
        trigger_data=[{"i": i} for i in range(5)],
        sink=MemoryEventSink(),
        checkpoints=MemoryCheckpointStore(),
        completed=completed,
        config=config,
    )
    assert result2.ok and effects.runs == {"after": 1}
    assert result2.outputs == result.outputs


async def test_loop_max_iterations() -> None:
    data = {
        "nodes": [
            {"id": "t", "type": "manual_trigger"},
            {"id": "l", "type": "loop", "parameters": {"batch_size": 1, "max_iterations": 3}},
            {"id": "body", "type": "noop"},
        ],
        "connections": [
            {"from": "t", "to": "l"},
            {"from": "l", "output": "loop", "to": "body"},
            {"from": "body", "to": "l"},
        ],
    }
    run = await run_local(parse_workflow(data), [{"i": i} for i in range(10)])
    assert run.result.status is ExecutionStatus.FAILED
    assert run.result.error is not None and run.result.error.code == "max_iterations"


async def test_subworkflow_by_id_runs_its_pinned_definition_and_refuses_an_unpinned_one() -> None:
    data = chain([], "noop")
    data["nodes"].append(
        {"id": "call", "type": "execute_workflow", "parameters": {"workflow_id": "wf-1"}}
    )
    data["connections"].append({"from": "start", "to": "call"})
    run = await run_local(parse_workflow(data), {"a": 1})
    assert run.result.error is not None
    assert run.result.error.code == "subworkflow_unpinned"
    # As the API pins it at submit: the version it resolved and its definition.
    sub = chain(["x"], "set")
    sub["nodes"][1]["parameters"] = {"fields": {"b": "2"}}
    data["nodes"][-1]["parameters"].update(workflow_version=3, workflow=sub)
    run = await run_local(parse_workflow(data), {"a": 1})
    assert run.result.outputs == {"call": [{"a": 1, "b": 2}]}


def test_a_subworkflow_reference_needs_exactly_one_source_unless_pinned() -> None:
    data = chain([], "noop")
    data["nodes"].append(
        {
            "id": "call",
            "type": "execute_workflow",
            "parameters": {"workflow_id": "wf-1", "workflow": chain(["x"], "noop")},
        }
    )
    data["connections"].append({"from": "start", "to": "call"})
    assert [p.code for p in validate_workflow(data)] == ["missing_parameter"]
    data["nodes"][-1]["parameters"] = {"workflow_version": 2, "workflow": chain([], "noop")}
    assert [p.path for p in validate_workflow(data)] == ["nodes[1].parameters.workflow_version"]


async def test_cancel_interrupts_a_long_inline_loop() -> None:
    data = {
        "nodes": [
            {"id": "t", "type": "manual_trigger"},
            {"id": "l", "type": "loop", "parameters": {"batch_size": 1, "max_iterations": 100000}},
            {"id": "body", "type": "noop"},
        ],
        "connections": [
            {"from": "t", "to": "l"},
            {"from": "l", "output": "loop", "to": "body"},
            {"from": "body", "to": "l"},
        ],
    }
    token = CancelToken()
    asyncio.get_running_loop().call_later(0.02, token.cancel)
    run = await run_local(parse_workflow(data), [{"i": i} for i in range(50000)], cancel=token)
    assert run.result.status is ExecutionStatus.CANCELLED


async def test_schedule_trigger_adds_scheduled_at() -> None:
    data = {"nodes": [{"id": "c", "type": "schedule_trigger", "parameters": {"cron": "0 * * * *"}}]}
    run = await run_local(parse_workflow(data), None)
    (item,) = run.result.outputs["c"]
    assert item["scheduled_at"].endswith("+00:00")
