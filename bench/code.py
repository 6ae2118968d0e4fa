"""The code node: per-run overhead and a 1,000-item map, beside CEL and a bare pipe.

    .venv/bin/python bench/code.py             # 2,000 empty runs, 30 maps per mode
    .venv/bin/python bench/code.py --quick     # fewer
    .venv/bin/python bench/code.py --runners 4 # runner processes (default 2)
    .venv/bin/python bench/code.py --n8n PATH/node_modules/.bin/n8n   # and n8n's Code node

Scenarios, each in the same process and run:

- floor: a round trip of one small frame to a child process that echoes it,
  over the same asyncio pipes and framing ProcessSandbox uses (the least any
  out-of-process sandbox pays per run);
- empty run: ``ProcessSandbox.run`` of ``return []``, back to back and then 5 ms
  apart, p50 and p99 (a runner makes its next fresh context after answering:
  back-to-back runs wait for that work, spaced ones do not);
- 1,000-item map, n -> n * 2: a whole execution (manual trigger -> node) with
  a ``set`` node (CEL), a code node in runOnceForAllItems and one in
  runOnceForEachItem; items per second, median of the runs;
- with ``--n8n BINARY`` (an n8n 1.x install, never part of this repository),
  the same through n8n: it is started on a free loopback port with its own
  temporary data folder and telemetry off, workflows Webhook -> node are
  imported and activated, and each is called back to back over one HTTP
  connection. The Code node's cost is the difference between a workflow with
  it and the same workflow with a NoOp node in its place (an empty node, and
  a map of 1,000 items made by a node before it), so n8n's webhook and
  execution overhead is not counted against its Code node.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
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


_GENERATE = "const out = []; for (let i = 0; i < 1000; i++) out.push({json: {n: i}}); return out;"
# name -> the nodes after the webhook, in order: (n8n node type, parameters).
_N8N_FLOWS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "noop": [("n8n-nodes-base.noOp", {})],
    "empty": [("n8n-nodes-base.code", {"jsCode": "return [];"})],
    "gen-noop": [("n8n-nodes-base.code", {"jsCode": _GENERATE}), ("n8n-nodes-base.noOp", {})],
    "gen-all": [
        ("n8n-nodes-base.code", {"jsCode": _GENERATE}),
        ("n8n-nodes-base.code", {"jsCode": "return items.map(i => ({json: {n: i.json.n * 2}}));"}),
    ],
    "gen-each": [
        ("n8n-nodes-base.code", {"jsCode": _GENERATE}),
        (
            "n8n-nodes-base.code",
            {"mode": "runOnceForEachItem", "jsCode": "return {json: {n: $json.n * 2}};"},
        ),
    ],
}


def _n8n_workflow(name: str, steps: list[tuple[str, dict[str, Any]]], k: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {
            "id": f"00000000-0000-4000-8000-{k:06d}000000",
            "name": "Webhook",
            "type": "n8n-nodes-base.webhook",
            "typeVersion": 2,
            "position": [0, 0],
            "webhookId": f"00000000-0000-4000-9000-{k:06d}000000",
            "parameters": {
                "httpMethod": "POST",
                "path": f"nd-{name}",
                "responseMode": "lastNode",
                "responseData": "allEntries",
                "options": {},
            },
        }
    ]
    for j, (node_type, parameters) in enumerate(steps, start=1):
        nodes.append(
            {
                "id": f"00000000-0000-4000-8000-{k:06d}{j:06d}",
                "name": f"N{j}",
                "type": node_type,
                "typeVersion": 2 if node_type.endswith(".code") else 1,
                "position": [200 * j, 0],
                "parameters": parameters,
            }
        )
    names = [node["name"] for node in nodes]
    return {
        "id": f"ndbench{k:09d}",
        "name": f"nd-{name}",
        # n8n 1.12x activates the version a workflow names (activeVersionId).
        "versionId": f"00000000-0000-4000-a000-{k:06d}000000",
        "active": True,
        "settings": {"executionOrder": "v1"},
        "nodes": nodes,
        "connections": {
            a: {"main": [[{"node": b, "type": "main", "index": 0}]]}
            for a, b in itertools.pairwise(names)
        },
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _n8n_env(folder: str, port: int, broker_port: int) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": folder,
        "N8N_USER_FOLDER": folder,
        "N8N_LISTEN_ADDRESS": "127.0.0.1",
        "N8N_PORT": str(port),
        "N8N_DIAGNOSTICS_ENABLED": "false",
        "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
        "N8N_TEMPLATES_ENABLED": "false",
        "N8N_PERSONALIZATION_ENABLED": "false",
        "N8N_HIRING_BANNER_ENABLED": "false",
        "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "false",
        "N8N_RUNNERS_ENABLED": "true",
        "N8N_RUNNERS_BROKER_PORT": str(broker_port),
        "N8N_LOG_LEVEL": "warn",
    }


def _n8n_calls(port: int, path: str, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        conn.request(
            "POST", f"/webhook/{path}", body=b"{}", headers={"content-type": "application/json"}
        )
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"n8n answered {response.status} on {path}: {body[:200]!r}")
        times.append(time.perf_counter() - started)
    conn.close()
    return times


def n8n_bench(binary: str, n: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="n8n-bench-") as folder:
        port = _free_port()
        env = _n8n_env(folder, port, _free_port())
        flows = [
            _n8n_workflow(name, steps, k) for k, (name, steps) in enumerate(_N8N_FLOWS.items())
        ]
        file = Path(folder, "workflows.json")
        file.write_bytes(orjson.dumps(flows))
        for argv in (
            [binary, "import:workflow", f"--input={file}"],
            [binary, "update:workflow", "--all", "--active=true"],
        ):
            subprocess.run(argv, env=env, check=True, capture_output=True, timeout=600)
        log = open(Path(folder, "n8n.log"), "wb")  # noqa: SIM115 (closed below)
        server = subprocess.Popen([binary, "start"], env=env, stdout=log, stderr=log)
        try:
            _wait_healthy(port, server)
            version = subprocess.run(
                [binary, "--version"],
                check=True,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            ).stdout.strip()
            for path in ("nd-noop", "nd-empty", "nd-gen-noop", "nd-gen-all", "nd-gen-each"):
                _n8n_calls(port, path, 5)  # warm-up: the task runner starts on first use
            print(f"n8n {version}, Code node on its task runner:")
            noop, empty = _n8n_calls(port, "nd-noop", n), _n8n_calls(port, "nd-empty", n)
            b50, e50 = _pct(noop, 0.5), _pct(empty, 0.5)
            print(
                f"  webhook -> NoOp p50 {b50 * 1e3:.2f} ms; webhook -> empty Code p50 "
                f"{e50 * 1e3:.2f} ms, p99 {_pct(empty, 0.99) * 1e3:.2f} ms; the Code node's "
                f"share {(e50 - b50) * 1e3:.2f} ms"
            )
            base = statistics.median(_n8n_calls(port, "nd-gen-noop", runs))
            for label, path in (
                ("runOnceForAllItems", "nd-gen-all"),
                ("runOnceForEachItem", "nd-gen-each"),
            ):
                took = statistics.median(_n8n_calls(port, path, runs)) - base
                print(
                    f"  1,000-item map, Code, {label}: {took * 1e3:.1f} ms beyond NoOp "
                    f"({1000 / took:,.0f} items/s)"
                )
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()


def _wait_healthy(port: int, server: subprocess.Popen[bytes]) -> None:
    """Until every workflow answers: n8n says it is healthy before it has
    activated them (their webhooks are 404 until then)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"n8n exited with status {server.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            statuses = []
            for name in _N8N_FLOWS:
                conn.request("POST", f"/webhook/nd-{name}", body=b"{}")
                response = conn.getresponse()
                response.read()
                statuses.append(response.status)
            conn.close()
            if all(status == 200 for status in statuses):
                return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError("n8n did not activate the workflows in 300 s")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runners", type=int, default=2, help="NODEDROP_CODE_RUNNERS")
    parser.add_argument("--n8n", metavar="BINARY", help="an n8n 1.x binary to measure beside")
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
    if args.n8n:
        n8n_bench(args.n8n, n // 4, runs)


if __name__ == "__main__":
    asyncio.run(main())
