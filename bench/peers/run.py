"""make bench: nodedrop-exec and its peer job queues through the same scenarios.

    python bench/peers/run.py [--quick] [--only bullmq,celery,...] [--skip-install]

Installs each peer in its own environment, starts a private redis-server on
a free port (``--shared-redis``: the one on 6379 instead), then for every
system, scenario and round: FLUSHDB of that system's own Redis db (9-15 for
the peers, never another one), run its driver in a subprocess, read one JSON
line, FLUSHDB again. On its own server, the Redis CPU and round trips per job
each driver reads from INFO are that system's alone; on the shared one they
also hold whatever else talks to that server. Writes results/<stamp>.json
(raw rounds, versions, settings, machine load) and the chart
(docs/img/bench-peers.png; a --quick run keeps both under .envs/).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import envs
import redis
import report
import stats
from catalog import PEERS
from scenarios import LISTENERS, Scenario, plan
from systems import NODEDROP, System, system_of

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
DRIVERS = ROOT / "drivers"
SLACK_S = 90.0  # enqueue + start-up + shutdown on top of a round's cap


# The Redis server the drivers use (set once by main).
REDIS_PORT = 6379


def _queue_bench() -> ModuleType:
    """bench/queue.py's process helpers (a private redis-server, a free port)."""
    path = ROOT.parent / "queue.py"
    spec = importlib.util.spec_from_file_location("nd_bench_queue", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flush(db: int) -> None:
    # Our own db numbers only: the server may be shared with other test suites.
    assert db in range(8, 16), db
    client = redis.Redis(host="127.0.0.1", port=REDIS_PORT, db=db)
    client.flushdb()
    client.close()


def _run_round(system: System, scenario: Scenario) -> dict[str, Any]:
    argv = [
        *system.command,
        scenario.name,
        "--jobs",
        str(scenario.jobs),
        "--timeout",
        str(scenario.timeout_s),
    ]
    if scenario.name == "events":
        argv += ["--listeners", str(LISTENERS)]
    env = dict(
        os.environ,
        BENCH_REDIS_DB=str(system.redis_db),
        BENCH_REDIS_PORT=str(REDIS_PORT),
        **system.env,
    )
    _flush(system.redis_db)
    try:
        proc = subprocess.run(
            argv,
            cwd=DRIVERS,
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=scenario.timeout_s + SLACK_S,
        )
    finally:
        _flush(system.redis_db)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    try:
        raw: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        return {"error": f"unreadable driver output: {exc}"}
    return _condense(scenario, raw)


def _condense(scenario: Scenario, raw: dict[str, Any]) -> dict[str, Any]:
    """Per-round figures; raw latency samples are kept except for the events
    scenario, whose 100,000 deliveries are reduced to percentiles."""
    out = dict(raw)
    samples = raw.get("latencies_ms")
    if samples is not None:
        out["p50_ms"] = stats.percentile(samples, 50)
        out["p99_ms"] = stats.percentile(samples, 99)
        if scenario.name == "events":
            del out["latencies_ms"]
    return out


def _metric(scenario: str, rnd: dict[str, Any]) -> dict[str, float]:
    if scenario in ("throughput", "chain"):
        figures = {"rate": rnd["rate"]}
        # CPU per job is missing when no job completed after the first one.
        for key in ("cpu_us_per_job", "redis_cpu_us_per_job", "redis_round_trips_per_job"):
            value = rnd.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                figures[key] = float(value)
        return figures
    if scenario == "latency":
        return {"p50_ms": rnd["p50_ms"], "p99_ms": rnd["p99_ms"]}
    return {
        "p50_ms": rnd["p50_ms"],
        "p99_ms": rnd["p99_ms"],
        "deliveries_per_s": rnd["deliveries_per_s"],
    }


def _summarise(scenario: str, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in rounds if "error" not in r]
    if not good:
        return {"error": rounds[-1].get("error", "no rounds") if rounds else "no rounds"}
    per_round = [_metric(scenario, r) for r in good]
    keys = dict.fromkeys(k for figures in per_round for k in figures)
    out: dict[str, Any] = {
        k: stats.summary([figures[k] for figures in per_round if k in figures]) for k in keys
    }
    out["all_finished"] = all(r.get("finished", False) for r in good)
    out["completed_min"] = min(r.get("completed", 0) for r in good)
    out["rounds_ok"] = len(good)
    return out


def _machine() -> dict[str, Any]:
    info = redis.Redis(host="127.0.0.1", port=REDIS_PORT).info("server")
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "redis": info.get("redis_version"),
        "loadavg_start": os.getloadavg(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--only", default="", help="comma-separated systems to run")
    parser.add_argument("--skip-install", action="store_true")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument(
        "--shared-redis",
        action="store_true",
        help="use the server on 6379 (shared) instead of a private one",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=840.0,
        help="no round starts after this many seconds (default 840: the run ends within 15 min)",
    )
    args = parser.parse_args()

    names = [n for n in args.only.split(",") if n] or [NODEDROP.name, *(p.name for p in PEERS)]
    systems = [system_of(n) for n in names]
    scenarios = plan(args.quick)
    # The drivers log there even when no peer is installed (--only nodedrop).
    envs.ENVS.mkdir(parents=True, exist_ok=True)
    # Installing (first run only) is outside the time budget of the run.
    for system in systems:
        if system.peer is not None and not args.skip_install:
            envs.ensure(system.peer)
    if args.shared_redis:
        return _run_all(args, systems, scenarios)
    global REDIS_PORT  # noqa: PLW0603 - one server for the whole run
    queue_bench = _queue_bench()
    REDIS_PORT = queue_bench.free_port()
    with tempfile.TemporaryDirectory(prefix="nd-bench-redis-") as folder:
        server = queue_bench.start_redis(REDIS_PORT, folder)
        try:
            return _run_all(args, systems, scenarios)
        finally:
            server.terminate()
            server.wait(10)


def _run_all(
    args: argparse.Namespace, systems: list[System], scenarios: tuple[Scenario, ...]
) -> int:
    started = time.time()
    doc: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "quick": args.quick,
        "machine": _machine(),
        "redis": "shared" if args.shared_redis else "private",
        "scenarios": [s.__dict__ for s in scenarios],
        "systems": {},
    }
    for system in systems:
        doc["systems"][system.name] = {
            "settings": system.concurrency,
            "chain": system.chain,
            "versions": system.versions(),
            "redis_db": system.redis_db,
            "scenarios": {},
        }
    rounds: dict[tuple[str, str], list[dict[str, Any]]] = {}
    budget_left = True
    # Round-major order: every system gets its first round before any gets a
    # second, so a change in the machine's load (it is shared) spreads over all
    # systems, and a run that reaches its budget still has every system in it.
    for index in range(max(s.rounds for s in scenarios)):
        for system in systems:
            for scenario in scenarios:
                if index >= scenario.rounds:
                    continue
                if scenario.name == "events" and not system.has_events:
                    continue
                if time.time() - started > args.budget_s:
                    budget_left = False
                    continue
                rnd = _timed_round(system, scenario)
                rounds.setdefault((system.name, scenario.name), []).append(rnd)
                print(
                    f"[bench] {system.name:9} {scenario.name:10} round {index + 1}: "
                    f"{_metric_or_error(scenario.name, rnd)}",
                    file=sys.stderr,
                    flush=True,
                )
    for system in systems:
        entry = doc["systems"][system.name]
        for scenario in scenarios:
            if scenario.name == "events" and not system.has_events:
                entry["scenarios"][scenario.name] = {"skipped": "no progress-event API"}
                continue
            done = rounds.get((system.name, scenario.name), [])
            if not done:
                entry["scenarios"][scenario.name] = {"skipped": "run budget spent"}
                continue
            entry["scenarios"][scenario.name] = {
                "rounds": done,
                "summary": _summarise(scenario.name, done),
            }
    doc["budget_exhausted"] = not budget_left
    doc["machine"]["loadavg_end"] = os.getloadavg()
    doc["duration_s"] = round(time.time() - started, 1)

    # Quick runs are for development and stay out of the repository.
    folder = ROOT / ".envs" / "results" if args.quick else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    path = folder / f"{stamp}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(
        f"[bench] wrote {path.relative_to(ROOT.parent.parent)} in {doc['duration_s']} s",
        file=sys.stderr,
    )
    print(report.table(doc))
    if "nodedrop" in doc["systems"] and "bullmq" in doc["systems"]:
        print("\n".join(report.ratios(doc)))
    if not args.no_chart:
        print(f"[bench] chart: {report.chart(doc, quick=args.quick)}", file=sys.stderr)
    return 0


def _timed_round(system: System, scenario: Scenario) -> dict[str, Any]:
    load = os.getloadavg()[0]  # the machine is shared: kept with each round
    t0 = time.monotonic()
    try:
        rnd = _run_round(system, scenario)
    except subprocess.TimeoutExpired:
        rnd = {"error": "driver exceeded its time cap"}
    rnd["seconds"] = round(time.monotonic() - t0, 2)
    rnd["loadavg_1m"] = load
    if system.peer is None:
        # nodedrop runs from the shared working tree, which other engineers
        # commit to during a run: the code each round ran is kept with it.
        rnd["code"] = system.versions()
    return rnd


def _metric_or_error(scenario: str, rnd: dict[str, Any]) -> dict[str, Any]:
    if "error" in rnd:
        return {"error": rnd["error"]}
    shown: dict[str, Any] = {k: round(v, 2) for k, v in _metric(scenario, rnd).items()}
    if not rnd.get("finished", True):
        shown["completed"] = rnd.get("completed")
    return shown


if __name__ == "__main__":
    raise SystemExit(main())
