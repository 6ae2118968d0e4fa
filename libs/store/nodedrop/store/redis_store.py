"""Redis adapter of JobQueue, StateStore and EventLog (one object implements all three).

Every call that touches several executions is one pipeline of EVALSHAs: a worker
pays one round trip per stage of a read batch, not one per execution.

Every round trip goes through ``_pipe``, ``_command`` or ``_run``, and those
three turn redis-py's connection, timeout and loading errors into the store's
``Unavailable``: no caller sees a redis-py exception for an outage.
"""

from __future__ import annotations

import contextlib
import heapq
import time
from collections.abc import AsyncGenerator, Awaitable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, cast

import hiredis
import redis.asyncio as aioredis
import structlog
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterUnreachableError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from nodedrop.store.config import PARK_RANK, SWEEP_TENANTS, StoreConfig
from nodedrop.store.errors import (
    InvalidJob,
    Misconfigured,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from nodedrop.store.keys import JOBS_GROUP
from nodedrop.store.model import (
    Acquired,
    Commit,
    CommitResult,
    Delivery,
    EnqueueResult,
    ExecutionContext,
    ExecutionStatus,
    FailedJob,
    JobSpec,
    LaneStats,
    Lease,
    QueueStats,
    ReclaimReport,
    Renewal,
    RestoredFailure,
    StateSnapshot,
    TailEntry,
    Transition,
    cancel_error,
)
from nodedrop.store.ports import TailCursor
from nodedrop.store.records import (
    DECODE_ERRORS,
    EVENT_FIELD,
    EventDraft,
    EventError,
    EventRecord,
    decode_entry,
    decode_value,
    event_tail,
)
from nodedrop.store.scripts import SCRIPTS, LuaScript
from nodedrop.store.validation import validate_spec

log = structlog.get_logger("nodedrop.store")

_Call = tuple[LuaScript, str, list[Any]]
# URL scheme of a Redis Cluster: redis+cluster://host:port,host:port,...
CLUSTER_SCHEME = "redis+cluster"
# Counting waiting entries by hand (when Redis has no lag) stops here.
_MAX_COUNTED = 100_000
_StreamIds = dict[Any, Any]
# XREADGROUP reply with the callback bypassed: [[stream, [[id, [k, v, ...]], ...]], ...]
_RawStreams = list[tuple[str, list[tuple[str, list[str]]]]] | None


def _draft_args(d: EventDraft) -> list[str]:
    return [d.type.value, d.node_id, d.data_json, d.error.to_json() if d.error else ""]


# Entries one take script call asks its partition for, when the refill is small.
_TAKE_PER_PARTITION = 8

_T = TypeVar("_T")

# An outage, not a refusal: the server is down or unreachable, did not answer in
# time, is still loading its data set (BusyLoadingError is a ConnectionError),
# is a replica since a failover (READONLY), or is full (OOM: memory comes back as
# executions end and their keys expire).  The same call may succeed later.
# OSError: a socket error redis-py let through (asyncio's TimeoutError is one).
# On Redis Cluster also: no seed answers, a slot has no master (CLUSTERDOWN,
# MASTERDOWN, a slot not covered while a failover runs), or a slot is still
# migrating (TRYAGAIN) after the client's own retries.
_DOWN: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,
    OutOfMemoryError,
    OSError,
    RedisClusterUnreachableError,
    SlotNotCoveredError,
    ClusterError,
    TryAgainError,
)


def _unavailable(e: BaseException) -> Unavailable:
    return Unavailable(f"redis unavailable: {type(e).__name__}: {e}")


async def _run(call: Awaitable[_T]) -> _T:
    """A redis-py command or pipeline, its outage errors as ``Unavailable``."""
    try:
        return await call
    except _DOWN as e:
        raise _unavailable(e) from e


