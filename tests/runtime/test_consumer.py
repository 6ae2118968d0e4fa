"""The consumer in-process against real Redis: runs, resume, retries, failed queue,
cancel, timeout."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import cast

import orjson
import pytest

from nodedrop.runtime.consumer import Consumer, ConsumerConfig
from nodedrop.runtime.engine_runner import EngineRunner, build_config
from nodedrop.runtime.ports import Store
from nodedrop.scheduler.maintenance import Maintenance
from nodedrop.store import Delivery, EventType, ExecutionStatus, Unavailable
from nodedrop.store.redis_store import RedisStore
from tests.worker.wq_helpers import assert_gap_free, chain, side_effects, sleepy, spec, wait_status

S = ExecutionStatus
NOOP5 = chain(*({"id": f"n{i}", "type": "noop"} for i in range(1, 5)))


def now() -> int:
    return int(time.time() * 1000)


async def test_runs_executions_and_records_every_event(
    store: RedisStore, consumer: Consumer
) -> None:
    ids = [f"ok-{i}" for i in range(20)]
    for x in ids:
        await store.enqueue(spec(x, NOOP5), now())
    await wait_status(store, ids, {S.COMPLETED}, 10)
    events = await store.read(ids[0], 0, 100)
    assert_gap_free(events)
    types = [e.type for e in events]
    assert types[:2] == [EventType.EXECUTION_QUEUED, EventType.EXECUTION_STARTED]
    assert types.count(EventType.NODE_COMPLETED) == 5
    assert events[-1].type is EventType.EXECUTION_COMPLETED
    assert orjson.loads(events[-1].data_json) == {"n4": [{"n": 1}]}
    assert await store.pending() == 0
    assert consumer.counters().completed == 20
    # The TTL was cut to EXECUTION_COMPLETION_TTL at the end.
    ttl = await store.client.ttl(store.config.keys.exec(ids[0]))
    assert 0 < ttl <= store.config.completion_ttl_s


async def test_resumes_after_completed_nodes(
    store: RedisStore, consumer: Consumer, side_effect_log: Path
) -> None:
    wf = chain(sleepy("a", 0, 0), sleepy("b", 0, 0))
    done = {"start": '{"main": [{"n": 1}]}', "a": '{"main": [{"from": "checkpoint"}]}'}
    await store.enqueue(spec("resume-1", wf, completed_outputs=done), now())
    await wait_status(store, ["resume-1"], {S.COMPLETED}, 10)
    assert [(x, n) for x, n, _, _ in side_effects(side_effect_log)] == [("resume-1", "b")]
    last = (await store.read("resume-1", 0, 100))[-1]
    assert orjson.loads(last.data_json) == {"b": [{"from": "checkpoint"}]}


@pytest.mark.slow
async def test_retries_back_off_2s_then_4s_and_resume(
    store: RedisStore, consumer: Consumer, maintenance: Maintenance, side_effect_log: Path
) -> None:
    wf = chain(
        sleepy("a", 0, 0), {"id": "f", "type": "test_flaky", "parameters": {"succeed_on": 3}}
    )
    await store.enqueue(spec("retry-1", wf, max_attempts=3, backoff_s=2.0), now())
    await wait_status(store, ["retry-1"], {S.COMPLETED}, 12)
    runs = side_effects(side_effect_log)
    flaky = [t for _, n, _, t in runs if n == "f"]
    assert [a for _, n, a, _ in runs if n == "f"] == [1, 2, 3]
    # "a" completed in attempt 1 and is never run again.
    assert [a for _, n, a, _ in runs if n == "a"] == [1]
    gap1, gap2 = flaky[1] - flaky[0], flaky[2] - flaky[1]
    assert 1.6 <= gap1 <= 2.4, gap1
    assert 3.2 <= gap2 <= 4.8, gap2
    events = await store.read("retry-1", 0, 200)
    assert_gap_free(events)
    retrying = [e for e in events if e.type is EventType.EXECUTION_RETRYING]
    assert [orjson.loads(e.data_json)["delay_s"] for e in retrying] == [2.0, 4.0]
    assert retrying[0].error is not None and "flaky failure" in retrying[0].error.message


async def test_exhausted_attempts_go_to_the_failed_queue_and_retry_from_there(
    store: RedisStore, consumer: Consumer, maintenance: Maintenance, side_effect_log: Path
) -> None:
    wf = chain({"id": "f", "type": "test_flaky", "parameters": {"succeed_on": 4}})
    await store.enqueue(spec("dead-1", wf, max_attempts=3, backoff_s=0.05), now())
    await wait_status(store, ["dead-1"], {S.FAILED}, 10)
    jobs, _ = await store.list_failed(10, "")
    assert [(j.execution_id, j.attempts, j.node_id) for j in jobs] == [("dead-1", 3, "f")]
    assert "flaky failure on attempt 3" in jobs[0].reason
    events = await store.read("dead-1", 0, 200)
    assert events[-1].type is EventType.EXECUTION_FAILED
    assert await store.retry_failed(["dead-1"], False, now()) == 1
    await wait_status(store, ["dead-1"], {S.COMPLETED}, 10)
    assert [a for _, n, a, _ in side_effects(side_effect_log) if n == "f"] == [1, 2, 3, 4]
    assert (await store.list_failed(10, ""))[0] == []
    assert_gap_free(await store.read("dead-1", 0, 200))


async def test_a_deliberate_failure_is_not_retried(store: RedisStore, consumer: Consumer) -> None:
    wf = chain({"id": "stop", "type": "stop_and_error", "parameters": {"message": "no"}})
    await store.enqueue(spec("stop-1", wf), now())
    await wait_status(store, ["stop-1"], {S.FAILED}, 10)
    events = await store.read("stop-1", 0, 100)
    assert [e.type for e in events].count(EventType.EXECUTION_STARTED) == 1
    assert events[-1].error is not None and events[-1].error.code == "stop_and_error"
    assert (await store.list_failed(10, ""))[0] == []


async def test_cancel_stops_a_one_hour_wait_within_a_second(
    store: RedisStore, consumer: Consumer
) -> None:
    wf = chain({"id": "w", "type": "wait", "parameters": {"seconds": 3600}})
    await store.enqueue(spec("cancel-1", wf), now())
    await wait_status(store, ["cancel-1"], {S.RUNNING}, 5)
    await asyncio.sleep(0.1)
    t0 = time.monotonic()
    assert await store.cancel("cancel-1", "t1", now(), "operator: wrong input") is S.RUNNING
    await wait_status(store, ["cancel-1"], {S.CANCELLED}, 1.0)
    assert time.monotonic() - t0 < 1.0
    events = await store.read("cancel-1", 0, 100)
    assert events[-1].type is EventType.EXECUTION_CANCELLED
    # The caller's reason reaches the worker and ends up in the event.
    assert events[-1].error is not None
    assert (events[-1].error.message, events[-1].error.code) == (
        "operator: wrong input",
        "cancelled",
    )
    assert await store.pending() == 0


async def test_job_timeout_ends_timed_out(store: RedisStore, consumer: Consumer) -> None:
    wf = chain({"id": "w", "type": "wait", "parameters": {"seconds": 30}})
    await store.enqueue(spec("slow-1", wf, timeout_s=0.3), now())
    await wait_status(store, ["slow-1"], {S.TIMED_OUT}, 5)
    events = await store.read("slow-1", 0, 100)
    assert events[-1].type is EventType.EXECUTION_TIMED_OUT
    assert events[-1].error is not None and "timed out" in events[-1].error.message
    assert (await store.list_failed(10, ""))[0] == []


async def test_an_invalid_snapshot_fails_without_retry(
    store: RedisStore, consumer: Consumer
) -> None:
    wf = chain({"id": "x", "type": "no_such_type"})
    await store.enqueue(spec("bad-1", wf), now())
    await wait_status(store, ["bad-1"], {S.FAILED}, 5)
    last = (await store.read("bad-1", 0, 100))[-1]
    assert last.error is not None and last.error.code == "invalid_workflow"
    assert not last.error.retryable


class _Down:
    """A store in an outage: every read is Unavailable."""

    def __init__(self) -> None:
        self.reads = 0

    async def read_jobs(self, consumer: str, count: int, block_ms: int) -> list[Delivery]:
        self.reads += 1
        raise Unavailable("the store went away")


async def test_a_drain_ends_the_read_loops_back_off_at_once() -> None:
    down = _Down()
    c = Consumer(
        cast(Store, down),
        EngineRunner(build_config(())),
        ConsumerConfig(
            worker_id="w",
            concurrency=4,
            lease_s=30,
            heartbeat_s=60,
            read_block_s=5.0,
            read_batch=10,
        ),
    )
    await c.start()
    # Long enough for the back-off to reach waits of a second and more.
    await asyncio.sleep(1.6)
    assert down.reads >= 3 and not c.counters().consuming
    started = time.monotonic()
    await c.stop(5.0)
    assert time.monotonic() - started < 0.5
