"""What the soak checks once the workload has settled, for every acknowledged
execution, against Redis, PostgreSQL and what the watchers saw."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis

from nodedrop.api.failed_rebuild import dead_letter_of
from nodedrop.store import EventRecord, EventType, Keys, decode_entry
from tests.soak.cluster import SoakSettings
from tests.soak.faults import JUDGED_WORKERS, FaultLog
from tests.soak.stalls import StallMonitor
from tests.soak.workload import BY_NAME, Submitted, Watch, expected_outputs

__all__ = ["Report", "check", "redis_logs", "settle"]

TERMINAL = {"completed", "failed", "cancelled", "timed_out"}
JOBS_GROUP = "workers"
HISTORY_GROUP = "history"


@dataclass
class Report:
    figures: dict[str, Any] = field(default_factory=dict)
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def bad(self, category: str, detail: str) -> None:
        self.violations[category].append(detail)

    @property
    def failed(self) -> bool:
        return any(self.violations.values())


@dataclass
class State:
    pg: dict[str, asyncpg.Record]
    pg_events: dict[str, list[asyncpg.Record]]
    redis_seq: dict[str, int]
    redis_events: dict[str, list[EventRecord]]
    failed_queue: set[str]
    job_pending: int
    history_pending: int


async def _read_state(
    dsn: str, redis_url: str, keys: Keys, ids: list[str], *, with_events: bool
) -> State:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT * FROM executions WHERE id = ANY($1::text[])", ids)
        ev_rows = (
            await conn.fetch(
                "SELECT execution_id, sequence, type, node_id, attempt FROM execution_events"
                " WHERE execution_id = ANY($1::text[]) ORDER BY execution_id, sequence",
                ids,
            )
            if with_events
            else []
        )
    finally:
        await conn.close()
    pg_events: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for r in ev_rows:
        pg_events[r["execution_id"]].append(r)
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        pipe = r.pipeline(transaction=False)
        for x in ids:
            pipe.hget(keys.exec(x), "seq")
        seqs = await pipe.execute()
        redis_events: dict[str, list[EventRecord]] = {}
        if with_events:
            pipe = r.pipeline(transaction=False)
            for x in ids:
                pipe.xrange(keys.exec_events(x))
            for x, entries in zip(ids, await pipe.execute(), strict=True):
                if entries:
                    redis_events[x] = [e for _, f in entries for e in decode_entry(f)]
        failed: set[str] = set()
        job_pending = history_pending = 0
        for p in range(keys.partitions):
            failed.update(str(m) for m in await r.zrange(keys.failed(p), 0, -1))
            for name, group in ((keys.jobs(p), JOBS_GROUP), (keys.events(p), HISTORY_GROUP)):
                try:
                    info = await r.xpending(name, group)
                except aioredis.ResponseError:
                    continue
                n = int(info.get("pending", 0))
                if group == JOBS_GROUP:
                    job_pending += n
                else:
                    history_pending += n
    finally:
        await r.aclose()
    return State(
        pg={row["id"]: row for row in rows},
        pg_events=pg_events,
        redis_seq={x: int(s) for x, s in zip(ids, seqs, strict=True) if s is not None},
        redis_events=redis_events,
        failed_queue=failed,
        job_pending=job_pending,
        history_pending=history_pending,
    )


async def redis_logs(redis_url: str, keys: Keys, ids: list[str]) -> dict[str, list[EventRecord]]:
    """Each execution's event log in Redis (kept before the wipe, which loses them)."""
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    out: dict[str, list[EventRecord]] = {}
    try:
        for start in range(0, len(ids), 200):
            chunk = ids[start : start + 200]
            pipe = r.pipeline(transaction=False)
            for x in chunk:
                pipe.xrange(keys.exec_events(x))
            for x, entries in zip(chunk, await pipe.execute(), strict=True):
                if entries:
                    out[x] = [e for _, f in entries for e in decode_entry(f)]
    finally:
        await r.aclose()
    return out


async def settle(
    dsn: str, redis_url: str, keys: Keys, ids: list[str], timeout_s: float
) -> tuple[float, str]:
    """Waits until every execution is terminal in PostgreSQL with its whole history,
    and no job or history entry is pending; returns the time it took and what
    was still missing if it timed out."""
    began = time.monotonic()
    missing = ""
    while time.monotonic() - began < timeout_s:
        try:
            s = await _read_state(dsn, redis_url, keys, ids, with_events=False)
        except (OSError, asyncpg.PostgresError, aioredis.RedisError) as exc:
            missing = f"unreachable: {exc!r}"
            await asyncio.sleep(1)
            continue
        open_ = [x for x in ids if x not in s.pg or s.pg[x]["status"] not in TERMINAL]
        behind = [
            x
            for x in ids
            if x in s.pg and x in s.redis_seq and s.pg[x]["last_sequence"] < s.redis_seq[x]
        ]
        if not open_ and not behind and not s.job_pending and not s.history_pending:
            return time.monotonic() - began, ""
        missing = (
            f"{len(open_)} not terminal, {len(behind)} with history behind, "
            f"{s.job_pending} job entries and {s.history_pending} history entries pending"
        )
        await asyncio.sleep(1)
    return time.monotonic() - began, missing


