"""Fault-injection soak: ``python -m tests.soak`` (``make soak SOAK_ARGS=...``).

Starts a private redis-server and PostgreSQL and every service as its own
process on free 127.0.0.1 ports, submits a mixed workload through the API at
``--rate`` per second with idempotency keys while watchers follow executions
by sequence, injects a fault every few seconds (seeded), then wipes Redis
under a burst of executions, lets everything settle and checks every
acknowledged execution (see docs/operations.md, "Fault soak"). Prints one
table; exits 1 on any violation, 2 when the system could not be started.

    python -m tests.soak                               # the CI form: 60 s
    python -m tests.soak --duration 300 --seed 7       # the 5-minute form
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from nodedrop.store import EventRecord, Keys
from tests.soak.checks import Report, check, redis_logs, settle
from tests.soak.cluster import Cluster, SoakSettings
from tests.soak.faults import ALL_FAULTS, FaultLog, Injector, wipe_redis
from tests.soak.stalls import StallMonitor
from tests.soak.workload import Submitter, Watcher


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load and faults")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", type=float, default=8.0, help="submissions per second")
    p.add_argument("--watchers", type=int, default=5)
    p.add_argument("--faults", default="all", help="comma-separated names, 'all' or 'none'")
    p.add_argument("--fault-gap", default="0.5,1.5", help="min,max seconds between faults")
    p.add_argument("--no-wipe", action="store_true", help="skip the Redis wipe phase")
    p.add_argument(
        "--wipe-burst", type=int, default=80, help="executions submitted around the wipe"
    )
    p.add_argument("--lease", type=float, default=3.0, help="worker lease, seconds")
    p.add_argument("--settle", type=float, default=60.0, help="max seconds to settle")
    p.add_argument("--keep", action="store_true", help="keep the logs even when all passed")
    a = p.parse_args(argv)
    if a.faults == "all":
        a.faults = ALL_FAULTS
    elif a.faults == "none":
        a.faults = ()
    else:
        a.faults = tuple(f.strip() for f in a.faults.split(",") if f.strip())
        unknown = set(a.faults) - set(ALL_FAULTS)
        if unknown:
            p.error(f"unknown faults {sorted(unknown)}; known: {', '.join(ALL_FAULTS)}")
    lo, _, hi = a.fault_gap.partition(",")
    a.fault_gap = (float(lo), float(hi or lo))
    return a


async def _snapshot_attempts(dsn: str) -> dict[str, tuple[int, str]]:
    """Attempt and status PostgreSQL recorded of every unfinished execution."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT id, attempt, status FROM executions"
            " WHERE status IN ('queued', 'running', 'retry_scheduled') AND attempt > 0"
        )
    finally:
        await conn.close()
    out: dict[str, tuple[int, str]] = {}
    for r in rows:
        # A recorded retry means the next attempt is due: it may start there.
        a = int(r["attempt"]) + (1 if r["status"] == "retry_scheduled" else 0)
        out[r["id"]] = (a, str(r["status"]))
    return out


async def _watch_loop(
    watcher: Watcher,
    submitter: Submitter,
    rng: random.Random,
    stop: asyncio.Event,
    seen: set[str],
) -> None:
    for _ in range(100_000):
        if stop.is_set():
            return
        fresh = [s for s in submitter.submitted[-50:] if s.execution_id not in seen]
        if not fresh:
            await asyncio.sleep(0.2)
            continue
        s = rng.choice(fresh)
        seen.add(s.execution_id)
        await watcher.follow(s.execution_id, time.monotonic() + 90)


