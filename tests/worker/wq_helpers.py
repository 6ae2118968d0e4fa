"""Shared pieces of the worker tests: workflows, an in-process queue, side-effect logs."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from nodedrop.store import EventRecord, ExecutionStatus, JobSpec
from nodedrop.store.redis_store import RedisStore
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS
from tests.helpers.services import SERVICE_TOKEN, SERVICE_TOKEN_VAR

HERE = Path(__file__).parent
LEASE_S = 1.0


def chain(*nodes: dict[str, Any], name: str = "t", **settings: Any) -> str:
    """A workflow: manual trigger, then ``nodes`` in a line."""
    body = [{"id": "start", "type": "manual_trigger"}, *nodes]
    ids = [n["id"] for n in body]
    wf: dict[str, Any] = {
        "name": name,
        "nodes": body,
        "connections": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)],
    }
    if settings:
        wf["settings"] = settings
    return orjson.dumps(wf).decode()


def sleepy(node_id: str, lo: int, hi: int) -> dict[str, Any]:
    return {"id": node_id, "type": "test_sleep", "parameters": {"ms_min": lo, "ms_max": hi}}


def spec(execution_id: str, workflow_json: str, **kw: Any) -> JobSpec:
    return JobSpec(
        execution_id, "t1", "wf1", workflow_json, '{"n": 1}', **{**DEFAULT_JOB_SETTINGS, **kw}
    )


def now_ms() -> int:
    return int(time.time() * 1000)


async def wait_status(
    store: RedisStore,
    ids: Sequence[str],
    statuses: set[ExecutionStatus],
    timeout_s: float,
) -> list[ExecutionStatus | None]:
    """Polls until every execution is in one of ``statuses``; fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = await store.states(list(ids))
        got = [s.status if s else None for s in states]
        if all(g in statuses for g in got):
            return got
        if time.monotonic() > deadline:
            counts = Counter(str(g) for g in got)
            raise AssertionError(f"timed out waiting for {statuses}: {dict(counts)}")
        await asyncio.sleep(0.05)


def side_effects(path: Path) -> list[tuple[str, str, int, float]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        x, node, attempt, t = line.split()
        out.append((x, node, int(attempt), float(t)))
    return out


def assert_gap_free(events: Sequence[EventRecord]) -> None:
    assert [e.sequence for e in events] == list(range(1, len(events) + 1)), [
        (e.sequence, e.type) for e in events
    ]


def worker_env(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODEDROP_")}
    env.update(
        REDIS_URL=redis_url,
        NODEDROP_REDIS_PREFIX=prefix,
        NODEDROP_PARTITIONS="4",
        NODEDROP_PLUGINS="nd_test_nodes",
        NODEDROP_LEASE_S=str(LEASE_S),
        NODEDROP_HEARTBEAT_S="0.2",
        NODEDROP_READ_BLOCK_S="0.1",
        PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        LOG_LEVEL="warning",
    )
    env[SERVICE_TOKEN_VAR] = SERVICE_TOKEN
    env.update(extra)
    return env
