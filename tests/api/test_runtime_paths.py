"""What direct and queue mode share through the runtime, end to end through the
API: a plugin node type (NODEDROP_PLUGINS) and a sub-workflow by `workflow_id`,
pinned to the version resolved at submit, run the same in every mode."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
import pytest
import redis.asyncio as aioredis

from nodedrop.admin.v1 import queue_admin_service_pb2 as qa_pb
from nodedrop.admin.v1 import queue_admin_service_pb2_grpc as qa_grpc
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.contract import to_proto
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.workflow.v1 import workflow_service_pb2 as wfs_pb
from tests.api.harness import RunningApi, queue_api

PLUGIN = "tests.worker.nd_test_nodes"
MODES = {
    "direct": execution_pb2.EXECUTION_MODE_DIRECT,
    "queue": execution_pb2.EXECUTION_MODE_QUEUE,
    # Queue mode with NODEDROP_API_ENQUEUE=store (the API enqueues into Redis).
    "queue-store": execution_pb2.EXECUTION_MODE_QUEUE,
}


@pytest.fixture
async def api(
    request: pytest.FixtureRequest,
    pg_repo: PostgresRepository,
    redis_client: aioredis.Redis,
    redis_url: str,
    redis_prefix: str,
) -> AsyncIterator[RunningApi]:
    params = getattr(request.node, "callspec", None)
    mode = params.params.get("mode", "") if params is not None else ""
    async with queue_api(
        pg_repo, redis_url, redis_prefix, mode=mode, env={"NODEDROP_PLUGINS": PLUGIN}
    ) as a:
        yield a


def _child(tag: str) -> dict[str, Any]:
    return {
        "name": f"child-{tag}",
        "nodes": [
            {"id": "in", "type": "manual_trigger"},
            {"id": "tag", "type": "set", "parameters": {"fields": {"version": f"'{tag}'"}}},
        ],
        "connections": [{"from": "in", "to": "tag"}],
    }


def _parent(child_id: str, *, before: list[dict[str, Any]]) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "manual_trigger"}, *before]
    nodes.append(
        {"id": "call", "type": "execute_workflow", "parameters": {"workflow_id": child_id}}
    )
    order = [n["id"] for n in nodes]
    return {
        "name": "parent",
        "nodes": nodes,
        "connections": [{"from": a, "to": b} for a, b in itertools.pairwise(order)],
        "settings": {"backoff_s": 0.2},
    }


async def _store(api: RunningApi, definition: dict[str, Any], key: str | None = None) -> str:
    md = (("authorization", f"Bearer {key or api.key}"),)
    created = await api.wf.CreateWorkflow(
        wfs_pb.CreateWorkflowRequest(workflow=to_proto(definition)), metadata=md
    )
    return str(created.workflow.id)


async def _update(api: RunningApi, workflow_id: str, definition: dict[str, Any]) -> None:
    await api.wf.UpdateWorkflow(
        wfs_pb.UpdateWorkflowRequest(workflow_id=workflow_id, workflow=to_proto(definition)),
        metadata=api.md,
    )


def _result(execution: execution_pb2.Execution) -> dict[str, Any]:
    """Terminal node id -> its main output items."""
    return {node: orjson.loads(out.ports_json["main"]) for node, out in execution.outputs.items()}


def _completed(execution: execution_pb2.Execution) -> set[str]:
    return {
        r.node_id
        for r in execution.node_runs
        if r.status == execution_pb2.NODE_RUN_STATUS_COMPLETED
    }


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_a_plugin_node_and_a_subworkflow_by_id_run_in_every_mode(
    api: RunningApi, mode: str
) -> None:
    child_id = await _store(api, _child("v1"))
    plugin_node = {"id": "nap", "type": "test_sleep", "parameters": {"ms_min": 1, "ms_max": 2}}
    parent_id = await _store(api, _parent(child_id, before=[plugin_node]))
    submitted = await api.ex.ExecuteWorkflow(
        ex_pb.ExecuteWorkflowRequest(
            workflow_id=parent_id, mode=MODES[mode], trigger_data_json='{"n": 1}'
        ),
        metadata=api.md,
    )
    # The child changes after the submit: the execution keeps the version it pinned.
    await _update(api, child_id, _child("v2"))
    done = await api.wait_terminal(submitted.execution_id, include_outputs=True)
    assert done.status == execution_pb2.EXECUTION_STATUS_COMPLETED, done.error
    assert {"nap", "call"} <= _completed(done)
    assert _result(done) == {"call": [{"n": 1, "version": "v1"}]}


async def test_a_retry_runs_the_subworkflow_version_pinned_at_submit(api: RunningApi) -> None:
    child_id = await _store(api, _child("v1"))
    # Fails its first attempt, so the call runs in the second one, after the update.
    flaky = {"id": "flaky", "type": "test_flaky", "parameters": {"succeed_on": 2}}
    submitted = await api.ex.ExecuteWorkflow(
        ex_pb.ExecuteWorkflowRequest(
            workflow=to_proto(_parent(child_id, before=[flaky])),
            mode=execution_pb2.EXECUTION_MODE_QUEUE,
            trigger_data_json='{"n": 2}',
        ),
        metadata=api.md,
    )
    await _update(api, child_id, _child("v2"))
    done = await api.wait_terminal(submitted.execution_id, include_outputs=True)
    assert done.status == execution_pb2.EXECUTION_STATUS_COMPLETED, done.error
    assert done.attempt == 2
    assert _result(done) == {"call": [{"n": 2, "version": "v1"}]}


@pytest.mark.parametrize("mode", ["direct", "queue"])
async def test_an_unknown_or_foreign_workflow_id_is_refused_at_submit(
    api: RunningApi, mode: str
) -> None:
    foreign = await _store(api, _child("b"), key=api.other_key)
    missing = "00000000-0000-4000-8000-000000000000"
    for workflow_id in (missing, foreign):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.ex.ExecuteWorkflow(
                ex_pb.ExecuteWorkflowRequest(
                    workflow=to_proto(_parent(workflow_id, before=[])), mode=MODES[mode]
                ),
                metadata=api.md,
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = err.value.details() or ""
        assert "workflow.nodes[1].parameters.workflow_id" in details
        assert f"no workflow {workflow_id!r} in this tenant" in details
    listed = await api.ex.ListExecutions(ex_pb.ListExecutionsRequest(), metadata=api.md)
    assert not listed.executions


async def test_a_workflow_that_calls_itself_is_refused_at_submit(api: RunningApi) -> None:
    looped = await _store(api, _child("seed"))
    await _update(api, looped, _parent(looped, before=[]))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.ex.ExecuteWorkflow(
            ex_pb.ExecuteWorkflowRequest(workflow_id=looped), metadata=api.md
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "nest deeper than" in (err.value.details() or "")


async def test_a_schedule_pins_its_subworkflows_when_created(api: RunningApi) -> None:
    child_id = await _store(api, _child("v1"))
    admin = qa_grpc.QueueAdminServiceStub(api.channel)
    inline = qa_pb.CreateScheduleRequest(
        workflow=to_proto(_parent(child_id, before=[])), cron="0 0 1 1 *", paused=True
    )
    parent_id = await _store(api, _parent(child_id, before=[]))
    stored = qa_pb.CreateScheduleRequest(workflow_id=parent_id, cron="0 0 1 1 *", paused=True)
    for request in (inline, stored):
        created = await admin.CreateSchedule(request, metadata=api.md)
        (call,) = [n for n in created.schedule.workflow.nodes if n.id == "call"]
        params = orjson.loads(call.parameters_json)
        assert params["workflow_id"] == child_id
        assert params["workflow_version"] == 1
        assert params["workflow"]["name"] == "child-v1"


@pytest.mark.parametrize("mode", ["direct", "queue"])
async def test_retrying_an_execution_of_a_stored_workflow_keeps_its_pins(
    api: RunningApi, mode: str
) -> None:
    """The execution's row keeps the pinned snapshot, not a reference to the
    stored version (which has no pins): a retry runs the same child version."""
    child_id = await _store(api, _child("v1"))
    parent = _parent(child_id, before=[])
    parent["nodes"].append({"id": "stop", "type": "stop_and_error", "parameters": {}})
    parent["connections"].append({"from": "call", "to": "stop"})
    parent_id = await _store(api, parent)
    first = await api.ex.ExecuteWorkflow(
        ex_pb.ExecuteWorkflowRequest(workflow_id=parent_id, mode=MODES[mode]), metadata=api.md
    )
    failed = await api.wait_terminal(first.execution_id)
    assert failed.status == execution_pb2.EXECUTION_STATUS_FAILED
    assert failed.error.node_id == "stop"
    await _update(api, child_id, _child("v2"))
    retried = await api.ex.RetryExecution(
        ex_pb.RetryExecutionRequest(
            execution_id=first.execution_id, retry_from=ex_pb.RETRY_FROM_START
        ),
        metadata=api.md,
    )
    again = await api.wait_terminal(retried.execution_id)
    assert again.error.node_id == "stop", again.error
    out = await api.ex.GetExecutionOutput(
        ex_pb.GetExecutionOutputRequest(execution_id=retried.execution_id, node_id="call"),
        metadata=api.md,
    )
    assert orjson.loads(out.items_json) == [{"version": "v1"}]
