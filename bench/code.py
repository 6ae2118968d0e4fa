"""The code node: per-run overhead and a 1,000-item map, beside CEL and a bare pipe.

    .venv/bin/python bench/code.py             # 2,000 empty runs, 30 maps per mode
    .venv/bin/python bench/code.py --quick     # fewer
    .venv/bin/python bench/code.py --runners 4 # runner processes (default 2)

Scenarios, each in the same process and run:

- floor: a round trip of one small frame to a child process that echoes it,
  over the same asyncio pipes and framing ProcessSandbox uses (the least any
  out-of-process sandbox pays per run);
- empty run: ``ProcessSandbox.run`` of ``return []``, back to back and then 5 ms
  apart, p50 and p99 (a runner makes its next fresh context after answering:
  back-to-back runs wait for that work, spaced ones do not);
- 1,000-item map, n -> n * 2: a whole execution (manual trigger -> node) with
  a ``set`` node (CEL), a code node in runOnceForAllItems and one in
  runOnceForEachItem; items per second, median of the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from nodedrop.engine import ExecutionInfo, NullSink, parse_workflow, run_workflow  # noqa: E402
from nodedrop.engine.code import RUN_ONCE_FOR_ALL_ITEMS, CodeRun  # noqa: E402
from nodedrop.engine.config import EngineConfig  # noqa: E402
from nodedrop.engine.limits import DEFAULT_LIMITS  # noqa: E402
from nodedrop.engine.ports import MemoryCheckpointStore  # noqa: E402
from nodedrop.sandbox import ProcessSandbox  # noqa: E402
from nodedrop.sandbox.frames import PREFIX, encode_frame  # noqa: E402

_ECHO = (
    "import os\n"
    "from nodedrop.sandbox.frames import read_frame, write_frame\n"
    "i, o = os.fdopen(0, 'rb', buffering=0), os.fdopen(1, 'wb', buffering=0)\n"
    "while (f := read_frame(i)) is not None:\n"
    "    write_frame(o, f[0], f[1])\n"
)


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def floor(n: int) -> list[float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-c",
        _ECHO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    frame = encode_frame(b'{"source":"return []"}', b'{"items":[]}')
    times = []
    for _ in range(n):
        started = time.perf_counter()
        proc.stdin.write(frame)
        await proc.stdin.drain()
        header_len, body_len = PREFIX.unpack(await proc.stdout.readexactly(PREFIX.size))
        await proc.stdout.readexactly(header_len + body_len)
        times.append(time.perf_counter() - started)
    proc.stdin.close()
    await proc.wait()
    return times


async def empty_runs(sandbox: ProcessSandbox, n: int, gap_s: float = 0.0) -> list[float]:
    data = orjson.dumps({"items": [], "nodes": {}, "trigger": None, "execution": {}})
    run = CodeRun(
        "return []",
        RUN_ONCE_FOR_ALL_ITEMS,
        data,
        1000,
        DEFAULT_LIMITS.code_memory_bytes,
        DEFAULT_LIMITS.max_output_bytes,
        100,
        16384,
    )
    times = []
    for _ in range(n):
        started = time.perf_counter()
        await sandbox.run(run)
        times.append(time.perf_counter() - started)
        if gap_s:
            await asyncio.sleep(gap_s)
    return times


def _workflow(node: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "map",
        "nodes": [{"id": "start", "type": "manual_trigger"}, {"id": "m", **node}],
        "connections": [{"from": "start", "to": "m"}],
    }


MAPS = {
    "set (CEL)": {"type": "set", "parameters": {"fields": {"n": "json.n * 2"}}},
    "code, runOnceForAllItems": {
        "type": "code",
        "parameters": {"code": "return items.map(i => ({n: i.json.n * 2}))"},
    },
    "code, runOnceForEachItem": {
        "type": "code",
        "parameters": {"mode": "runOnceForEachItem", "code": "return {n: $json.n * 2}"},
    },
}


async def map_rate(config: EngineConfig, node: dict[str, Any], runs: int) -> list[float]:
    wf = parse_workflow(_workflow(node))
    items = [{"n": i} for i in range(1000)]
    rates = []
    for k in range(runs):
        started = time.perf_counter()
        result = await run_workflow(
            wf,
            execution=ExecutionInfo(f"e{k}", 1, "map"),
            trigger_data=items,
            sink=NullSink(),
            checkpoints=MemoryCheckpointStore(),
            config=config,
        )
        took = time.perf_counter() - started
        assert result.status.value == "completed", result.error
        assert result.outputs["m"][999] == {"n": 1998}
        rates.append(1000 / took)
    return rates


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runners", type=int, default=2, help="NODEDROP_CODE_RUNNERS")
    args = parser.parse_args()
    n, runs = (300, 10) if args.quick else (2000, 30)
    sandbox = ProcessSandbox(args.runners, DEFAULT_LIMITS.code_memory_bytes)
    await sandbox.start()
    try:
        await empty_runs(sandbox, 50)  # warm-up
        base = await floor(n)
        empty = await empty_runs(sandbox, n)
        f50, e50, e99 = _pct(base, 0.5), _pct(empty, 0.5), _pct(empty, 0.99)
        print(f"floor: pipe round trip p50 {f50 * 1e6:.0f} us, p99 {_pct(base, 0.99) * 1e6:.0f} us")
        print(
            f"empty code run: p50 {e50 * 1e6:.0f} us ({e50 / f50:.1f}x floor), "
            f"p99 {e99 * 1e6:.0f} us"
        )
        spaced = await empty_runs(sandbox, n // 4, 0.005)
        print(
            f"empty code run, 5 ms apart: p50 {_pct(spaced, 0.5) * 1e6:.0f} us, "
            f"p99 {_pct(spaced, 0.99) * 1e6:.0f} us"
        )
        config = EngineConfig(code=sandbox)
        for label, node in MAPS.items():
            rates = await map_rate(config, node, runs)
            print(
                f"1,000-item map, {label}: {statistics.median(rates):,.0f} items/s "
                f"(min {min(rates):,.0f}, max {max(rates):,.0f})"
            )
    finally:
        await sandbox.close()


if __name__ == "__main__":
    asyncio.run(main())
