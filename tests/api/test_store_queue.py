"""NODEDROP_API_ENQUEUE=store: concurrent enqueues share pipelines, the jobs are
the ones the scheduler would write, and failures map to precise errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from nodedrop.api.model import Status
from nodedrop.api.queueing import EnqueueRequest
from nodedrop.api.store_queue import StoreQueue
from nodedrop.common import telemetry
from nodedrop.common.errors import FailedPrecondition, Unavailable
from nodedrop.common.settings import TelemetrySettings
from nodedrop.common.telemetry import configure_tracing, install_in_memory_tracing
from nodedrop.contract import check, to_proto
from nodedrop.store import Keys
from nodedrop.store.config import StoreConfig
from nodedrop.store.redis_store import RedisStore
from tests.api.test_rpc import FakeQueue
from tests.helpers.ports import free_port

DOC = {
    "name": "w",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "n", "type": "noop", "on_error": "continue", "timeout_s": 5},
    ],
    "connections": [{"from": "start", "to": "n"}],
    "settings": {"max_attempts": 5, "backoff_s": 1.5, "timeout_s": 60},
}


def _request(execution_id: str, tenant: str = "tenant-a", **kw: object) -> EnqueueRequest:
    definition, problems = check(to_proto(DOC))
    assert definition is not None, problems
    fields: dict[str, object] = {
        "execution_id": execution_id,
        "tenant_id": tenant,
        "definition": definition,
        "workflow_id": "wf-1",
        "workflow_version": 0,
        "trigger_data_json": '{"a": 1}',
        "priority": 0,
        "run_at": None,
    }
    fields.update(kw)
    return EnqueueRequest(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisStore]:
    s = RedisStore.from_url(redis_url, StoreConfig(keys=Keys(redis_prefix, 4)))
    try:
        yield s
    finally:
        await s.delete_all()
        await s.close()


async def test_concurrent_enqueues_store_the_jobs(store: RedisStore) -> None:
    await store.ensure_groups()  # as the scheduler and workers do at start
    queue = StoreQueue(store, FakeQueue())
    queue.start()
    try:
        ids = [str(uuid.uuid4()) for _ in range(300)]
        later = datetime.now(UTC) + timedelta(hours=1)
        statuses = await asyncio.gather(
            *(
                queue.enqueue(_request(i, run_at=later if n % 2 else None))
                for n, i in enumerate(ids)
            )
        )
        assert set(statuses) == {Status.QUEUED}
        # The same id again is a no-op, as through the scheduler.
        assert await queue.enqueue(_request(ids[0])) is Status.QUEUED
    finally:
        await queue.stop()
    states = await store.states(ids)
    assert all(s is not None and s.tenant_id == "tenant-a" for s in states)
    stats = await store.stats(int(datetime.now(UTC).timestamp() * 1000))
    assert stats.waiting == 150 and stats.delayed == 150
    # What a worker will load: the definition with every field, the settings.
    (got,) = await store.acquire(
        [d for d in await store.read_jobs("w", 300, 100) if d.execution_id == ids[0]], 30_000, 0
    )
    assert got.context is not None
    assert got.context.max_attempts == 5 and got.context.backoff_s == 1.5
    assert got.context.timeout_s == 60.0 and got.context.trigger_json == '{"a": 1}'
    assert '"on_error":"continue"' in got.context.workflow_json


async def test_refused_job_and_unreachable_redis() -> None:
    dead = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", StoreConfig())
    queue = StoreQueue(dead, FakeQueue())
    try:
        with pytest.raises(FailedPrecondition):
            await queue.enqueue(_request(str(uuid.uuid4()), tenant="bad tenant!"))
        with pytest.raises(Unavailable):
            await queue.enqueue(_request(str(uuid.uuid4())))
    finally:
        await dead.close()


async def test_job_keeps_the_enqueue_span_as_its_traceparent(store: RedisStore) -> None:
    # As the scheduler's path: a PRODUCER "enqueue" span under the caller's
    # span, and the job entry carries that span's traceparent for the worker.
    configure_tracing(TelemetrySettings("nodedrop-test", None))
    memory = install_in_memory_tracing()
    await store.ensure_groups()
    queue = StoreQueue(store, FakeQueue())
    queue.start()
    execution_id = str(uuid.uuid4())
    try:
        with trace.get_tracer("test").start_as_current_span("rpc") as rpc:
            assert await queue.enqueue(_request(execution_id)) is Status.QUEUED
        rpc_ctx = rpc.get_span_context()
        spans = [s for s in memory.get_finished_spans() if s.context.trace_id == rpc_ctx.trace_id]
    finally:
        await queue.stop()
        memory.shutdown()
    (enqueue,) = [s for s in spans if s.name == "enqueue"]
    assert enqueue.kind is SpanKind.PRODUCER
    assert enqueue.parent is not None and enqueue.parent.span_id == rpc_ctx.span_id
    (delivery,) = [
        d for d in await store.read_jobs("w", 100, 100) if d.execution_id == execution_id
    ]
    _, trace_id, span_id, _ = delivery.traceparent.split("-")
    assert (trace_id, span_id) == (
        f"{enqueue.context.trace_id:032x}",
        f"{enqueue.context.span_id:016x}",
    )


async def test_job_names_the_callers_trace_when_nothing_records_spans(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No span is started then; the job entry still carries a traceparent of
    # its own under the caller's span, as the dropped span would have had.
    monkeypatch.setattr(telemetry, "_exporting", False)
    await store.ensure_groups()
    queue = StoreQueue(store, FakeQueue())
    queue.start()
    execution_id = str(uuid.uuid4())
    caller = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(0))
    try:
        with trace.use_span(NonRecordingSpan(caller)):
            assert await queue.enqueue(_request(execution_id)) is Status.QUEUED
    finally:
        await queue.stop()
    (delivery,) = [
        d for d in await store.read_jobs("w", 100, 100) if d.execution_id == execution_id
    ]
    version, trace_id, span_id, flags = delivery.traceparent.split("-")
    assert (version, trace_id, flags) == ("00", f"{0xABC:032x}", "00")
    assert span_id not in (f"{0xDEF:016x}", "0" * 16)
