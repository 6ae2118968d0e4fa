"""Every engine conformance case, run in queue mode: same result as direct mode."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from nodedrop.runtime.consumer import Consumer
from nodedrop.store import EventType, ExecutionStatus, JobSpec
from nodedrop.store.redis_store import RedisStore
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS
from tests.worker.wq_helpers import wait_status

_CASES = Path(__file__).resolve().parents[1] / "workflows" / "cases.py"
_spec = importlib.util.spec_from_file_location("nd_workflow_cases", _CASES)
assert _spec is not None and _spec.loader is not None
cases = importlib.util.module_from_spec(_spec)
sys.modules["nd_workflow_cases"] = cases
_spec.loader.exec_module(cases)

S = ExecutionStatus
_TERMINAL = {S.COMPLETED, S.FAILED, S.CANCELLED, S.TIMED_OUT}
_CASE_LIST = cases.load_cases()


@pytest.mark.parametrize("case", _CASE_LIST, ids=[c.name for c in _CASE_LIST])
async def test_case_in_queue_mode(store: RedisStore, consumer: Consumer, case: Any) -> None:
    x = f"case-{case.name}"
    trigger = "" if case.trigger is None else orjson.dumps(case.trigger).decode()
    # Direct mode runs once: compare the first attempt.  The timeout comes from the
    # workflow's settings, as the scheduler's EnqueueExecution takes it.
    timeout = case.workflow.get("settings", {}).get("timeout_s", 300.0)
    wf = orjson.dumps(case.workflow).decode()
    spec = JobSpec(
        x,
        "t1",
        "",
        wf,
        trigger,
        max_attempts=1,
        timeout_s=timeout,
        backoff_s=DEFAULT_JOB_SETTINGS["backoff_s"],
    )
    t0 = time.monotonic()
    await store.enqueue(spec, int(time.time() * 1000))
    if case.cancel_after_s is not None:
        await asyncio.sleep(case.cancel_after_s)
        await store.cancel(x, "t1", int(time.time() * 1000))
    (status,) = await wait_status(store, [x], _TERMINAL, 30)
    seconds = time.monotonic() - t0
    events = await store.read(x, 0, 10_000)
    last = events[-1]
    assert last.terminal
    outputs = orjson.loads(last.data_json) if status is S.COMPLETED else {}
    error = None
    if last.error is not None:
        error = {
            "message": last.error.message,
            "code": last.error.code,
            "retryable": last.error.retryable,
            "node_id": last.node_id or None,
        }
    skipped = tuple(e.node_id for e in events if e.type is EventType.NODE_SKIPPED)
    assert status is not None
    case.check(cases.Observed(status.value.lower(), outputs, error, skipped, seconds))
