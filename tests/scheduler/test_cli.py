"""`nodedrop stats` and `nodedrop failed ...` against a running scheduler."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from nodedrop.store import Commit, EventDraft, EventType, ExecutionStatus, JobSpec, Transition

NODEDROP = str(Path(sys.executable).parent / "nodedrop")
WF = '{"name": "t", "nodes": [{"id": "start", "type": "manual_trigger"}]}'


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


async def run(port: int, *args: str) -> Result:
    """Runs the CLI without blocking the loop that serves the scheduler."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODEDROP_")}
    env["NODEDROP_SCHEDULER_ADDR"] = f"127.0.0.1:{port}"
    proc = await asyncio.create_subprocess_exec(
        NODEDROP, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return Result(proc.returncode or 0, out.decode(), err.decode())


@pytest.mark.slow
async def test_stats_and_failed_queue_commands(scheduler: Any) -> None:
    store = scheduler.store
    now = int(time.time() * 1000)
    for x in ("f1", "f2", "w1"):
        await store.enqueue(JobSpec(x, "t1", "wf", WF), now)
    ds = [d for d in await store.read_jobs("c", 100, 0) if d.execution_id != "w1"]
    acquired = await store.acquire(ds, 30_000, now)
    await store.commit(
        [
            Commit(
                a.lease,
                events=(EventDraft(EventType.EXECUTION_FAILED),),
                transition=Transition(ExecutionStatus.FAILED, dead_letter_reason="boom"),
            )
            for a in acquired
            if a.lease
        ],
        now,
    )
    await store.requeue([d for d in await store.read_jobs("c", 100, 0)])

    stats = await run(scheduler.port, "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    data = orjson.loads(stats.stdout)
    assert (data["failed"], data["partitions"]) == (2, 4)

    listed = await run(scheduler.port, "failed", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(r["execution_id"] for r in rows) == ["f1", "f2"]
    assert rows[0]["reason"] == "boom"

    retried = await run(scheduler.port, "failed", "retry", "f1")
    assert (retried.returncode, retried.stdout.strip()) == (0, "retried 1")
    purged = await run(scheduler.port, "failed", "purge", "--all")
    assert (purged.returncode, purged.stdout.strip()) == (0, "purged 1")
    assert (await store.list_failed(10, ""))[0] == []
