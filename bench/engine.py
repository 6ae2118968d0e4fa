"""Engine overhead per node run, in direct mode (no Redis, no gRPC).

    .venv/bin/python bench/engine.py            # all scenarios
    .venv/bin/python bench/engine.py --quick    # fewer repetitions
    .venv/bin/python bench/engine.py --encode   # the checkpoint store encodes outputs

Scenarios: a 100-node chain of noop nodes, a loop over 1,000 items in batches
of 10 (noop body), one-node / five-node executions per second, and a set node
evaluating one expression per item over 1,000 items. Each execution uses the
in-memory ports; the time per node run is the wall time divided by the node
runs the engine performed (loop entries included). With ``--encode`` the
checkpoint store encodes each node's outputs as the worker's and direct
mode's adapters do (reusing the engine's encoding when it made one), so the
figure includes what a real run pays for its checkpoints.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import orjson

# Python puts this script's folder first on sys.path, where bench/queue.py would
# shadow the standard library's `queue` module.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from nodedrop.engine import (  # noqa: E402 - after the sys.path fix above
    EngineEvent,
    ExecutionInfo,
    NodeOutputs,
    NullSink,
    Workflow,
    parse_workflow,
    run_workflow,
)


class CountingStore:
    def __init__(self) -> None:
        self.saves = 0

    async def save(self, node_id: str, outputs: NodeOutputs, event: EngineEvent) -> None:
        self.saves += 1


class EncodingStore(CountingStore):
    async def save(self, node_id: str, outputs: NodeOutputs, event: EngineEvent) -> None:
        self.saves += 1
        data = getattr(event, "checkpoint_json", "") or orjson.dumps(outputs).decode()
        self.last = data


def set_node() -> Workflow:
    return parse_workflow(
        {
            "name": "set",
            "nodes": [
                {"id": "start", "type": "manual_trigger"},
                {"id": "s", "type": "set", "parameters": {"fields": {"j": "json.i + 1"}}},
            ],
            "connections": [{"from": "start", "to": "s"}],
        }
    )


def chain(n: int) -> Workflow:
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "manual_trigger"}]
    nodes += [{"id": f"n{i}", "type": "noop"} for i in range(n)]
    ids = [x["id"] for x in nodes]
    conns = [{"from": a, "to": b} for a, b in itertools.pairwise(ids)]
    return parse_workflow({"name": f"chain{n}", "nodes": nodes, "connections": conns})


def loop_workflow() -> Workflow:
    return parse_workflow(
        {
            "name": "loop",
            "nodes": [
                {"id": "start", "type": "manual_trigger"},
                {"id": "each", "type": "loop", "parameters": {"batch_size": 10}},
                {"id": "body", "type": "noop"},
                {"id": "after", "type": "noop"},
            ],
            "connections": [
                {"from": "start", "to": "each"},
                {"from": "each", "output": "loop", "to": "body"},
                {"from": "body", "to": "each"},
                {"from": "each", "output": "done", "to": "after"},
            ],
        }
    )


async def measure(
    wf: Workflow, trigger: Any, runs: int, store_type: type[CountingStore] = CountingStore
) -> tuple[float, int]:
    """(seconds per execution, node runs per execution)."""
    sink = NullSink()
    info = ExecutionInfo("bench")
    store = store_type()
    await run_workflow(wf, execution=info, trigger_data=trigger, sink=sink, checkpoints=store)
    per_exec_saves = store.saves
    gc.collect()
    started = time.perf_counter()
    for _ in range(runs):
        await run_workflow(
            wf, execution=info, trigger_data=trigger, sink=sink, checkpoints=store_type()
        )
    return (time.perf_counter() - started) / runs, per_exec_saves


async def main(quick: bool, encode: bool) -> None:
    store_type = EncodingStore if encode else CountingStore
    scale = 1 if not quick else 5
    items = [{"i": i} for i in range(1000)]
    rows = [
        ("100-node noop chain", chain(100), {"x": 1}, 400 // scale),
        ("loop 1,000 items / batches of 10", loop_workflow(), items, 200 // scale),
        ("1-node execution", chain(0), {"x": 1}, 20000 // scale),
        ("5-node execution", chain(4), {"x": 1}, 10000 // scale),
        ("set, 1 expression x 1,000 items", set_node(), items, 200 // scale),
    ]
    print(
        f"{'scenario':36} {'per execution':>14} {'node runs':>10} {'per node run':>13} "
        f"{'executions/s':>13}"
    )
    for name, wf, trigger, runs in rows:
        per_exec, nodes = await measure(wf, trigger, runs, store_type)
        print(
            f"{name:36} {per_exec * 1e6:11.1f} µs {nodes:>10} "
            f"{per_exec / nodes * 1e6:10.2f} µs {1 / per_exec:13,.0f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--encode", action="store_true", help="the checkpoint store encodes outputs"
    )
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    print(f"event loop: {loop_name}")
    asyncio.run(main(args.quick, args.encode))