class RedisStore:
    """Needs a client created with ``decode_responses=True`` (``from_url`` does that)."""

    def __init__(self, client: aioredis.Redis | RedisCluster, config: StoreConfig) -> None:
        self._r = client
        self.config = config
        self._k = config.keys
        self._streams = [
            (p, lane, self._k.jobs(p, lane))
            for lane in config.lanes
            for p in range(self._k.partitions)
        ]
        self._lane_rank = {lane: i for i, lane in enumerate(config.lanes)}
        self._by_stream = {name: (p, lane) for p, lane, name in self._streams}
        names = [name for _, _, name in self._streams]
        self._read_tail = ("STREAMS", *names, *[">"] * len(names))
        self._event_streams = [self._k.events(p) for p in range(self._k.partitions)]
        self._event_partition = {name: p for p, name in enumerate(self._event_streams)}
        self._groups_ready: set[str] = set()
        self._take_from = 0
        # Job entries are parsed positionally (fields x, a, tp, t in that order):
        # the generic reply callback builds a dict per entry, on a worker's hot
        # path (docs/benchmarks.md, Queue).
        client.set_response_callback("XREADGROUP", _raw_reply)

    @classmethod
    def from_url(cls, url: str, config: StoreConfig, *, max_connections: int = 64) -> RedisStore:
        """The adapter the URL names: ``redis+cluster://host:port,...`` a Redis
        Cluster (any of its nodes as seeds, nodedrop.store.redis_cluster), else one
        Redis (``redis://``, ``rediss://``, ``unix://``).  Nothing is connected yet."""
        if url.startswith(f"{CLUSTER_SCHEME}://"):
            # Imported here: the cluster adapter is built on this module.
            from nodedrop.store.redis_cluster import RedisClusterStore  # noqa: PLC0415

            return RedisClusterStore.from_cluster_url(url, config, max_connections=max_connections)
        extra: dict[str, Any] = {}
        if url.startswith("redis://"):
            extra["connection_class"] = _FastConnection
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            protocol=2,
            max_connections=max_connections,
            # No per-reply timeout object: blocking reads are bounded by BLOCK, and a
            # dead server resets the connection (keepalive catches a silent one).
            socket_timeout=None,
            socket_keepalive=True,
            health_check_interval=30,
            # One immediate retry, for a pooled connection a restarted server
            # closed; past that an outage is the caller's to wait out, with its
            # own retry policy (nodedrop.common.retry), not redis-py's.
            retry=Retry(NoBackoff(), 1),
            **extra,
        )
        return cls(client, config)

    async def connect(self) -> None:
        """Check the server answers and is what the URL says, check the partition
        count, load the scripts, create the job streams' group."""
        await _run(self._r.ping())
        await self._check_server()
        await self.check_partitions()
        await self.load_scripts()
        await self.ensure_groups()

    async def _check_server(self) -> None:
        # A cluster node answers a single-node client until the first key of a
        # slot it does not own: refuse it at start, not with MOVED errors later.
        info: dict[str, Any] = await _run(self._r.info("cluster"))
        if str(info.get("cluster_enabled", 0)) == "1":
            raise Misconfigured(
                "REDIS_URL points at a Redis Cluster node: use "
                "redis+cluster://host:port,host:port,... (docs/operations.md, Redis Cluster)"
            )

    async def check_partitions(self) -> None:
        """Record the partition count on first start; refuse a different one later.

        Executions are placed by ``crc32(id) % partitions``: another count would
        look for every running execution in the wrong partition."""
        key = self._k.partition_count()
        wanted = self._k.partitions
        stored: str | None = await _run(self._r.get(key))  # type: ignore[arg-type]
        if stored is None:
            # Data from before the count was recorded: every start creates the job
            # stream of each partition, so the streams tell the count it ran with.
            last, beyond = self._k.jobs(wanted - 1), self._k.jobs_past_last()
            pipe = self._r.pipeline(transaction=False)
            for name in (self._k.jobs(0), last, beyond):
                pipe.exists(name)
            first, has_last, has_beyond = await _run(pipe.execute())
            if first and (not has_last or has_beyond):
                raise Misconfigured(
                    f"NODEDROP_PARTITIONS is {wanted} but this Redis holds the job streams "
                    f"of {'more' if has_beyond else 'fewer'} partitions; set it to the "
                    "count the deployment ran with (docs/redis-layout.md, Partitions)"
                )
            await _run(self._r.set(key, wanted, nx=True))
            stored = await _run(self._r.get(key))  # type: ignore[arg-type]
        if stored is not None and int(stored) != wanted:
            raise Misconfigured(
                f"NODEDROP_PARTITIONS is {wanted} but this deployment's Redis was "
                f"created with {stored} partitions; the count cannot change on a live "
                "deployment (docs/redis-layout.md, Partitions)"
            )

    @property
    def client(self) -> aioredis.Redis | RedisCluster:
        return self._r

    async def close(self) -> None:
        await self._r.aclose()

    # -- plumbing ---------------------------------------------------------------

    async def load_scripts(self) -> None:
        pipe = self._r.pipeline(transaction=False)
        for s in SCRIPTS.values():
            pipe.script_load(s.source)
        await _run(pipe.execute())

    async def _eval(self, calls: Sequence[_Call]) -> list[Any]:
        """EVALSHA every call in one pipeline; on NOSCRIPT (a restarted or flushed
        Redis) load the scripts and rerun only the calls that did not run."""
        if not calls:
            return []
        results = await self._pipe(calls)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            await self.load_scripts()
            again = await self._pipe([calls[i] for i in missing])
            for i, r in zip(missing, again, strict=True):
                results[i] = r
        for r in results:
            if isinstance(r, Exception):
                if isinstance(r, _DOWN):
                    raise _unavailable(r) from r
                raise r
        return results

    async def _command(self, *args: Any, raw: bool = False) -> Any:
        """One command packed by hiredis, its reply as the parser gives it (bytes
        left undecoded with ``raw``)."""
        # The cluster adapter sends through its own client (it overrides this).
        pool = cast(aioredis.Redis, self._r).connection_pool
        try:
            conn = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                await conn.send_packed_command(hiredis.pack_command(args))
                return await conn.read_response(disable_decoding=raw)
            except ResponseError:
                raise  # an error reply: the connection is still in step
            except BaseException:
                # Cancelled or broken mid-reply: never reuse a half-read connection.
                await conn.disconnect()
                raise
            finally:
                await pool.release(conn)
        except _DOWN as e:
            raise _unavailable(e) from e

    async def _pipe(self, calls: Sequence[_Call]) -> list[Any]:
        """EVALSHAs packed by hiredis into one write, replies read in order.

        redis-py's pipeline costs more Python per command than Redis spends on a
        script; this keeps only what a batch of EVALSHAs needs.  An error reply
        is returned in place (the connection stays in step); a broken connection
        is dropped, never reused half-read.
        """
        # The cluster adapter sends through its own client (it overrides this).
        pool = cast(aioredis.Redis, self._r).connection_pool
        try:
            conn = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                await conn.send_packed_command(
                    b"".join(
                        hiredis.pack_command(("EVALSHA", script.sha, 1, key, *args))
                        for script, key, args in calls
                    )
                )
                out: list[Any] = []
                for _ in calls:
                    try:
                        out.append(await conn.read_response())
                    except ResponseError as e:
                        out.append(e)
                return out
            except BaseException:
                await conn.disconnect()
                raise
            finally:
                await pool.release(conn)
        except _DOWN as e:
            raise _unavailable(e) from e

    async def _unless_group_lost(self, call: Awaitable[_T]) -> _T | None:
        """The call's reply, or None when the job streams' group was gone: Redis lost
        its data (a restart without persistence); the group is recreated for the
        next call."""
        try:
            return await call
        except ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            self._groups_ready.discard(JOBS_GROUP)
            await self.ensure_groups()
            return None

    async def ensure_groups(self) -> None:
        """Create the worker group on every job stream (MKSTREAM); idempotent."""
        pipe = self._r.pipeline(transaction=False)
        for _, _, name in self._streams:
            pipe.xgroup_create(name, JOBS_GROUP, id="0", mkstream=True)
        for r in await _run(pipe.execute(raise_on_error=False)):
            if isinstance(r, ResponseError) and "BUSYGROUP" not in str(r):
                raise r
        self._groups_ready.add(JOBS_GROUP)

    # -- JobQueue ---------------------------------------------------------------

    async def enqueue(self, spec: JobSpec, now_ms: int) -> EnqueueResult:
        return (await self.enqueue_many([spec], now_ms))[0]

    async def enqueue_many(self, specs: Sequence[JobSpec], now_ms: int) -> list[EnqueueResult]:
        calls: list[_Call] = []
        cap = self.config.tenant_cap
        for spec in specs:
            validate_spec(spec)
            p = self._k.partition(spec.execution_id)
            lane = self.config.lane_of(spec.priority)
            args = self._context_args(p, spec, lane)
            args += [
                spec.run_at_ms,
                now_ms,
                self.config.state_ttl_s,
                self.config.events_maxlen,
                len(spec.completed_outputs),
            ]
            for node, out in spec.completed_outputs.items():
                args += [node, out]
            args += [spec.attempt, spec.attempt_base, cap, self.config.lane_rank(lane)]
            calls.append((SCRIPTS["enqueue"], self._k.exec_in(p, spec.execution_id), args))
        results = await self._eval(calls)
        return [
            EnqueueResult(s.execution_id, ExecutionStatus(r[1]), bool(r[0]))
            for s, r in zip(specs, results, strict=True)
        ]

    async def read_jobs(self, consumer: str, count: int, block_ms: int) -> list[Delivery]:
        if JOBS_GROUP not in self._groups_ready:
            await self.ensure_groups()
        # COUNT applies per stream: spread the wanted total over them, so one worker
        # does not take (and sit on) what other workers could run now.
        per_stream = max(1, -(-count // len(self._streams)))
        args: list[Any] = ["XREADGROUP", "GROUP", JOBS_GROUP, consumer, "COUNT", per_stream]
        if block_ms:
            args += ["BLOCK", block_ms]
        # Sent raw: redis-py's command path (retry wrapper, reply callbacks) cost
        # a worker more than the read itself when batches are small.
        resp: _RawStreams | None = await self._unless_group_lost(
            self._command(*args, *self._read_tail)
        )
        if resp is None:
            return []
        out: list[Delivery] = []
        for stream, entries in resp or ():
            p, lane = self._by_stream[stream]
            for entry_id, f in entries:
                if not f:
                    continue
                if f[0] == "x" and len(f) == 8:
                    x, a, tp, t = f[1], f[3], f[5], f[7]
                else:
                    d = dict(zip(f[::2], f[1::2], strict=True))
                    x, a, tp, t = d["x"], d["a"], d.get("tp", ""), d.get("t", "0")
                out.append(Delivery(p, lane, entry_id, x, int(a), tp, int(t)))
        # Higher lanes first; XREADGROUP returns streams in request order already.
        out.sort(key=lambda d: self._lane_rank[d.lane])
        return out

    async def trim(self) -> int:
        """Drop acknowledged entries from every job stream (the scheduler calls it)."""
        calls: list[_Call] = [(SCRIPTS["trim"], name, []) for _, _, name in self._streams]
        try:
            return sum(int(r) for r in await self._eval(calls))
        except ResponseError as e:
            if "NOGROUP" not in str(e) and "no such key" not in str(e):
                raise
            return 0

    async def touch(self, deliveries: Sequence[Delivery], consumer: str) -> None:
        if not deliveries:
            return
        pipe = self._r.pipeline(transaction=False)
        for d in deliveries:
            name = self._k.jobs(d.partition, d.lane)
            pipe.xclaim(name, JOBS_GROUP, consumer, 0, [d.entry_id], justid=True)
        await _run(pipe.execute())

    async def requeue(self, deliveries: Sequence[Delivery]) -> int:
        by_stream: dict[str, list[Any]] = {}
        for d in deliveries:
            by_stream.setdefault(self._k.jobs(d.partition, d.lane), []).extend(
                [d.entry_id, d.execution_id, d.attempt, d.traceparent, d.enqueued_at_ms]
            )
        calls: list[_Call] = [(SCRIPTS["requeue"], k, a) for k, a in by_stream.items()]
        return sum(int(r) for r in await self._eval(calls))

    async def release(self, leases: Sequence[Lease]) -> list[bool]:
        now = _now_ms()
        calls: list[_Call] = [
            (
                SCRIPTS["release"],
                self._k.exec(lz.execution_id),
                [self._k.base(lz.partition), lz.execution_id, lz.fence, lz.lane, lz.entry_id, now],
            )
            for lz in leases
        ]
        return [bool(r) for r in await self._eval(calls)]

    async def move_due(self, now_ms: int, limit: int) -> int:
        calls: list[_Call] = [
            (
                SCRIPTS["move_due"],
                self._k.delayed(p),
                [
                    self._k.base(p),
                    now_ms,
                    limit,
                    self.config.tenant_cap,
                    SWEEP_TENANTS,
                    *self.config.lanes,
                ],
            )
            for p in range(self._k.partitions)
        ]
        return sum(int(r) for r in await self._eval(calls))

    async def reclaim(self, min_idle_ms: int, max_reclaims: int, limit: int) -> ReclaimReport:
        if JOBS_GROUP not in self._groups_ready:
            await self.ensure_groups()
        now = _now_ms()
        calls: list[_Call] = [
            (
                SCRIPTS["reclaim"],
                name,
                [
                    self._k.base(p),
                    lane,
                    min_idle_ms,
                    max_reclaims,
                    limit,
                    now,
                    self.config.events_maxlen,
                    self.config.tenant_cap,
                ],
            )
            for p, lane, name in self._streams
        ]
        results = await self._unless_group_lost(self._eval(calls))
        if results is None:
            return ReclaimReport()
        return ReclaimReport(
            requeued=sum(int(r[0]) for r in results),
            dead_lettered=sum(int(r[1]) for r in results),
            dropped=sum(int(r[2]) for r in results),
        )

    async def pending(self) -> int:
        pipe = self._r.pipeline(transaction=False)
        for _, _, name in self._streams:
            pipe.xpending(name, JOBS_GROUP)
        total = 0
        for r in await _run(pipe.execute(raise_on_error=False)):
            if isinstance(r, dict):
                total += int(r.get("pending", 0))
        return total

    async def list_failed(self, limit: int, after: str) -> tuple[list[FailedJob], str]:
        if limit <= 0:
            raise InvalidJob("page_size", "must be positive")
        after_score, after_id = _parse_token(after)
        windows = [limit + 1] * self._k.partitions
        if after:
            # Entries with the token's score may come before or after it, and one
            # commit round dead-letters a whole batch at the same millisecond:
            # each partition's window reaches past all of that score's entries.
            pipe = self._r.pipeline(transaction=False)
            for p in range(self._k.partitions):
                pipe.zcount(self._k.failed(p), after_score, after_score)
            same = await _run(pipe.execute())
            windows = [limit + 1 + int(n) for n in same]
        pipe = self._r.pipeline(transaction=False)
        for p in range(self._k.partitions):
            pipe.zrangebyscore(
                self._k.failed(p), after_score, "+inf", start=0, num=windows[p], withscores=True
            )
        per_partition = await _run(pipe.execute())
        merged = heapq.merge(
            *[[(int(s), m) for m, s in part] for part in per_partition],
        )
        page: list[tuple[int, str]] = []
        for score, member in merged:
            if (score, member) <= (after_score, after_id):
                continue
            page.append((score, member))
            if len(page) > limit:
                break
        more = len(page) > limit
        page = page[:limit]
        pipe = self._r.pipeline(transaction=False)
        for _, member in page:
            pipe.hmget(self._k.exec(member), "tn", "w", "a", "fr", "fn")
        details = await _run(pipe.execute())
        jobs = [
            FailedJob(
                execution_id=member,
                tenant_id=d[0] or "",
                workflow_id=d[1] or "",
                attempts=int(d[2] or 0),
                reason=d[3] or "state expired",
                node_id=d[4] or "",
                fail_time_ms=score,
            )
            for (score, member), d in zip(page, details, strict=True)
        ]
        token = f"{page[-1][0]}:{page[-1][1]}" if more and page else ""
        return jobs, token

    async def retry_failed(self, execution_ids: Sequence[str], all_: bool, now_ms: int) -> int:
        ids = list(execution_ids)
        if all_:
            pipe = self._r.pipeline(transaction=False)
            for p in range(self._k.partitions):
                pipe.zrange(self._k.failed(p), 0, -1)
            ids = [m for part in await _run(pipe.execute()) for m in part]
        calls: list[_Call] = []
        for x in ids:
            p = self._k.partition(x)
            calls.append(
                (
                    SCRIPTS["retry_failed"],
                    self._k.exec(x),
                    [
                        self._k.base(p),
                        x,
                        now_ms,
                        self.config.events_maxlen,
                        self.config.state_ttl_s,
                        self.config.tenant_cap,
                        *self.config.lanes,
                    ],
                )
            )
        return sum(int(r) for r in await self._eval(calls))

    async def purge_failed(self, execution_ids: Sequence[str], all_: bool) -> int:
        by_partition: dict[int, list[str]] = {}
        for x in execution_ids:
            by_partition.setdefault(self._k.partition(x), []).append(x)
        parts = range(self._k.partitions) if all_ else by_partition.keys()
        calls: list[_Call] = [
            (
                SCRIPTS["purge_failed"],
                self._k.failed(p),
                [self._k.base(p), self.config.completion_ttl_s, "1" if all_ else "0"]
                + ([] if all_ else by_partition[p]),
            )
            for p in parts
        ]
        return sum(int(r) for r in await self._eval(calls))

    async def failed_queue_lost(self) -> bool:
        """True until ``mark_failed_queue_rebuilt``, and again after Redis lost its data."""
        return not await _run(self._r.exists(self._k.data_marker()))

    async def mark_failed_queue_rebuilt(self) -> None:
        await _run(self._r.set(self._k.data_marker(), str(_now_ms())))

    def _context_args(self, p: int, spec: JobSpec, lane: int) -> list[Any]:
        """The execution context's arguments, first in both `enqueue` and `restore_failed`."""
        return [
            self._k.base(p),
            spec.execution_id,
            spec.tenant_id,
            spec.workflow_id,
            spec.workflow_json,
            spec.trigger_json,
            lane,
            spec.max_attempts,
            repr(spec.backoff_s),
            repr(spec.timeout_s),
            spec.traceparent,
        ]

    async def restore_failed(self, items: Sequence[RestoredFailure]) -> int:
        """Puts each back in the failed queue unless Redis knows the execution."""
        calls: list[_Call] = []
        for item in items:
            spec = item.spec
            validate_spec(spec)
            p = self._k.partition(spec.execution_id)
            args = self._context_args(p, spec, self.config.lane_of(spec.priority))
            args += [
                self.config.state_ttl_s,
                spec.attempt,
                spec.attempt_base,
                item.last_sequence,
                item.reason,
                item.failed_node,
                item.fail_time_ms,
                len(spec.completed_outputs),
            ]
            for node, out in spec.completed_outputs.items():
                args += [node, out]
            calls.append((SCRIPTS["restore_failed"], self._k.exec_in(p, spec.execution_id), args))
        return sum(int(r) for r in await self._eval(calls))

    async def stats(self, now_ms: int) -> QueueStats:
        pipe = self._r.pipeline(transaction=False)
        for _, _, name in self._streams:
            pipe.xlen(name)
            pipe.xpending(name, JOBS_GROUP)
            pipe.xinfo_groups(name)
        for p in range(self._k.partitions):
            pipe.zcard(self._k.delayed(p))
            pipe.zcard(self._k.failed(p))
            pipe.hget(self._k.stats(p), ExecutionStatus.COMPLETED.value)
        res = await _run(pipe.execute(raise_on_error=False))
        waiting_by_lane: dict[int, int] = dict.fromkeys(self.config.lanes, 0)
        oldest_by_lane: dict[int, int] = dict.fromkeys(self.config.lanes, 0)
        active = 0
        heads: list[tuple[int, str, str]] = []
        uncounted: list[tuple[int, str, str]] = []
        for i, (_, lane, name) in enumerate(self._streams):
            pend, groups = res[3 * i + 1], res[3 * i + 2]
            if not isinstance(groups, list):
                continue
            group = next((g for g in groups if g["name"] == JOBS_GROUP), None)
            if group is None:
                continue
            active += int(pend.get("pending", 0)) if isinstance(pend, dict) else 0
            last = group["last-delivered-id"]
            # The group's lag is what was never delivered; Redis leaves it unset
            # when it cannot tell (then the entries after the last delivery count).
            lag = group.get("lag")
            if lag is None:
                uncounted.append((lane, name, last))
            else:
                waiting_by_lane[lane] += int(lag)
            if lag is None or int(lag) > 0:
                heads.append((lane, name, last))
        if heads or uncounted:
            pipe = self._r.pipeline(transaction=False)
            for _, name, last in heads:
                pipe.xrange(name, min=f"({last}", max="+", count=1)
            for _, name, last in uncounted:
                pipe.xrange(name, min=f"({last}", max="+", count=_MAX_COUNTED)
            replies = await _run(pipe.execute())
            for (lane, _, _), entries in zip(heads, replies[: len(heads)], strict=True):
                if entries:
                    age = max(0, now_ms - int(entries[0][0].split("-")[0]))
                    oldest_by_lane[lane] = max(oldest_by_lane[lane], age)
            for (lane, _, _), entries in zip(uncounted, replies[len(heads) :], strict=True):
                waiting_by_lane[lane] += len(entries)
        await self._add_parked(now_ms, waiting_by_lane, oldest_by_lane)
        base = 3 * len(self._streams)
        delayed = failed = completed = 0
        for p in range(self._k.partitions):
            delayed += int(res[base + 3 * p])
            failed += int(res[base + 3 * p + 1])
            completed += int(res[base + 3 * p + 2] or 0)
        lanes = tuple(
            LaneStats(lane, waiting_by_lane[lane], oldest_by_lane[lane])
            for lane in self.config.lanes
        )
        return QueueStats(
            waiting=sum(waiting_by_lane.values()),
            active=active,
            delayed=delayed,
            completed=completed,
            failed=failed,
            oldest_waiting_age_ms=max(oldest_by_lane.values()),
            lanes=lanes,
            partitions=self._k.partitions,
        )

    async def _add_parked(
        self, now_ms: int, waiting: dict[int, int], oldest: dict[int, int]
    ) -> None:
        """Parked jobs wait too: counted per lane, their age from their arrival."""
        pipe = self._r.pipeline(transaction=False)
        for p in range(self._k.partitions):
            pipe.smembers(self._k.parked(p))
        parked = [(p, t) for p, ts in enumerate(await _run(pipe.execute())) for t in sorted(ts)]
        if not parked:
            return
        lanes = self.config.lanes
        pipe = self._r.pipeline(transaction=False)
        for p, tenant in parked:
            key = self._k.park(p, tenant)
            for rank in range(len(lanes)):
                low, high = rank * PARK_RANK, (rank + 1) * PARK_RANK
                pipe.zcount(key, low, f"({high}")
                pipe.zrangebyscore(key, low, f"({high}", start=0, num=1, withscores=True)
        replies = iter(await _run(pipe.execute()))
        for _ in parked:
            for rank, lane in enumerate(lanes):
                waiting[lane] += int(next(replies))
                for _, score in next(replies):
                    age = max(0, now_ms - (int(score) - rank * PARK_RANK))
                    oldest[lane] = max(oldest[lane], age)

    # -- StateStore -------------------------------------------------------------

    async def acquire(
        self, deliveries: Sequence[Delivery], lease_ms: int, now_ms: int, consumer: str = ""
    ) -> list[Acquired]:
        calls: list[_Call] = [
            (
                SCRIPTS["acquire"],
                self._k.exec_in(d.partition, d.execution_id),
                [
                    self._k.base(d.partition),
                    d.execution_id,
                    d.lane,
                    d.entry_id,
                    d.attempt,
                    now_ms,
                    self.config.events_maxlen,
                    self.config.completion_ttl_s,
                    consumer,
                ],
            )
            for d in deliveries
        ]
        return [_acquired(d, r) for d, r in zip(deliveries, await self._eval(calls), strict=True)]

    def _take_plan(self, count: int) -> list[tuple[int, int]]:
        """The partitions a take of ``count`` entries asks, and how many each.

        A script call costs Redis about as much as leasing a few entries, so a
        small refill asks a few partitions for several entries each rather than
        every partition for one; the partitions asked rotate from call to call."""
        partitions = self._k.partitions
        used = min(partitions, max(1, -(-count // _TAKE_PER_PARTITION)))
        each, extra = divmod(count, used)
        start = self._take_from
        self._take_from = (start + used) % partitions
        return [
            ((start + k) % partitions, each + (k < extra))
            for k in range(used)
            if each + (k < extra) > 0
        ]

    async def take(self, consumer: str, count: int, lease_ms: int, now_ms: int) -> list[Acquired]:
        if JOBS_GROUP not in self._groups_ready:
            await self.ensure_groups()
        lanes = self.config.lanes
        calls: list[_Call] = []
        order: list[int] = []
        for p, n in self._take_plan(count):
            order.append(p)
            calls.append(
                (
                    SCRIPTS["take"],
                    self._k.jobs(p, lanes[0]),
                    [
                        self._k.base(p),
                        consumer,
                        n,
                        now_ms,
                        self.config.events_maxlen,
                        self.config.completion_ttl_s,
                        *lanes,
                    ],
                )
            )
        replies = await self._unless_group_lost(self._eval(calls))
        if replies is None:
            return []
        out: list[Acquired] = []
        for p, items in zip(order, replies, strict=True):
            for entry_id, lane, x, a, tp, t, r in items:
                out.append(_acquired(Delivery(p, int(lane), entry_id, x, int(a), tp, int(t)), r))
        out.sort(key=lambda acq: self._lane_rank[acq.delivery.lane])
        return out

    async def renew(
        self, leases: Sequence[Lease], lease_ms: int, now_ms: int, consumer: str
    ) -> list[Renewal]:
        calls: list[_Call] = [
            (
                SCRIPTS["renew"],
                self._k.exec_in(lz.partition, lz.execution_id),
                [
                    self._k.base(lz.partition),
                    lz.fence,
                    lz.lane,
                    lz.entry_id,
                    consumer or "heartbeat",
                ],
            )
            for lz in leases
        ]
        return [
            Renewal(r[0] != 0, bool(r[1]), EventError.from_json(r[2]) if r[2] else None)
            for r in await self._eval(calls)
        ]

    async def commit(self, commits: Sequence[Commit], now_ms: int) -> list[CommitResult]:
        calls: list[_Call] = []
        cap = self.config.tenant_cap
        for c in commits:
            lz = c.lease
            args: list[Any] = [
                self._k.base(lz.partition),
                lz.execution_id,
                lz.fence,
                lz.lane,
                lz.entry_id,
                now_ms,
                self.config.events_maxlen,
                self.config.state_ttl_s,
                self.config.completion_ttl_s,
            ]
            t = c.transition
            # A terminal end drops the checkpoints: its own are not sent (they
            # are in its NODE_COMPLETED events already).
            outputs = c.outputs if _resumable(t) else {}
            args.append(len(outputs))
            for node, out in outputs.items():
                args += [node, out]
            args.append(len(c.events))
            args += [event_tail(d, now_ms) for d in c.events]
            if t is None:
                args += ["", 0, "", ""]
            else:
                args += [t.status.value, t.retry_at_ms, t.dead_letter_reason, t.failed_node]
            args += [c.number, cap]
            calls.append((SCRIPTS["commit"], self._k.exec_in(lz.partition, lz.execution_id), args))
        return [
            CommitResult(bool(r[0]), int(r[1]), duplicate=r[0] == 2)
            for r in await self._eval(calls)
        ]

    async def cancel(
        self, execution_id: str, tenant_id: str, now_ms: int, reason: str = ""
    ) -> ExecutionStatus:
        p = self._k.partition(execution_id)
        args = [
            self._k.base(p),
            execution_id,
            tenant_id,
            now_ms,
            self.config.events_maxlen,
            self.config.completion_ttl_s,
            self._k.cancel_channel(p),
            cancel_error(reason).to_json(),
            self.config.tenant_cap,
        ]
        (r,) = await self._eval([(SCRIPTS["cancel"], self._k.exec(execution_id), args)])
        if r == "unknown":
            raise NotFound(f"execution {execution_id} not found")
        if r == "denied":
            raise PermissionDenied(f"execution {execution_id} belongs to another tenant")
        return ExecutionStatus(r)

    async def cancel_notices(self) -> AsyncGenerator[tuple[str, str], None]:
        """CancelNotices: the cancel script's SPUBLISH on its partition's channel."""
        pubsub = self._r.pubsub(ignore_subscribe_messages=True)
        try:
            channels = [self._k.cancel_channel(p) for p in range(self._k.partitions)]
            await _run(pubsub.ssubscribe(*channels))
            while True:
                msg = await _run(self._next_notice(pubsub))
                if msg is None:
                    continue
                data = msg.get("data")
                text = data.decode() if isinstance(data, bytes) else str(data)
                # "<execution id>\n<error JSON>" (the error is absent in older messages).
                execution_id, _, error = text.partition("\n")
                yield execution_id, error
        finally:
            # The connection may be the broken one: closing it must not mask why.
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]

    async def _next_notice(self, pubsub: Any) -> dict[str, Any] | None:
        message: dict[str, Any] | None = await pubsub.get_message(timeout=1.0)
        return message

    async def states(self, execution_ids: Sequence[str]) -> list[StateSnapshot | None]:
        pipe = self._r.pipeline(transaction=False)
        for x in execution_ids:
            pipe.hmget(self._k.exec(x), "st", "tn", "a", "cx", "ce")
        out: list[StateSnapshot | None] = []
        for x, h in zip(execution_ids, await _run(pipe.execute()), strict=True):
            if h[0] is None:
                out.append(None)
            else:
                error = EventError.from_json(h[4]) if h[3] == "1" and h[4] else None
                out.append(
                    StateSnapshot(
                        x, h[1] or "", ExecutionStatus(h[0]), int(h[2]), h[3] == "1", error
                    )
                )
        return out

    async def outputs(self, execution_id: str) -> dict[str, str]:
        """Checkpointed node outputs of an execution (node id -> outputs JSON)."""
        raw: dict[str, str] = await _run(self._r.hgetall(self._k.outputs(execution_id)))  # type: ignore[arg-type]
        return dict(raw)

    # -- ScheduleTable ----------------------------------------------------------

    async def put_schedule(self, schedule_id: str, value: str) -> None:
        await _run(self._r.hset(self._k.schedules(), schedule_id, value))

    async def get_schedule(self, schedule_id: str) -> str | None:
        value: str | None = await _run(self._r.hget(self._k.schedules(), schedule_id))  # type: ignore[arg-type]
        return value

    async def delete_schedule(self, schedule_id: str) -> bool:
        return bool(await _run(self._r.hdel(self._k.schedules(), schedule_id)))

    async def swap_schedule(self, schedule_id: str, expected: str, value: str) -> bool:
        call: _Call = (
            SCRIPTS["swap_schedule"],
            self._k.schedules(),
            [schedule_id, expected, value],
        )
        (swapped,) = await self._eval([call])
        return bool(swapped)

    async def all_schedules(self) -> list[str]:
        values: dict[str, str] = await _run(self._r.hgetall(self._k.schedules()))  # type: ignore[arg-type]
        return list(values.values())

    # -- BlobCache --------------------------------------------------------------

    async def get_blob(self, key: str) -> bytes | None:
        # Raw: the client decodes replies as UTF-8, and a blob is any bytes.
        value: bytes | None = await self._command("GET", self._k.blob(key), raw=True)
        return value

    async def put_blob(self, key: str, value: bytes, ttl_s: int) -> None:
        await self._command("SET", self._k.blob(key), value, "EX", ttl_s)

    # -- EventLog ---------------------------------------------------------------

    async def append(
        self, execution_id: str, drafts: Sequence[EventDraft], now_ms: int
    ) -> list[EventRecord]:
        p = self._k.partition(execution_id)
        args: list[Any] = [self._k.base(p), execution_id, now_ms, self.config.events_maxlen]
        for d in drafts:
            args += _draft_args(d)
        (first,) = await self._eval([(SCRIPTS["append"], self._k.exec(execution_id), args)])
        if not first:
            raise NotFound(f"execution {execution_id} not found")
        return await self.read(execution_id, int(first) - 1, len(drafts))

    async def read(self, execution_id: str, after_seq: int, limit: int) -> list[EventRecord]:
        # An entry's id is its last event's sequence, so every entry holding an
        # event after ``after_seq`` is past it; its earlier events are dropped.
        # ``limit`` entries hold at least ``limit`` events.
        entries: list[tuple[str, dict[str, str]]] = await _run(
            self._r.xrange(  # type: ignore[arg-type]
                self._k.exec_events(execution_id), min=f"({after_seq}-0", max="+", count=limit
            )
        )
        out = [e for _, f in entries for e in decode_entry(f) if e.sequence > after_seq]
        return out[:limit]

    async def tail_position(self) -> TailCursor:
        pipe = self._r.pipeline(transaction=False)
        for name in self._event_streams:
            pipe.xrevrange(name, count=1)
        return tuple(e[0][0] if e else "0-0" for e in await _run(pipe.execute()))

    async def tail(
        self, cursor: TailCursor, count: int, block_ms: int
    ) -> tuple[list[TailEntry], TailCursor]:
        streams: _StreamIds = dict(zip(self._event_streams, cursor, strict=True))
        resp = await _run(self._r.xread(streams, count=count, block=block_ms or None))
        pos = list(cursor)
        out: list[TailEntry] = []
        for stream, entries in _stream_items(resp):
            p = self._event_partition[stream]
            for entry_id, f in entries:
                pos[p] = entry_id
                out.extend(TailEntry(p, entry_id, r) for r in _tail_records(p, entry_id, f))
        return out, tuple(pos)

    async def group_read(
        self, group: str, consumer: str, count: int, block_ms: int
    ) -> list[TailEntry]:
        if group not in self._groups_ready:
            await self._ensure_event_group(group)
        streams: _StreamIds = dict.fromkeys(self._event_streams, ">")
        try:
            resp: _RawStreams = await _run(
                self._r.xreadgroup(  # type: ignore[arg-type]
                    group, consumer, streams, count=count, block=block_ms
                )
            )
        except ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            await self._ensure_event_group(group)
            return []
        return [
            TailEntry(self._event_partition[stream], entry_id, record)
            for stream, entries in resp or ()
            for entry_id, f in entries
            if f
            for record in _records(f)
        ]

    async def group_ack(self, group: str, entries: Sequence[TailEntry]) -> None:
        if not entries:
            return
        # One XACK per partition (it takes many ids): a batch of hundreds of
        # entries was as many commands for Redis to parse and answer.
        # The events of one entry share its id: a dict keeps each id once, in order.
        ids: dict[int, dict[str, None]] = {}
        for e in entries:
            ids.setdefault(e.partition, {})[e.entry_id] = None
        if len(ids) == 1:
            ((partition, entry_ids),) = ids.items()
            await _run(self._r.xack(self._event_streams[partition], group, *entry_ids))
            return
        pipe = self._r.pipeline(transaction=False)
        for partition, entry_ids in ids.items():
            pipe.xack(self._event_streams[partition], group, *entry_ids)
        await _run(pipe.execute())

    async def group_claim(
        self, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[TailEntry]:
        if group not in self._groups_ready:
            await self._ensure_event_group(group)
        out: list[TailEntry] = []
        for p, name in enumerate(self._event_streams):
            # Entries trimmed away meanwhile (MAXLEN) come back as deleted ids and
            # leave the group's pending list; nothing is left to record of them.
            try:
                reply = await self._command(
                    "XAUTOCLAIM", name, group, consumer, min_idle_ms, "0-0", "COUNT", count
                )
            except ResponseError as e:
                if "NOGROUP" not in str(e):
                    raise
                await self._ensure_event_group(group)
                return out
            out.extend(
                TailEntry(p, entry_id, record)
                for entry_id, f in reply[1]
                if f
                for record in _records(f)
            )
        return out

    async def _ensure_event_group(self, group: str) -> None:
        pipe = self._r.pipeline(transaction=False)
        for name in self._event_streams:
            pipe.xgroup_create(name, group, id="0", mkstream=True)
        for r in await _run(pipe.execute(raise_on_error=False)):
            if isinstance(r, ResponseError) and "BUSYGROUP" not in str(r):
                raise r
        self._groups_ready.add(group)

    async def delete_all(self) -> None:
        """Remove every key under the prefix (tests, local resets); SCAN, never FLUSH."""
        pattern = f"{self._k.prefix}:*"
        batch: list[str] = []
        async for key in self._r.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                await self._r.delete(*batch)
                batch.clear()
        if batch:
            await self._r.delete(*batch)
        self._groups_ready.clear()


def _raw_reply(response: Any, **options: Any) -> Any:
    return response


def _records(flat: list[str]) -> list[EventRecord]:
    if len(flat) == 2 and flat[0] == EVENT_FIELD:
        return decode_value(flat[1])
    return decode_entry(dict(zip(flat[::2], flat[1::2], strict=True)))


def _tail_records(p: int, entry_id: str, f: Mapping[str, str] | list[str]) -> list[EventRecord]:
    """The events of a live-tail entry; an undecodable one is logged and skipped
    (the tail must go on for everyone else)."""
    try:
        return _records(f) if isinstance(f, list) else decode_entry(f)
    except DECODE_ERRORS as exc:
        log.error(
            "undecodable event entry skipped",
            partition=p,
            entry_id=entry_id,
            error=f"{type(exc).__name__}: {exc}",
        )
        return []


class _FastConnection(aioredis.Connection):
    """Packs commands with hiredis: redis-py's asyncio connection packs in Python,
    which costs more than Redis itself for script calls with many arguments."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " in args[0]:
            args = (*args[0].split(), *args[1:])
        return [hiredis.pack_command(args)]


def _stream_items(resp: Any) -> Iterable[tuple[str, list[tuple[str, Mapping[str, str]]]]]:
    if not resp:
        return []
    if isinstance(resp, dict):  # RESP3
        return [(k, v[0] if v and isinstance(v[0], list) else v) for k, v in resp.items()]
    return [(s, e) for s, e in resp]


def _parse_token(token: str) -> tuple[int, str]:
    if not token:
        return 0, ""
    score, sep, member = token.partition(":")
    if not sep or not score.isdigit():
        raise InvalidJob("page_token", "malformed page token")
    return int(score), member


def _resumable(t: Transition | None) -> bool:
    """Whether the execution may run again after this commit (so its checkpoints
    are kept): no end, a retry, or the failed queue."""
    return (
        t is None
        or t.status is ExecutionStatus.RETRY_SCHEDULED
        or (t.status is ExecutionStatus.FAILED and bool(t.dead_letter_reason))
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


def _acquired(d: Delivery, r: list[Any]) -> Acquired:
    """An acquire_one reply (_lib.lua) as the Acquired it stands for."""
    if not r[0]:
        return Acquired(d, None, None, skipped=r[1])
    fence = int(r[1])
    flat = r[12]
    # Positional: a NamedTuple built with keywords goes through a slower path.
    ctx = ExecutionContext(
        d.execution_id,  # execution_id
        r[2],  # tenant_id
        r[3],  # workflow_id
        r[4],  # workflow_json
        r[5],  # trigger_json
        int(r[6]),  # attempt
        int(r[7]),  # max_attempts
        float(r[8]),  # backoff_s
        float(r[9]),  # timeout_s
        r[10],  # traceparent
        int(r[11]),  # round_attempt
        dict(zip(flat[::2], flat[1::2], strict=True)),  # outputs
    )
    return Acquired(d, Lease(d.execution_id, d.partition, d.lane, d.entry_id, fence), ctx)
