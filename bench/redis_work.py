"""Redis work per execution: commands, script calls, bytes and CPU, beside BullMQ per job.

    .venv/bin/python bench/redis_work.py [--jobs 5000] [--chains 1000] [--rounds 2]
        [--systems nodedrop,bullmq] [--json FILE]

Runs the peers harness's own drivers (bench/peers/drivers: the same workloads
`make bench` times) against a private redis-server on a free port, one system
at a time and alternated round by round, and reads the server's counters
around each run: INFO commandstats (every command, those run inside Lua
scripts included), total commands, bytes received from and sent to clients,
the server's CPU time, and the keys left when the run ends. Each figure is
divided by the executions (jobs) of the run: the one-node throughput scenario
and the five-node chain, and for nodedrop the latency scenario ("latency"
rows: one-node executions one at a time on an idle worker, --idle).

The harness itself talks to Redis too: every job's body INCRs a counter, the
first and last job SET a timestamp, and the driver polls the counter with GET
(nodedrop's driver: its stats hashes with HGET, and it says how many) and
reads INFO. Those commands are counted apart ("harness") and left out of
the per-execution figures. BullMQ must be installed once by the peers
harness (`make bench` or bench/peers/run.py --only bullmq).

Round trips: the server's reads from client sockets (INFO stats
total_reads_processed). A request or a pipeline arrives in one read unless it
is larger than Redis's query buffer, so the figure is the round trips the
clients made per execution, or slightly more. nodedrop's driver's polls
(one pipeline each) and INFO calls are taken off; the peers' harness
commands are not (see _run), so theirs is an upper bound.
"""

from __future__ import annotations

import sys

# Loaded beside bench/queue.py, whose name shadows the standard library's.
if sys.path and sys.path[0] == __import__("os").path.dirname(__file__):
    sys.path.pop(0)

import argparse
import importlib.util
import json
import os
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
DRIVERS = HERE / "peers" / "drivers"
sys.path.insert(0, str(HERE / "peers"))

import catalog  # noqa: E402 - bench/peers is put on the path above
import envs  # noqa: E402
from systems import NODEDROP, System, _of_peer  # noqa: E402

DB = 0
# Commands the drivers' harness sends, not the system under test.
HARNESS = ("get", "incr", "set", "info", "flushdb", "delete|del", "rpush", "lrange", "mget")
SCRIPT_CALLS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")


def _queue_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nd_bench_queue", HERE / "queue.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _system(name: str) -> System:
    if name == "nodedrop":
        return NODEDROP
    (peer,) = [p for p in catalog.PEERS if p.name == name]
    envs.ensure(peer)
    return _of_peer(peer)


def _counters(client: redis.Redis) -> dict[str, Any]:
    stats = client.info("commandstats")
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    usec = {k.removeprefix("cmdstat_"): int(v["usec"]) for k, v in stats.items()}
    general = client.info("stats")
    cpu = client.info("cpu")
    return {
        "calls": calls,
        "usec": usec,
        "in_bytes": int(general["total_net_input_bytes"]),
        "out_bytes": int(general["total_net_output_bytes"]),
        "cpu_s": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        # Reads from client sockets: a request, or a pipeline of them, arrives in
        # one read unless it is larger than the query buffer (then in several),
        # so this is the round trips clients made, or a little more.
        "reads": int(general["total_reads_processed"]),
        "keys": int(client.dbsize()),
    }