def _reruns(events: list[tuple[str, str]]) -> list[str]:
    """Nodes started or completed again after they completed (type, node) in order."""
    done: set[str] = set()
    again: list[str] = []
    for typ, node in events:
        if not node:
            continue
        if node in done and typ.upper() in ("NODE_STARTED", "NODE_COMPLETED"):
            again.append(node)
        if typ in ("NODE_COMPLETED", "node_completed"):
            done.add(node)
    return again


def _gap_free(seqs: list[int]) -> bool:
    return seqs == list(range(1, len(seqs) + 1))


_FENCED = re.compile(r"fence refused a write")
_DRAIN_STUCK = re.compile(r"commits still pending at the end of the grace period")


def _log_times(path: Path, pattern: re.Pattern[str]) -> list[float]:
    out: list[float] = []
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        if not pattern.search(line):
            continue
        try:
            ts = orjson.loads(line).get("timestamp", "")
            out.append(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())
        except (orjson.JSONDecodeError, ValueError, AttributeError):
            out.append(0.0)
    return out


def _worker_logs(logdir: Path) -> tuple[dict[str, list[float]], int, int]:
    """When each judged worker was fenced, drains stuck to their grace, all refusals."""
    logs = sorted(logdir.glob("worker*.log"))
    fenced = {name: _log_times(logdir / f"{name}.log", _FENCED) for name in JUDGED_WORKERS}
    stuck = sum(len(_log_times(p, _DRAIN_STUCK)) for p in logs)
    refusals = sum(len(_log_times(p, _FENCED)) for p in logs)
    return fenced, stuck, refusals


