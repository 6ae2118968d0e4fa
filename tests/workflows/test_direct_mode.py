"""Every workflow case through direct mode (nodedrop.engine.local)."""

from __future__ import annotations

import asyncio
import time

import pytest

from nodedrop.engine import CancelToken, EventType, parse_workflow
from nodedrop.engine.local import run_local

from .cases import Case, Observed, load_cases

CASES = load_cases()


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_case_direct(case: Case) -> None:
    wf = parse_workflow(case.workflow)
    token = CancelToken()
    loop = asyncio.get_running_loop()
    handle = loop.call_later(case.cancel_after_s, token.cancel) if case.cancel_after_s else None
    started = time.perf_counter()
    run = await run_local(wf, case.trigger, cancel=token)
    seconds = time.perf_counter() - started
    if handle is not None:
        handle.cancel()
    result = run.result
    case.check(
        Observed(
            status=result.status.value,
            outputs=result.outputs,
            error=result.error.to_dict() if result.error else None,
            skipped=result.skipped,
            seconds=seconds,
        )
    )
    # Events: gap-free sequence, started first, one terminal event last.
    assert [e.sequence for e in run.events] == list(range(1, len(run.events) + 1))
    assert run.events[0].event.type is EventType.EXECUTION_STARTED
    assert run.events[-1].event.type.name.startswith("EXECUTION_")
    assert run.events[-1].event.type.name.endswith(result.status.value.upper())
    skipped_events = {e.event.node_id for e in run.events if e.event.type is EventType.NODE_SKIPPED}
    assert skipped_events == set(result.skipped)
