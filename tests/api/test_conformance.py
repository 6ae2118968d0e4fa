"""The engine's workflow conformance cases (tests/workflows) through the API,
in direct mode and in queue mode (a real scheduler and worker in this
process; on one Redis and on a 3-master Redis Cluster): the results the API
stores and serves are what each case expects.

All cases of a mode run at once and are checked together, which keeps the
whole run to a few seconds; a failure lists every case that went wrong.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.cli.remote import execution_outcome
from nodedrop.client.convert import execution_of
from nodedrop.contract import to_proto
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from tests.api.harness import TERMINAL, RunningApi, queue_api
from tests.workflows.cases import Case, Observed, load_cases

CASES = load_cases()
MODES = {
    "direct": execution_pb2.EXECUTION_MODE_DIRECT,
    "queue": execution_pb2.EXECUTION_MODE_QUEUE,
    # Queue mode with NODEDROP_API_ENQUEUE=store (batched enqueue into Redis).
    "queue-store": execution_pb2.EXECUTION_MODE_QUEUE,
    # Queue mode on the session's private 3-master Redis Cluster.
    "queue-cluster": execution_pb2.EXECUTION_MODE_QUEUE,
}


@pytest.fixture
async def api(
    request: pytest.FixtureRequest,
    pg_repo: PostgresRepository,
    redis_client: aioredis.Redis,
    redis_url: str,
    redis_prefix: str,
) -> AsyncIterator[RunningApi]:
    mode = request.node.callspec.params.get("mode", "")
    if mode == "queue-cluster":
        redis_url = request.getfixturevalue("redis_cluster").url
    async with queue_api(
        pg_repo,
        redis_url,
        redis_prefix,
        mode=mode,
        worker_env={"EXECUTION_WORKER_CONCURRENCY": "64"},
    ) as a:
        yield a


async def _observe(api: RunningApi, case: Case, mode: int) -> Observed:
    request = ex_pb.ExecuteWorkflowRequest(workflow=to_proto(case.workflow), mode=mode)  # type: ignore[arg-type]
    if case.trigger is not None:
        request.trigger_data_json = orjson.dumps(case.trigger).decode()
    started = time.perf_counter()
    submitted = await api.ex.ExecuteWorkflow(request, metadata=api.md)
    if case.cancel_after_s is not None:
        await asyncio.sleep(case.cancel_after_s)
        await api.ex.CancelExecution(
            ex_pb.CancelExecutionRequest(execution_id=submitted.execution_id), metadata=api.md
        )
    execution = await _terminal(api, submitted.execution_id)
    seconds = time.perf_counter() - started
    outcome: dict[str, Any] = execution_outcome(execution_of(execution))
    skipped = tuple(
        r.node_id for r in execution.node_runs if r.status == execution_pb2.NODE_RUN_STATUS_SKIPPED
    )
    return Observed(outcome["status"], outcome["outputs"], outcome["error"], skipped, seconds)


async def _terminal(api: RunningApi, execution_id: str) -> execution_pb2.Execution:
    for _ in range(600):
        response: ex_pb.GetExecutionResponse = await api.ex.GetExecution(
            ex_pb.GetExecutionRequest(execution_id=execution_id, include_outputs=True),
            metadata=api.md,
        )
        if response.execution.status in TERMINAL:
            return response.execution
        await asyncio.sleep(0.05)
    raise AssertionError(f"execution {execution_id} did not end in 30 s")


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_every_case_gives_the_expected_stored_result(api: RunningApi, mode: str) -> None:
    # Cases with time bounds run after the burst of the others, so that the
    # bounds measure the execution rather than a shared, busy machine.
    timed = [c for c in CASES if "max_seconds" in c.expect or "min_seconds" in c.expect]
    untimed = [c for c in CASES if c not in timed]
    results: list[Observed | BaseException] = []
    for group in (untimed, timed):
        results += await asyncio.gather(
            *(_observe(api, case, MODES[mode]) for case in group), return_exceptions=True
        )
    failures: list[str] = []
    for case, got in zip(untimed + timed, results, strict=True):
        if isinstance(got, BaseException):
            failures.append(f"{case.name}: {got!r}")
            continue
        try:
            case.check(got)
        except AssertionError as exc:
            failures.append(f"{case.name}: {exc}")
    assert not failures, f"{len(failures)} of {len(CASES)} cases failed in {mode} mode:\n" + (
        "\n".join(failures)
    )