async def check(
    *,
    dsn: str,
    redis_url: str,
    keys: Keys,
    submitted: list[Submitted],
    key_conflicts: list[str],
    watches: list[Watch],
    attempts_before_wipe: dict[str, tuple[int, str]],
    logs_before_wipe: dict[str, list[EventRecord]],
    faults: FaultLog,
    logdir: Path,
    settings: SoakSettings,
    report: Report,
    stalls: StallMonitor | None = None,
) -> None:
    lease_s = settings.lease_s
    ids = [s.execution_id for s in submitted]
    st = await _read_state(dsn, redis_url, keys, ids, with_events=True)
    wanted = sorted({(s.kind, s.n) for s in submitted if BY_NAME[s.kind].status == "completed"})
    # Concurrently: the waiting kind waits as long in process as on a worker.
    outputs = await asyncio.gather(*(expected_outputs(BY_NAME[k], n) for k, n in wanted))
    expected: dict[tuple[str, int], Any] = dict(zip(wanted, outputs, strict=True))

    wipes = [r.start for r in faults.records if r.name == "redis_wipe"]
    cancels_lost = 0
    statuses: Counter[str] = Counter()
    history_events = redis_event_count = 0
    for s in submitted:
        x = s.execution_id
        kind = BY_NAME[s.kind]
        row = st.pg.get(x)
        if row is None:
            report.bad("lost", f"{x} ({s.kind}) acknowledged but not in PostgreSQL")
            continue
        status = row["status"]
        statuses[status] += 1
        if status not in TERMINAL:
            report.bad("stuck", f"{x} ({s.kind}) still {status}")
            continue
        want = kind.status
        # A cancel lives in Redis until its event is recorded: one acknowledged
        # just before Redis lost its data, or not yet recorded when it did (a
        # Redis pause holds the recording up), may be lost with it
        # (docs/operations.md).
        lost_to_wipe = s.cancel_acked and (
            any(s.cancel_time <= t <= s.cancel_time + 5.0 for t in wipes)
            or (x in attempts_before_wipe and s.cancel_time <= max(wipes, default=0.0))
        )
        if kind.cancel and (not s.cancel_acked or lost_to_wipe):
            ok = status in ("cancelled", "completed")
            cancels_lost += lost_to_wipe and status == "completed"
        else:
            ok = status == want
        if not ok:
            report.bad("wrong status", f"{x} ({s.kind}) ended {status}, expected {want}")
        if status == "completed" and kind.status == "completed":
            got = orjson.loads(row["result"]) if row["result"] else None
            if got != expected[(s.kind, s.n)]:
                report.bad("wrong output", f"{x} ({s.kind}) output {got!r}")
        if row["attempt"] > row["max_attempts"]:
            report.bad("attempts over max", f"{x} attempt {row['attempt']}/{row['max_attempts']}")
        if status == kind.status and row["attempt"] != kind.final_attempt:
            report.bad(
                "attempts over max",
                f"{x} ({s.kind}) ended at attempt {row['attempt']}, expected {kind.final_attempt}",
            )
        # Redis: the execution's own event log; of an execution that had ended
        # before the wipe, as it was just before it.
        revents = st.redis_events.get(x)
        before_wipe = logs_before_wipe.get(x)
        last = st.redis_seq.get(x, -1)
        if revents is None and before_wipe and before_wipe[-1].type.terminal:
            revents = before_wipe
            last = before_wipe[-1].sequence
        if revents is not None:
            redis_event_count += len(revents)
            seqs = [e.sequence for e in revents]
            if not _gap_free(seqs) or seqs[-1] != last:
                report.bad("redis event gap", f"{x} sequences {seqs[:3]}..{seqs[-3:]}")
            if any(e.attempt > row["max_attempts"] for e in revents):
                report.bad("attempts over max", f"{x} event attempt over max")
            again = _reruns([(e.type.value, e.node_id) for e in revents])
            if again:
                report.bad("completed node re-run", f"{x} ({s.kind}) re-ran {again}")
            # Only a log written after the wipe tells how the execution resumed.
            before = attempts_before_wipe.get(x)
            after_wipe = st.redis_events.get(x) or []
            started = [e.attempt for e in after_wipe if e.type is EventType.EXECUTION_STARTED]
            if before is not None and started and min(started) < before[0]:
                report.bad(
                    "attempt count reset",
                    f"{x} ({s.kind}) was at attempt {before[0]} ({before[1]}) before Redis "
                    f"lost its data, ran attempt {min(started)} after",
                )
        # PostgreSQL history: gap-free from 1, as long as Redis' (when it has it).
        pev = st.pg_events.get(x, [])
        history_events += len(pev)
        pseqs = [int(e["sequence"]) for e in pev]
        if not _gap_free(pseqs) or (pseqs and pseqs[-1] != row["last_sequence"]):
            report.bad(
                "history gap",
                f"{x} ({s.kind}) PostgreSQL holds {len(pseqs)} events, "
                f"sequences {pseqs[:3]}..{pseqs[-3:]}",
            )
        elif revents is not None and len(pseqs) != len(revents):
            report.bad(
                "history gap",
                f"{x} ({s.kind}) PostgreSQL {len(pseqs)} events, Redis {len(revents)}",
            )
        again = _reruns([(str(e["type"]), str(e["node_id"] or "")) for e in pev])
        if again:
            report.bad("completed node re-run", f"{x} ({s.kind}) history re-ran {again}")

    # Duplicates per idempotency key.
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        dups = await conn.fetch(
            "SELECT idempotency_key, count(*) AS n FROM executions"
            " WHERE idempotency_key IS NOT NULL GROUP BY idempotency_key HAVING count(*) > 1"
        )
        failed_rows = await conn.fetch(
            "SELECT * FROM executions WHERE status = 'failed' AND mode = 'queue'"
        )
    finally:
        await conn.close()
    for d in dups:
        report.bad("duplicated", f"idempotency key {d['idempotency_key']} has {d['n']} executions")
    for k in key_conflicts:
        report.bad("duplicated", f"idempotency key {k} answered with two execution ids")

    # Failed queue against PostgreSQL's dead-lettered executions.
    pg_dead = {r["id"] for r in failed_rows if dead_letter_of(r["error"]) is not None}
    only_redis = st.failed_queue - pg_dead
    only_pg = pg_dead - st.failed_queue
    if only_redis or only_pg:
        report.bad(
            "failed queue differs",
            f"{len(only_pg)} dead-lettered in PostgreSQL missing from the failed queue "
            f"(e.g. {sorted(only_pg)[:3]}), {len(only_redis)} only in Redis",
        )

    if st.job_pending:
        report.bad("pending entries", f"{st.job_pending} job stream entries still pending")
    if st.history_pending:
        report.bad("pending entries", f"{st.history_pending} history entries still pending")

    # Watchers: every stream gap-free and in order, and it reached the end.
    watched_events = cut_by_wipe = 0
    # Executions created before a wipe that have a log in Redis now ran again
    # after it: their log starts again from 1 (docs/operations.md, Redis loss).
    first_wipe = min(wipes) if wipes else None
    renumbered = {
        x
        for x in st.redis_events
        if first_wipe is not None and x in st.pg and st.pg[x]["created_at"].timestamp() < first_wipe
    }
    for w in watches:
        watched_events += len(w.sequences)
        across_wipe = not w.terminal and (
            w.execution_id in renumbered or any(w.started_at <= t for t in wipes)
        )
        if not _gap_free(w.sequences):
            report.bad("watcher gap", f"{w.execution_id} saw {w.sequences[:8]}...")
        elif across_wipe:
            cut_by_wipe += 1
        elif not w.terminal:
            report.bad(
                "watcher gap",
                f"{w.execution_id} never saw its end ({len(w.sequences)} events"
                + (", resume point out of range)" if w.out_of_range else ")"),
            )
        if any(b < a for a, b in zip(w.attempts, w.attempts[1:], strict=False)):
            report.bad("attempt count reset", f"{w.execution_id} watcher saw {w.attempts}")

    # A lease lost by a worker outside its own faults and Redis pauses was taken
    # from a healthy worker.
    fenced, stuck_drains, refusals = _worker_logs(logdir)
    healthy_losses = 0
    starved: list[str] = []
    # A stall this long can outlast every renewal of a lease; the refusal is
    # logged up to a reclaim round and a heartbeat after the lease ran out.
    stall_min = lease_s - settings.heartbeat_s
    stall_before = lease_s + settings.reclaim_interval_s + settings.heartbeat_s + 1.0
    for name, times in fenced.items():
        windows = faults.redis_pauses() + [
            (r.start, r.end) for r in faults.records if r.target == name
        ]
        lost: list[float] = []
        for t in times:
            if any(a - 1.0 <= t <= b + 2 * lease_s + 2.0 for a, b in windows):
                continue
            stall = stalls.covering(t, stall_before, stall_min) if stalls else None
            if stall is None:
                lost.append(t)
            else:
                at = time.strftime("%H:%M:%S", time.gmtime(t))
                starved.append(f"{name} at {at} after a {stall[1] - stall[0]:.1f} s stall")
        healthy_losses += len(lost)
        if lost:
            at = ", ".join(time.strftime("%H:%M:%S", time.gmtime(t)) for t in lost[:5])
            report.bad(
                "healthy worker fenced",
                f"{name} lost {len(lost)} leases outside faults ({at}; longest stall of "
                f"the soak's own process {stalls.longest() if stalls else 0.0:.1f} s)",
            )
    for t, detail in faults.healthy_fenced:
        stall = stalls.covering(t, stall_before, stall_min) if stalls else None
        if stall is None:
            report.bad("healthy worker fenced", detail)
        else:
            starved.append(f"{detail}, after a {stall[1] - stall[0]:.1f} s stall")
    if stuck_drains:
        report.bad("slow drain", f"{stuck_drains} drains sat out their grace period")
    # A drain ends once its last attempt ended and was committed; one that
    # lasted the whole grace waited for something nobody was going to do.
    for took, code in zip(faults.drain_seconds, faults.drain_exits, strict=True):
        if took >= settings.grace_s or code != 0:
            grace = settings.grace_s
            report.bad("slow drain", f"a drain took {took:.1f} s (grace {grace:g} s), exit {code}")

    f = report.figures
    f["executions acknowledged"] = len(submitted)
    for k in ("completed", "failed", "cancelled", "timed_out"):
        f[f"  {k}"] = statuses.get(k, 0)
    f["events in Redis logs"] = redis_event_count
    f["events in PostgreSQL history"] = history_events
    f["executions watched"] = len(watches)
    f["events watched"] = watched_events
    f["watch reconnects"] = sum(w.reconnects for w in watches)
    f["watches cut by the Redis wipe"] = cut_by_wipe
    f["failed queue (Redis / PostgreSQL)"] = f"{len(st.failed_queue)} / {len(pg_dead)}"
    f["fence refusals (all workers)"] = refusals
    judged = sum(len(t) for t in fenced.values())
    f["fence refusals of worker1/2"] = f"{judged} ({healthy_losses} outside their faults)"
    if stalls is not None:
        f["longest stall of the soak's own process (s)"] = round(stalls.longest(), 1)
    f["leases of worker1/2 lost to machine stalls"] = f"{len(starved)}" + (
        f" ({'; '.join(starved[:3])})" if starved else ""
    )
    if faults.drain_seconds:
        f["drain time max (s)"] = round(max(faults.drain_seconds), 2)
    f["pauses woken holding a delivery leased elsewhere"] = (
        f"{faults.held_past_lease} ({faults.unjudged_wakes} with a peer's status unread)"
    )
    f["executions resumed after the wipe"] = len(attempts_before_wipe)
    f["cancels lost with the wiped Redis"] = cancels_lost