def _run(
    system: System, scenario: str, jobs: int, port: int, client: redis.Redis
) -> dict[str, Any]:
    client.flushall()
    client.config_resetstat()
    before = _counters(client)
    argv = [*system.command, scenario, "--jobs", str(jobs), "--timeout", "60"]
    env = dict(os.environ, BENCH_REDIS_DB=str(DB), BENCH_REDIS_PORT=str(port), **system.env)
    proc = subprocess.run(
        argv, cwd=DRIVERS, env=env, check=False, capture_output=True, text=True, timeout=180
    )
    after = _counters(client)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{system.name} {scenario}: exit {proc.returncode}: {tail}")
    result = json.loads(lines[-1])
    if not result.get("finished", False):
        raise RuntimeError(f"{system.name} {scenario}: not finished: {result}")
    # Per execution (a chain is one five-node execution, or BullMQ's flow of
    # five jobs), whatever the driver counts as done (chains count steps). The
    # idle scenario (nodedrop's latency driver) runs five warm-up executions
    # first and waits for each one's EXECUTION_STARTED with an XREAD.
    done = jobs + 5 if scenario == "latency" else jobs
    harness_names = (*HARNESS, "xread") if scenario == "latency" else HARNESS
    calls = {
        k: after["calls"].get(k, 0) - before["calls"].get(k, 0)
        for k in after["calls"]
        if after["calls"].get(k, 0) - before["calls"].get(k, 0) > 0
    }
    # nodedrop's driver polls its stats hashes with HGET and says how often.
    polled = min(int(result.get("poll_hgets", 0)), calls.get("hget", 0))
    if polled:
        calls["hget"] -= polled
    harness = sum(v for k, v in calls.items() if k in harness_names) + polled
    # The harness's own round trips: nodedrop's driver polls with one pipeline
    # (one HGET per partition) and reads INFO twice. The peers' harness commands
    # (a job body's INCR) may share a read with the system's own calls (ioredis
    # pipelines what one tick sends), so they are not taken off: the system's
    # round trips lie between round_trips - harness_commands and round_trips.
    harness_reads = int(result.get("polls", 0)) + calls.get("info", 0) if polled else 0
    if scenario == "latency":
        harness_reads = calls.get("xread", 0)
    own = {k: v for k, v in calls.items() if k not in harness_names}
    per = 1.0 / max(done, 1)
    return {
        "system": system.name,
        "scenario": scenario,
        "executions": done,
        "commands": sum(own.values()) * per,
        "script_calls": sum(v for k, v in own.items() if k in SCRIPT_CALLS) * per,
        "harness_commands": harness * per,
        "in_bytes": (after["in_bytes"] - before["in_bytes"]) * per,
        "out_bytes": (after["out_bytes"] - before["out_bytes"]) * per,
        "cpu_us": (after["cpu_s"] - before["cpu_s"]) * 1e6 * per,
        "round_trips": max(0, after["reads"] - before["reads"] - harness_reads) * per,
        "keys_left": after["keys"] * per,
        "by_command": {k: round(v * per, 3) for k, v in sorted(own.items(), key=lambda kv: -kv[1])},
        # Time inside each command (a script's includes the commands it runs).
        "us_by_command": {
            k: round((after["usec"].get(k, 0) - before["usec"].get(k, 0)) * per, 2) for k in own
        },
        "rate": result.get("rate"),
    }


def _table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| system | scenario | commands | script calls | bytes in | bytes out | Redis CPU µs "
        "| round trips | keys left | top commands |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        top = ", ".join(f"{k} {v:g}" for k, v in list(r["by_command"].items())[:6])
        out.append(
            f"| {r['system']} | {r['scenario']} | {r['commands']:.1f} | {r['script_calls']:.2f} "
            f"| {r['in_bytes']:.0f} | {r['out_bytes']:.0f} | {r['cpu_us']:.0f} "
            f"| {r['round_trips']:.2f} | {r['keys_left']:.2f} | {top} |"
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5_000, help="one-node executions per run")
    parser.add_argument("--chains", type=int, default=1_000, help="five-node executions per run")
    parser.add_argument(
        "--idle",
        type=int,
        default=200,
        help="nodedrop executions run one at a time (its latency driver; 0: none)",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--systems", default="nodedrop,bullmq")
    parser.add_argument("--json", default="", help="also write every run's figures here")
    args = parser.parse_args()
    queue = _queue_module()
    systems = [_system(n) for n in args.systems.split(",") if n]
    port = queue.free_port()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nd-redis-work-") as folder:
        server = queue.start_redis(port, folder)
        client = redis.Redis(host="127.0.0.1", port=port, db=DB)
        try:
            for _ in range(args.rounds):
                for scenario, jobs in (("throughput", args.jobs), ("chain", args.chains)):
                    for system in systems:
                        rows.append(_run(system, scenario, jobs, port, client))
                        print(_table(rows[-1:]).splitlines()[-1], flush=True)
                if args.idle and NODEDROP in systems:
                    rows.append(_run(NODEDROP, "latency", args.idle, port, client))
                    print(_table(rows[-1:]).splitlines()[-1], flush=True)
        finally:
            client.close()
            server.terminate()
            server.wait(10)
    print()
    print(_table(sorted(rows, key=lambda r: (r["scenario"], r["system"]))))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