async def run(a: argparse.Namespace) -> int:
    rng = random.Random(a.seed)
    workdir = Path(tempfile.mkdtemp(prefix="nd-soak-"))
    settings = SoakSettings(
        lease_s=a.lease,
        heartbeat_s=max(0.2, a.lease / 3),
        reclaim_interval_s=max(0.2, a.lease / 3),
        history_claim_idle_s=max(1.0, a.lease + 1),
    )
    cluster = Cluster(settings, workdir)
    faults = FaultLog()
    report = Report()
    stalls = StallMonitor()
    began = time.monotonic()
    print(f"soak: seed {a.seed}, {a.duration:g} s, logs in {workdir}", flush=True)
    try:
        try:
            await cluster.start()
        except Exception as exc:
            print(f"soak: could not start the system: {exc}", file=sys.stderr)
            return 2
        print(f"soak: system up in {time.monotonic() - began:.1f} s", flush=True)
        target = cluster.addrs["api"]
        submitter = Submitter(target, cluster.api_key, random.Random(rng.random()), a.rate)
        watchers = [Watcher(cluster.addrs["events"], cluster.api_key) for _ in range(a.watchers)]
        injector = Injector(cluster, random.Random(rng.random()), faults, a.faults, submitter)
        stop_load, stop_faults, stop_watch = asyncio.Event(), asyncio.Event(), asyncio.Event()
        seen: set[str] = set()
        watch_tasks = [
            asyncio.create_task(
                _watch_loop(w, submitter, random.Random(rng.random()), stop_watch, seen)
            )
            for w in watchers
        ]
        load = asyncio.create_task(
            submitter.run(stop_load, max_count=int(a.rate * a.duration) + 10 * a.wipe_burst)
        )
        fault_task = asyncio.create_task(injector.run(stop_faults, a.fault_gap))
        stop_monitor = asyncio.Event()
        monitor = asyncio.create_task(stalls.run(stop_monitor, a.duration + a.settle + 120.0))
        await asyncio.sleep(a.duration)
        stop_faults.set()
        await fault_task
        attempts_before_wipe: dict[str, tuple[int, str]] = {}
        logs_before_wipe: dict[str, list[EventRecord]] = {}
        if not a.no_wipe:
            # A burst, then Redis restarts empty under it; orphan recovery re-enqueues.
            submitter.rate_per_s = max(a.rate, a.wipe_burst / 4)
            await asyncio.sleep(2.0)
            attempts_before_wipe = await _snapshot_attempts(cluster.database_url)
            assert cluster.redis is not None
            logs_before_wipe = await redis_logs(
                cluster.redis.url,
                Keys(cluster.prefix, settings.partitions),
                [s.execution_id for s in submitter.submitted],
            )
            await wipe_redis(cluster, faults)
            await asyncio.sleep(2.0)
        stop_load.set()
        await load
        assert cluster.redis is not None
        keys = Keys(cluster.prefix, settings.partitions)
        ids = [s.execution_id for s in submitter.submitted]
        took, missing = await settle(
            cluster.database_url, cluster.redis.url, keys, ids, timeout_s=a.settle
        )
        print(f"soak: settled in {took:.1f} s {missing}", flush=True)
        stop_monitor.set()
        await monitor
        stop_watch.set()
        # Every execution has ended: a watch still open now is cut by the wipe or
        # will never see its end (a violation the check reports).
        await asyncio.wait(watch_tasks, timeout=5)
        for t in watch_tasks:
            t.cancel()
        print(f"soak: watchers done at {time.monotonic() - began:.1f} s", flush=True)
        report.figures["settled in (s)"] = round(took, 1) if not missing else f"no: {missing}"
        await check(
            dsn=cluster.database_url,
            redis_url=cluster.redis.url,
            keys=keys,
            submitted=submitter.submitted,
            key_conflicts=submitter.key_conflicts,
            watches=[w for wt in watchers for w in wt.watches],
            attempts_before_wipe=attempts_before_wipe,
            logs_before_wipe=logs_before_wipe,
            faults=faults,
            logdir=workdir,
            settings=settings,
            report=report,
            stalls=stalls,
        )
        print(f"soak: checked at {time.monotonic() - began:.1f} s", flush=True)
        report.figures["submissions never acknowledged"] = submitter.unacknowledged
        report.figures["submission calls retried"] = submitter.retried_calls
        report.figures["faults injected"] = len(faults.records)
        for name in sorted({r.name for r in faults.records}):
            report.figures[f"  {name}"] = sum(1 for r in faults.records if r.name == name)
    finally:
        await cluster.close()
    report.figures["wall time (s)"] = round(time.monotonic() - began, 1)
    _print(report)
    if report.failed or a.keep:
        print(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if report.failed else 0


CATEGORIES = (
    "lost",
    "stuck",
    "duplicated",
    "wrong status",
    "wrong output",
    "attempts over max",
    "attempt count reset",
    "completed node re-run",
    "redis event gap",
    "history gap",
    "watcher gap",
    "pending entries",
    "failed queue differs",
    "healthy worker fenced",
    "slow drain",
)


def _print(report: Report) -> None:
    rows = [(k, str(v)) for k, v in report.figures.items()]
    rows += [(f"violations: {c}", str(len(report.violations.get(c, [])))) for c in CATEGORIES]
    width = max(len(k) for k, _ in rows)
    print()
    print(f"| {'figure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for k, v in rows:
        print(f"| {k.ljust(width)} | {v} |")
    for c, items in report.violations.items():
        for item in items[:5]:
            print(f"VIOLATION {c}: {item}")
        if len(items) > 5:
            print(f"VIOLATION {c}: ... {len(items) - 5} more")
    print("soak: " + ("FAILED" if report.failed else "passed"))


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
