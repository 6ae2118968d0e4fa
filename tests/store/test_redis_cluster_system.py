"""The whole system on a 3-master Redis Cluster, as a user runs it: every
service a separate process with `REDIS_URL=redis+cluster://...`, the README's
example workflow run from the command line in queue mode with its events
followed live, and a running execution cancelled (docs/operations.md,
"Redis Cluster"). The engine's conformance cases run on the cluster in
tests/api/test_conformance.py (mode "queue-cluster")."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.client.system import ClientSystem, client_system
from tests.helpers.redis_cluster import PrivateCluster

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "order_pipeline.json"
EXAMPLE_INPUT = ROOT / "examples" / "order_pipeline.input.json"

SLOW = {
    "name": "slow",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "pause", "type": "wait", "parameters": {"seconds": 60}},
    ],
    "connections": [{"from": "start", "to": "pause"}],
}


@pytest.fixture
async def on_cluster(
    redis_cluster: PrivateCluster, redis_prefix: str, pg_dsn: str
) -> AsyncIterator[ClientSystem]:
    async with client_system(redis_cluster.url, redis_prefix, pg_dsn) as system:
        yield system


def _cli_env(system: ClientSystem) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "NODEDROP_API_ADDR": system.api_address,
        "NODEDROP_EVENTS_ADDR": system.events_address,
        "NODEDROP_API_KEY": system.key,
    }


async def _nodedrop(env: dict[str, str] | None, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nodedrop.cli.main",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _output(env: dict[str, str] | None, *args: str) -> tuple[int, str, str]:
    process = await _nodedrop(env, *args)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_example_workflow_runs_in_queue_mode_with_live_events(
    on_cluster: ClientSystem,
) -> None:
    env = _cli_env(on_cluster)
    run = ("run", str(EXAMPLE), "--input", f"@{EXAMPLE_INPUT}")
    code, out, err = await _output(env, *run, "--mode", "queue", "--follow")
    assert code == 0, out + err
    assert re.match(r"execution \S+ submitted", out), out
    workflow = json.loads(EXAMPLE.read_text())
    for kind in ("execution_queued", "execution_started", "execution_completed"):
        assert kind in out, out
    # Every node that runs for this input shows up live, started and completed.
    for node in ("valid", "price", "big", "summary"):
        assert re.search(rf"node_completed\s.*\b{node}\b", out), (node, out)

    # The stored result is what the same workflow gives in this process alone.
    code, queued, err = await _output(env, *run, "--mode", "queue", "--json")
    assert code == 0, err
    code, local, err = await _output(None, *run, "--local", "--json")
    assert code == 0, err
    remote, alone = json.loads(queued), json.loads(local)
    assert remote["status"] == alone["status"] == "completed"
    assert remote["outputs"] == alone["outputs"]
    assert set(remote["outputs"]) <= {n["id"] for n in workflow["nodes"]}


async def test_a_running_execution_is_cancelled_and_its_watcher_sees_it(
    on_cluster: ClientSystem, tmp_path: Path
) -> None:
    env = _cli_env(on_cluster)
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps(SLOW))
    follow = await _nodedrop(env, "run", str(slow), "--mode", "queue", "--follow")
    assert follow.stdout is not None
    try:
        first = await asyncio.wait_for(follow.stdout.readline(), 30)
        match = re.match(rb"execution (\S+) submitted", first)
        assert match, first
        execution_id = match.group(1).decode()
        seen = [first]
        while b"node_started" not in seen[-1]:  # the wait node runs on a worker
            seen.append(await asyncio.wait_for(follow.stdout.readline(), 30))

        code, out, err = await _output(env, "executions", "cancel", execution_id)
        assert code == 0, out + err

        rest, _ = await asyncio.wait_for(follow.communicate(), 30)
    finally:
        if follow.returncode is None:
            follow.kill()
            await follow.wait()
    assert b"execution_cancelled" in rest, rest
    assert follow.returncode != 0
    code, out, err = await _output(env, "executions", "show", execution_id, "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "cancelled"
