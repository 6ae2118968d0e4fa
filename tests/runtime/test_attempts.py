"""Attempts that never suspend run one after another on a task shared by their
read batch; anything that waits keeps a task of its own."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from nodedrop.engine.cancel import CancelToken
from nodedrop.runtime.attempts import INLINE_GROUP
from nodedrop.runtime.consumer import Consumer, ConsumerConfig
from nodedrop.runtime.engine_runner import EngineRunner, build_config
from nodedrop.runtime.runner import Ending, JobSink, Runner, RunOutcome
from nodedrop.store import EventType, ExecutionContext, ExecutionStatus
from nodedrop.store.redis_store import RedisStore
from tests.worker.wq_helpers import assert_gap_free, chain, sleepy, spec, wait_status

S = ExecutionStatus
PLUGIN = "tests.worker.nd_test_nodes"
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


def _quiet_consumer(
    store: RedisStore, runner: Runner, worker_id: str, concurrency: int, read_batch: int
) -> Consumer:
    """A consumer whose lease and heartbeat stay out of a short test's way."""
    config = ConsumerConfig(
        worker_id=worker_id,
        concurrency=concurrency,
        lease_s=30,
        heartbeat_s=10,
        read_block_s=0.1,
        read_batch=read_batch,
    )
    return Consumer(store, runner, config)


def test_which_attempts_run_inline() -> None:
    runner = EngineRunner(build_config((PLUGIN,)))
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


async def test_a_shared_task_cancelled_between_groups_frees_every_slot_it_did_not_run(
    store: RedisStore,
) -> None:
    """The shared task yields after every group of attempts; a cancel landing there
    (drain, shutdown) must still free the slots of the attempts it never ran."""
    consumer = _quiet_consumer(
        store, EngineRunner(build_config((PLUGIN,))), "inline-cancel", 100, 100
    )
    now = int(time.time() * 1000)
    for i in range(40):
        await store.enqueue(spec(f"grp-{i}", NOOP3), now)
    batch = await store.read_jobs("inline-cancel", 100, 0)
    assert len(batch) == 40
    # Not started: no read loop, no committer; only the batch's shared task runs.
    await consumer._start(batch)
    assert consumer.counters().active == 40
    shared = next(iter(consumer._attempts.jobs.values())).task
    assert shared is not None
    await asyncio.sleep(0)  # the task runs its first group and yields
    assert not shared.done()
    shared.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await shared
    # The first group ended: their slots went back with their engines' end while
    # the ends wait in the committer's buffer; the other attempts were never run
    # and gave their slots back too.
    assert len(consumer._attempts._committer._endings) == INLINE_GROUP
    assert consumer._free == 100


async def test_a_busy_worker_refills_with_take_and_runs_everything_once(
    store: RedisStore,
) -> None:
    takes: list[int] = []
    real_take = store.take

    async def counting_take(consumer: str, count: int, lease_ms: int, now_ms: int) -> list:  # type: ignore[type-arg]
        got = await real_take(consumer, count, lease_ms, now_ms)
        takes.append(len(got))
        return got

    store.take = counting_take  # type: ignore[method-assign]
    consumer = _quiet_consumer(store, EngineRunner(build_config((PLUGIN,))), "busy", 12, 5)
    now = int(time.time() * 1000)
    ids = [f"busy-{i}" for i in range(60)]
    for x in ids:
        await store.enqueue(spec(x, NOOP3), now)
    await consumer.start()
    try:
        await wait_status(store, ids, {S.COMPLETED}, 20)
    finally:
        await consumer.stop(2.0)
    # Reads came back full, so the worker went on with take, which leased work.
    assert sum(takes) > 0
    assert consumer.counters().completed == 60
    for x in ids:
        events = await store.read(x, 0, 100)
        assert_gap_free(events)
        assert [e.type for e in events].count(EventType.EXECUTION_STARTED) == 1
    assert await store.pending() == 0


class _ContextRecorder:
    """Runs nothing; records the log context each attempt runs under."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, Any]] = {}
        self.ran = asyncio.Event()

    def runs_inline(self, ctx: ExecutionContext) -> bool:
        return True

    async def run(self, ctx: ExecutionContext, sink: JobSink, cancel: CancelToken) -> RunOutcome:
        self.seen[ctx.execution_id] = structlog.contextvars.get_contextvars()
        self.ran.set()
        return RunOutcome(Ending.COMPLETED, result_json="{}")


async def test_an_attempts_log_context_has_its_execution_and_trace_ids(
    store: RedisStore,
) -> None:
    """Also with no span at all: the trace id comes from the job's traceparent."""
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    recorder = _ContextRecorder()
    consumer = _quiet_consumer(store, recorder, "ctx", 10, 10)
    now = int(time.time() * 1000)
    # Same partition, enqueued after it: read in the same batch and run after it
    # on the same shared task.
    partition = store.config.keys.partition
    after = next(
        f"untraced-{i}" for i in range(1000) if partition(f"untraced-{i}") == partition("traced")
    )
    await store.enqueue(spec("traced", NOOP3, traceparent=f"00-{tid}-00f067aa0ba902b7-01"), now)
    await store.enqueue(spec(after, NOOP3), now)
    await consumer.start()
    try:
        await wait_status(store, ["traced", after], {S.COMPLETED}, 10)
    finally:
        await consumer.stop(2.0)
    assert recorder.seen["traced"]["execution_id"] == "traced"
    assert recorder.seen["traced"]["trace_id"] == tid
    assert recorder.seen[after]["execution_id"] == after
    assert "trace_id" not in recorder.seen[after]


async def test_a_slot_goes_back_when_the_engine_ends_and_at_most_concurrency_ends_wait(
    store: RedisStore,
) -> None:
    """Concurrency 1: while the first end's commit is held up, the second attempt
    runs; the third waits, since one end is already waiting for its commit."""
    gate = asyncio.Event()
    real_commit = store.commit

    async def held_commit(commits: Any, now_ms: int) -> Any:
        await gate.wait()
        return await real_commit(commits, now_ms)

    store.commit = held_commit  # type: ignore[method-assign]
    recorder = _ContextRecorder()
    consumer = _quiet_consumer(store, recorder, "slots", 1, 10)
    now = int(time.time() * 1000)
    for x in ("s-1", "s-2", "s-3"):
        await store.enqueue(spec(x, NOOP3), now)
    await consumer.start()
    try:
        while len(recorder.seen) < 2:
            recorder.ran.clear()
            await asyncio.wait_for(recorder.ran.wait(), 5)
        await asyncio.sleep(0.3)
        # Two engines ran although neither end is committed; not a third.
        assert len(recorder.seen) == 2
        assert consumer.counters().completed == 0
        gate.set()
        await wait_status(store, ["s-1", "s-2", "s-3"], {S.COMPLETED}, 10)
    finally:
        gate.set()
        await consumer.stop(2.0)
    assert consumer.counters().completed == 3
    assert consumer.counters().active == 0
