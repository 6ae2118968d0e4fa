"""Runs of inline nodes only: deadline and cancel token checked between nodes,
never through a timer or an interrupt of the (possibly shared) task."""

from __future__ import annotations

import asyncio

from nodedrop.engine import CancelToken, ExecutionStatus
from nodedrop.engine.local import run_local
from nodedrop.engine.parse import parse_workflow

from .helpers import SideEffects, chain, counting_config


async def test_a_passed_deadline_times_out_after_the_running_node() -> None:
    effects = SideEffects()
    wf = parse_workflow(chain(["a", "b", "c"]))
    run = await run_local(wf, [{}], timeout_s=0, config=counting_config(effects))
    assert run.result.status is ExecutionStatus.TIMED_OUT
    assert run.result.error is not None and run.result.error.code == "execution_timeout"
    # The deadline is checked after each node: the trigger ran, nothing after it.
    assert sum(effects.runs.values()) == 0


async def test_a_set_token_stops_an_inline_run_without_cancelling_its_task() -> None:
    effects = SideEffects()
    token = CancelToken()
    token.cancel("user asked")
    wf = parse_workflow(chain(["a", "b"]))
    run = await run_local(wf, [{}], cancel=token, config=counting_config(effects))
    assert run.result.status is ExecutionStatus.CANCELLED
    assert run.result.error is not None and run.result.error.message == "user asked"
    assert sum(effects.runs.values()) == 0
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    # The task is usable afterwards: a later await is not interrupted.
    await asyncio.sleep(0)


async def test_inline_runs_leave_no_timer_behind() -> None:
    loop = asyncio.get_running_loop()
    effects = SideEffects()
    wf = parse_workflow(chain(["a", "b"]))
    before = len(loop._scheduled)  # type: ignore[attr-defined]
    for _ in range(20):
        run = await run_local(wf, [{}], config=counting_config(effects))
        assert run.result.status is ExecutionStatus.COMPLETED
    assert len(loop._scheduled) <= before  # type: ignore[attr-defined]
    assert effects.runs["b"] == 20
