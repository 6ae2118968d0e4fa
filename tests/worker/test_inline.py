"""Attempts that never suspend run one after another on a task shared by their
read batch; anything that waits keeps a task of its own."""

from __future__ import annotations

import time

from nodedrop.store import ExecutionContext, ExecutionStatus
from nodedrop.store.redis_store import RedisStore
from nodedrop.worker.consumer import Consumer
from nodedrop.worker.engine_runner import EngineRunner, build_config
from tests.worker.wq_helpers import assert_gap_free, chain, sleepy, spec, wait_status

S = ExecutionStatus
NOOP3 = chain(*({"id": f"n{i}", "type": "noop"} for i in range(1, 4)))
WAIT = chain({"id": "w", "type": "wait", "parameters": {"seconds": 3}})


def _ctx(workflow_json: str) -> ExecutionContext:
    return ExecutionContext(
        execution_id="x",
        tenant_id="t",
        workflow_id="w",
        workflow_json=workflow_json,
        trigger_json="",
        attempt=1,
        max_attempts=3,
        backoff_s=2.0,
        timeout_s=300.0,
        traceparent="",
        round_attempt=1,
        outputs={},
    )


def test_which_attempts_run_inline() -> None:
    runner = EngineRunner(build_config(("nd_test_nodes",)))
    assert runner.runs_inline(_ctx(NOOP3))
    assert not runner.runs_inline(_ctx(WAIT))
    assert not runner.runs_inline(_ctx(chain(sleepy("s", 0, 0))))
    timed = chain({"id": "n", "type": "noop", "timeout_s": 5})
    assert not runner.runs_inline(_ctx(timed))
    retried = chain({"id": "n", "type": "noop", "retry": {"max_tries": 3, "wait_s": 1}})
    assert not runner.runs_inline(_ctx(retried))
    # An invalid snapshot fails at once: nothing to wait for.
    assert runner.runs_inline(_ctx("{not json"))


async def test_a_waiting_attempt_does_not_hold_up_inline_ones(
    store: RedisStore, consumer: Consumer
) -> None:
    now = int(time.time() * 1000)
    await store.enqueue(spec("slow-1", WAIT), now)
    fast = [f"fast-{i}" for i in range(30)]
    for x in fast:
        await store.enqueue(spec(x, NOOP3), now)
    started = time.monotonic()
    await wait_status(store, fast, {S.COMPLETED}, 10)
    # The inline ones end while the three-second wait still runs.
    assert time.monotonic() - started < 2.5
    (slow,) = await store.states(["slow-1"])
    assert slow is not None and slow.status is S.RUNNING
    await wait_status(store, ["slow-1"], {S.COMPLETED}, 10)
    for x in fast[:3]:
        assert_gap_free(await store.read(x, 0, 100))
    assert consumer.counters().completed == 31
    assert consumer.counters().active == 0
