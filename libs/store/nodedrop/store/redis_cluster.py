"""The Redis adapter on Redis Cluster (``redis+cluster://host:port,host:port``).

Same layout, same scripts as on one Redis (docs/redis-layout.md): every key of a
partition carries its hash tag, so a partition is one slot and a script call
stays on one master.  What differs is what a cluster refuses or routes:

- a script call declares every key it touches in KEYS: the keys it derives
  from its arguments (``declared_keys``) and the keys it would otherwise find
  while it runs, which the adapter reads first (a job's tenant, the tenant's
  next parked job, the entries to lease or reclaim, the due executions).
  During a slot migration Redis then answers TRYAGAIN or ASK before the
  script runs, instead of failing it halfway at the first key that already
  moved.  The scripts run in their cluster variants (``CLUSTER_SCRIPTS``):
  a key read beforehand is touched only if it is still the one to touch;
  otherwise that step is left to the scheduler's sweep;
- a batch of script calls goes out as one pipeline per master (redis-py's
  cluster pipeline follows MOVED and ASK and retries TRYAGAIN), and the
  scripts are loaded on every primary;
- a read over several partitions is several slots (CROSSSLOT): the blocking
  job read, the events tail and the history group read run one blocking read
  per partition instead (``_PartitionReads``);
- the cancel nudge is SPUBLISH on the partition's shard channel, read with
  SSUBSCRIBE on the masters.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Generic, TypeVar
from urllib.parse import unquote, urlsplit

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.client import NEVER_DECODE
from redis.exceptions import AskError, MovedError, ResponseError, SlotNotCoveredError

from nodedrop.store.config import SWEEP_TENANTS, StoreConfig
from nodedrop.store.errors import Misconfigured, Unavailable
from nodedrop.store.keys import ADMITTED, JOBS_GROUP, Keys
from nodedrop.store.model import (
    Acquired,
    Commit,
    CommitResult,
    Delivery,
    ExecutionStatus,
    Lease,
    ReclaimReport,
    TailEntry,
)
from nodedrop.store.ports import TailCursor
from nodedrop.store.redis_store import (
    _DOWN,
    CLUSTER_SCHEME,
    RedisStore,
    _acquired,
    _Call,
    _now_ms,
    _raw_reply,
    _records,
    _run,
    _tail_records,
    _unavailable,
)
from nodedrop.store.scripts import CLUSTER_SCRIPTS

__all__ = ["RedisClusterStore", "admission_keys", "declared_keys", "parse_cluster_url"]

_T = TypeVar("_T")
# An events entry the tail read: partition, entry id, its events.
_TailItem = tuple[int, str, list[TailEntry]]
# How long closing waits for job reads in flight to bring what they read.
_CLOSE_WAIT_S = 2.0
# Keys a call's scripts touch beyond what their arguments name, read before the
# call, by the script call's KEYS[1]: ``_pipe`` declares them too.
_NOTHING_FOUND: Mapping[str, Sequence[str]] = MappingProxyType({})
_FOUND: contextvars.ContextVar[Mapping[str, Sequence[str]]] = contextvars.ContextVar(
    "found_keys", default=_NOTHING_FOUND
)


@contextlib.contextmanager
def _declaring(found: Mapping[str, Sequence[str]]) -> Iterator[None]:
    """The keys read before the calls made inside: ``_pipe`` declares them."""
    token = _FOUND.set(found)
    try:
        yield
    finally:
        _FOUND.reset(token)


# Tenants of the executions this process leased, for their commits (the lease
# does not name the tenant); past this many the oldest are forgotten (read again).
_TENANTS_KEPT = 100_000


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], str | None, str | None]:
    """``redis+cluster://[user:password@]host:port,host:port,...``: the seed nodes
    (any of the cluster's nodes; the client learns the rest) and the credentials."""
    parts = urlsplit(url)
    if parts.scheme != CLUSTER_SCHEME:
        raise Misconfigured(f"not a {CLUSTER_SCHEME}:// URL: {url!r}")
    auth, _, hosts = parts.netloc.rpartition("@")
    user, _, password = auth.partition(":")
    seeds: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise Misconfigured(f"{CLUSTER_SCHEME} URL: expected host:port, got {item!r}")
        seeds.append((host, int(port)))
    if parts.path not in ("", "/", "/0"):
        raise Misconfigured(f"{CLUSTER_SCHEME} URL: Redis Cluster has only database 0")
    return seeds, unquote(user) or None, unquote(password) or None


def _lane_streams(k: Keys, base: str, lanes: Sequence[str]) -> list[str]:
    return [base + ("jobs" if lane in ("0", "") else f"jobs:{lane}") for lane in lanes]


def declared_keys(
    k: Keys, name: str, key: str, args: Sequence[Any], lanes: Sequence[int]
) -> list[str]:
    """Every key script ``name`` derives from its arguments, ``key`` (its KEYS[1])
    first, as the layout names them (lua/_lib.lua builds the same names).

    The keys a script would otherwise find while it runs are not derived from
    its arguments: the adapter reads them before the call and declares them
    with these (``admission_keys``; the entries ``take`` and ``reclaim`` lease
    or requeue, the due executions of ``move_due``, their tenants' admission
    keys and the parked executions a freed place goes to); docs/redis-layout.md,
    "On Redis Cluster".
    """
    a = [str(x) for x in args]
    out = [key]
    if name in ("trim", "requeue", "swap_schedule"):
        pass  # KEYS[1] is all they touch
    elif name == "purge_failed":
        # The ids given (the adapter never asks the script to find them: all=1).
        base = a[0]
        for x in a[3:]:
            ek = base + "exec:" + x
            out += [ek, ek + ":out", ek + ":ev"]
    elif name.startswith("cluster_"):
        pass  # the cluster's own scripts: the caller found every other key
    else:
        base, execution = a[0], a[1]
        ek = base + "exec:" + execution
        out += [ek, ek + ":out", ek + ":ev", base + "events"]
        if name == "enqueue":
            tenant, lane = a[2], a[6]
            out += _lane_streams(k, base, [lane])
            out += [base + "delayed", base + ADMITTED + tenant, base + "park:" + tenant]
            out += [base + "parked"]
        elif name in ("acquire", "release"):
            out += _lane_streams(k, base, [a[2] if name == "acquire" else a[3]])
            out += [base + "delayed", base + "stats"]
        elif name == "commit":
            out += _lane_streams(k, base, [str(lane) for lane in lanes])
            out += [base + "delayed", base + "failed", base + "stats"]
        elif name == "renew":
            out = [key, *_lane_streams(k, base, [a[2]])]
        elif name == "cancel":
            tenant = a[2]
            out += [base + "delayed", base + "stats"]
            if tenant:
                out += [base + ADMITTED + tenant, base + "park:" + tenant]
        elif name == "retry_failed":
            out += [*_lane_streams(k, base, a[6:]), base + "failed", base + "parked"]
        elif name == "restore_failed":
            out += [base + "failed"]
    # KEYS[1] names one of them already (the exec hash, a stream): once each.
    return list(dict.fromkeys(out))


def admission_keys(
    k: Keys, p: int, tenant: str, parked_next: Iterable[str], lanes: Sequence[int]
) -> list[str]:
    """What giving a tenant's place back or admitting one of its jobs may touch:
    its admission keys, its next parked executions (read before the call), and
    the lane streams a promoted one enters."""
    base = k.base(p)
    return [
        base + ADMITTED + tenant,
        base + "park:" + tenant,
        base + "parked",
        *(k.exec_in(p, x) for x in parked_next),
        *(k.jobs(p, lane) for lane in lanes),
    ]


class _PartitionReads(Generic[_T]):
    """At most one blocking read per partition in flight; what they return waits
    here for the next call.

    A read over several partitions is CROSSSLOT on a cluster, and a poll of
    every partition would cost each idle reader a command per partition per
    poll; one blocking read per partition costs it one command per partition
    per BLOCK period, and answers new work at once.  A read still blocked when
    its caller stops waiting stays in flight: its entries come with the next
    call (a worker keeps what it cannot start yet in its backlog).
    """

    def __init__(self, partitions: int, read: Callable[[int, int], Awaitable[list[_T]]]) -> None:
        self._partitions = partitions
        self._read = read
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._ready: list[_T] = []
        self._error: BaseException | None = None
        self._changed = asyncio.Event()
        # The last call handed something out: entries may still be waiting.
        self._busy = True

    async def get(self, block_ms: int) -> list[_T]:
        if not self._ready and self._error is None:
            if not block_ms or self._busy:
                # Entries may be waiting in several partitions: a non-blocking read
                # of each (they answer at once) hands them out together, as one
                # read over all partitions would.  Blocking reads still out are not
                # waited for.
                await asyncio.gather(*self._start(0), return_exceptions=True)
            if block_ms and not self._ready and self._error is None:
                self._start(block_ms)
                await self._wait_ready(block_ms)
        if self._error is not None and not self._ready:
            error, self._error = self._error, None
            raise error
        out, self._ready = self._ready, []
        # Idle (nothing came): the next call blocks at once, so an idle reader
        # costs one blocking read per partition per period and no polling.
        self._busy = bool(out)
        return out

    def _start(self, block_ms: int) -> list[asyncio.Task[None]]:
        """A read for each partition that has none in flight."""
        started = []
        for p in range(self._partitions):
            if p not in self._inflight:
                task = asyncio.create_task(self._one(p, block_ms))
                self._inflight[p] = task
                started.append(task)
        return started

    async def _wait_ready(self, block_ms: int) -> None:
        """Until a read brings something, one fails, or the period is over."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block_ms / 1000 + 1.0
        while not self._ready and self._error is None and self._inflight:
            if not await self._wait_change(deadline - loop.time()):
                break

    async def drain(self, timeout_s: float) -> list[_T]:
        """Wait for the reads in flight (up to ``timeout_s``) and return everything
        they brought: a reader that stops hands its entries back instead of
        leaving them pending until the reclaimer takes them."""
        tasks = list(self._inflight.values())
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        await self._cancel_inflight()
        out, self._ready = self._ready, []
        return out

    async def _cancel_inflight(self) -> None:
        tasks = list(self._inflight.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()
        self._error = None

    async def _wait_change(self, timeout_s: float) -> bool:
        """Until a read in flight ends (True) or the time is up (False)."""
        if timeout_s <= 0:
            return False
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _one(self, p: int, block_ms: int) -> None:
        try:
            items = await self._read(p, block_ms)
            # Not ``self._ready.extend(await ...)``: that binds the list before the
            # read, and ``get`` may have handed that list out meanwhile.
            self._ready.extend(items)
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            self._error = e
        finally:
            self._inflight.pop(p, None)
            self._changed.set()

    async def reset(self) -> None:
        """Drop the reads in flight and what they returned (a read without side
        effects only: the events tail)."""
        await self._cancel_inflight()
        self._ready.clear()


class RedisClusterStore(RedisStore):
    def __init__(self, client: RedisCluster, config: StoreConfig) -> None:
        super().__init__(client, config)
        self._c = client
        client.set_response_callback("XAUTOCLAIM", _raw_reply)
        client.set_response_callback("XREAD", _raw_reply)
        self._lanes_of = [
            [self._k.jobs(p, lane) for lane in config.lanes] for p in range(self._k.partitions)
        ]
        self._job_reads: _PartitionReads[Delivery] = _PartitionReads(
            self._k.partitions, self._read_partition_jobs
        )
        self._read_args: tuple[str, int] = ("", 1)
        self._tail_reads: _PartitionReads[_TailItem] = _PartitionReads(
            self._k.partitions, self._tail_partition
        )
        self._tail_pos: list[str] = []
        self._tail_returned: TailCursor = ()
        self._tail_count = 1
        self._group_reads: dict[str, _PartitionReads[TailEntry]] = {}
        self._group_args: dict[str, tuple[str, int]] = {}
        self._tenant_of: dict[str, str] = {}

    @classmethod
    def from_cluster_url(
        cls, url: str, config: StoreConfig, *, max_connections: int = 64
    ) -> RedisClusterStore:
        seeds, user, password = parse_cluster_url(url)
        client = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in seeds],
            username=user,
            password=password,
            decode_responses=True,
            protocol=2,
            # Per node: every partition's blocking read holds one connection.
            max_connections=max(max_connections, 3 * config.keys.partitions + 16),
            socket_timeout=None,
            socket_keepalive=True,
            health_check_interval=30,
            # A failover or resharding takes seconds: the client follows MOVED and
            # ASK and retries TRYAGAIN and a lost node a few times before the
            # store reports Unavailable and the caller's own retry takes over.
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 5),
        )
        return cls(client, config)

    async def close(self) -> None:
        # Entries a job read delivers after the worker stopped reading go back to
        # the stream, as a single-node read during a drain does (requeue).
        leftover = await self._job_reads.drain(_CLOSE_WAIT_S)
        if leftover:
            with contextlib.suppress(Unavailable, ResponseError):
                await self.requeue(leftover)
        await self.stop_reads()
        await self._c.aclose()

    async def stop_reads(self) -> None:
        """Drop the blocking reads in flight (a reader that stops while the client
        stays open for others)."""
        await self._job_reads.reset()
        await self._tail_reads.reset()
        for reads in self._group_reads.values():
            await reads.reset()

    async def _check_server(self) -> None:
        pass  # redis-py's cluster client refuses a node that is not in a cluster

    async def load_scripts(self) -> None:
        for s in CLUSTER_SCRIPTS.values():
            await _run(
                self._c.execute_command(
                    "SCRIPT LOAD", s.source, target_nodes=RedisCluster.PRIMARIES
                )
            )

    async def _pipe(self, calls: Sequence[_Call]) -> list[Any]:
        """One pipeline per master, each script in its cluster variant; every key
        the script derives from its arguments declared, and those the caller
        found before the call (``_FOUND``).  A reply that is an error comes back
        in place."""
        pipe = self._c.pipeline()
        lanes = self.config.lanes
        found = _FOUND.get()
        for script, key, args in calls:
            keys = declared_keys(self._k, script.name, key, args, lanes)
            more = found.get(key)
            if more:
                keys = list(dict.fromkeys([*keys, *more]))
            sha = CLUSTER_SCRIPTS[script.name].sha
            pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        try:
            out: list[Any] = await pipe.execute(raise_on_error=False)
        except _DOWN as e:
            raise _unavailable(e) from e
        return out

    async def _command(self, *args: Any, raw: bool = False) -> Any:
        options: dict[str, Any] = {NEVER_DECODE: True} if raw else {}
        return await _run(self._c.execute_command(*args, **options))

    async def _read_command(self, key: str, *args: Any) -> Any:
        """A stream read sent straight to ``key``'s master.  Routed by redis-py, a
        read with several streams costs a COMMAND GETKEYS first (its keys are
        movable): as many extra commands as reads on an idle worker.  A slot that
        moved (or a client that has not learnt the slots yet) goes through the
        routed path once, which follows the redirect and refreshes the slots."""
        try:
            node = self._c.get_node_from_key(key)
            return await self._c.execute_command(*args, target_nodes=node)
        except (MovedError, AskError, SlotNotCoveredError):
            return await _run(self._c.execute_command(*args))
        except _DOWN as e:
            raise _unavailable(e) from e

    async def _next_notice(self, pubsub: Any) -> dict[str, Any] | None:
        message: dict[str, Any] | None = await pubsub.get_sharded_message(
            ignore_subscribe_messages=True, timeout=1.0
        )
        return message

    # -- reads per partition ------------------------------------------------------

    async def read_jobs(self, consumer: str, count: int, block_ms: int) -> list[Delivery]:
        if JOBS_GROUP not in self._groups_ready:
            await self.ensure_groups()
        # COUNT applies per stream, as on one Redis: the wanted total spread.
        self._read_args = (consumer, max(1, -(-count // len(self._streams))))
        out = await self._job_reads.get(block_ms)
        out.sort(key=lambda d: self._lane_rank[d.lane])
        return out

    async def _read_partition_jobs(self, p: int, block_ms: int) -> list[Delivery]:
        consumer, per_stream = self._read_args
        return await self._read_new(p, consumer, per_stream, block_ms)

    async def _read_new(
        self, p: int, consumer: str, per_stream: int, block_ms: int
    ) -> list[Delivery]:
        names = self._lanes_of[p]
        args: list[Any] = ["XREADGROUP", "GROUP", JOBS_GROUP, consumer, "COUNT", per_stream]
        if block_ms:
            args += ["BLOCK", block_ms]
        try:
            resp = await self._read_command(names[0], *args, "STREAMS", *names, *[">"] * len(names))
        except ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            self._groups_ready.discard(JOBS_GROUP)
            await self.ensure_groups()
            return []
        out: list[Delivery] = []
        for stream, entries in resp or ():
            _, lane = self._by_stream[stream]
            for entry_id, f in entries:
                if not f:
                    continue
                d = dict(zip(f[::2], f[1::2], strict=True))
                out.append(
                    Delivery(
                        p,
                        lane,
                        entry_id,
                        d["x"],
                        int(d["a"]),
                        d.get("tp", ""),
                        int(d.get("t", "0")),
                    )
                )
        return out

    # -- find, then write -----------------------------------------------------------
    #
    # A script may touch only keys it declares (module docstring).  Where one
    # would find keys while it runs, the adapter reads them first with plain
    # commands and declares them; the cluster variants of the scripts check that
    # what was read still holds.

    async def take(self, consumer: str, count: int, lease_ms: int, now_ms: int) -> list[Acquired]:
        """A non-blocking read per partition asked, then one script per partition
        that leases what it read (take.lua reads in the script, and cannot
        declare the executions of entries it has yet to read).  An entry read
        but not leased (an outage in between) is pending under this consumer:
        the reclaimer requeues it after the lease."""
        if JOBS_GROUP not in self._groups_ready:
            await self.ensure_groups()
        wanted = self._take_plan(count)
        reads = await asyncio.gather(*(self._read_new(p, consumer, n, 0) for p, n in wanted))
        surplus: list[Delivery] = []
        read_by: list[list[Delivery]] = []
        calls: list[_Call] = []
        found: dict[str, list[str]] = {}
        for (p, n), read in zip(wanted, reads, strict=True):
            # COUNT applies per lane: the partition's ``n`` go to the highest
            # lanes, the rest back to their streams (take.lua read lane by lane).
            read.sort(key=lambda d: self._lane_rank[d.lane])
            surplus += read[n:]
            if not read[:n]:
                continue
            read_by.append(read[:n])
            base = self._k.base(p)
            args: list[Any] = [
                base,
                now_ms,
                self.config.events_maxlen,
                self.config.completion_ttl_s,
            ]
            keys = [*self._lanes_of[p], base + "events", base + "delayed", base + "stats"]
            for d in read[:n]:
                args += [d.entry_id, d.lane, d.execution_id, d.attempt]
                ek = base + "exec:" + d.execution_id
                keys += [ek, ek + ":out", ek + ":ev"]
            found[self._lanes_of[p][0]] = keys
            calls.append((CLUSTER_SCRIPTS["cluster_take"], self._lanes_of[p][0], args))
        if surplus:
            await self.requeue(surplus)
        replies = await self._eval_found(calls, found)
        out = [
            _acquired(d, r)
            for read, items in zip(read_by, replies, strict=True)
            for d, r in zip(read, items, strict=True)
        ]
        await self._leased(out)
        out.sort(key=lambda acq: self._lane_rank[acq.delivery.lane])
        return out

    async def acquire(
        self, deliveries: Sequence[Delivery], lease_ms: int, now_ms: int, consumer: str = ""
    ) -> list[Acquired]:
        out = await super().acquire(deliveries, lease_ms, now_ms, consumer)
        await self._leased(out)
        return out

    async def _leased(self, acquired: Sequence[Acquired]) -> None:
        for acq in acquired:
            if acq.context is not None:
                self._remember(acq.delivery.execution_id, acq.context.tenant_id)
        cancelled = [acq.delivery for acq in acquired if acq.skipped == "cancelled"]
        if cancelled and self.config.tenant_cap:
            # The acquire script could not name the tenant's keys: the cancelled
            # execution's place is given back now (the sweep fills it, as on one
            # Redis).  Not done (an outage): the sweep gives it back too, once
            # the tenant is full.
            with contextlib.suppress(Unavailable):
                await self._give_back(cancelled)

    async def _give_back(self, ended: Sequence[Delivery]) -> None:
        tenants = await self._tenants([d.execution_id for d in ended], forget=True)
        calls: list[_Call] = []
        found: dict[str, list[str]] = {}
        for d, tenant in zip(ended, tenants, strict=True):
            if tenant is None:
                continue  # its state expired: the sweep finds the place
            key = self._k.exec_in(d.partition, d.execution_id)
            found[key] = self._admission(d.partition, tenant, {})
            args = [self._k.base(d.partition), d.execution_id, tenant]
            calls.append((CLUSTER_SCRIPTS["cluster_leave"], key, args))
        await self._eval_found(calls, found)

    async def commit(self, commits: Sequence[Commit], now_ms: int) -> list[CommitResult]:
        """An attempt that ends gives its place to the tenant's next parked
        execution in the same script: the tenant (known from the lease, else
        read) and that execution are read first and declared."""
        ending = [c.lease for c in commits if c.transition is not None]
        if not ending or not self.config.tenant_cap:
            return await super().commit(commits, now_ms)
        tenants = await self._tenants([lz.execution_id for lz in ending], forget=True)
        owned = [(lz, t) for lz, t in zip(ending, tenants, strict=True) if t is not None]
        heads = await self._parked_next([(lz.partition, t) for lz, t in owned])
        # The scripts run in order: the tenant's n-th ending commit in the batch
        # promotes its n-th parked execution, and declares only that one (all of
        # them would make a batch's keys grow with its square).  One that finds
        # another at the head leaves the promotion to the sweep.
        turn: dict[tuple[int, str], int] = {}
        found: dict[str, list[str]] = {}
        for lz, t in owned:
            owner = (lz.partition, t)
            n = turn[owner] = turn.get(owner, -1) + 1
            mine = heads.get(owner, [])[n : n + 1]
            found[self._k.exec_in(lz.partition, lz.execution_id)] = admission_keys(
                self._k, lz.partition, t, mine, self.config.lanes
            )
        with _declaring(found):
            return await super().commit(commits, now_ms)

    async def cancel(
        self, execution_id: str, tenant_id: str, now_ms: int, reason: str = ""
    ) -> ExecutionStatus:
        """The execution's tenant (read first when the caller may cancel any
        tenant's) and its next parked execution are declared: a cancel gives a
        waiting execution's place to it."""
        p = self._k.partition(execution_id)
        tenant: str | None = tenant_id
        if not tenant:
            (tenant,) = await self._tenants([execution_id], forget=False)
        if tenant is None:
            return await super().cancel(execution_id, tenant_id, now_ms, reason)
        heads = await self._parked_next([(p, tenant)])
        found = {self._k.exec_in(p, execution_id): self._admission(p, tenant, heads)}
        with _declaring(found):
            return await super().cancel(execution_id, tenant_id, now_ms, reason)

    async def retry_failed(self, execution_ids: Sequence[str], all_: bool, now_ms: int) -> int:
        """Each execution's tenant is read first: a retried execution is admitted
        under its tenant's cap."""
        ids = await self._failed_ids(execution_ids, all_)
        tenants = await self._tenants(ids, forget=False)
        found = {
            self._k.exec(x): self._admission(self._k.partition(x), t, {})
            for x, t in zip(ids, tenants, strict=True)
            if t is not None
        }
        with _declaring(found):
            return await super().retry_failed(ids, False, now_ms)

    async def purge_failed(self, execution_ids: Sequence[str], all_: bool) -> int:
        """The whole queue is read first (ZRANGE), so that each purged
        execution's keys are declared; the script purges an id only while it
        is still in the queue."""
        return await super().purge_failed(await self._failed_ids(execution_ids, all_), False)

    async def _failed_ids(self, execution_ids: Sequence[str], all_: bool) -> list[str]:
        """The ids given, or with ``all_`` every id in the failed queue (the
        scripts then name each one, rather than find them while they run)."""
        if not all_:
            return list(execution_ids)
        pipe = self._c.pipeline()
        for p in range(self._k.partitions):
            pipe.zrange(self._k.failed(p), 0, -1)
        return [m for part in await _run(pipe.execute()) for m in part]

    async def release(self, leases: Sequence[Lease]) -> list[bool]:
        for lz in leases:
            self._tenant_of.pop(lz.execution_id, None)
        return await super().release(leases)

    async def move_due(self, now_ms: int, limit: int) -> int:
        """Per partition: the due executions and the tenants to sweep are read
        first (ZRANGEBYSCORE, SRANDMEMBER), then their tenants, the sweep's
        places and parked executions; one script then moves and sweeps, each
        execution only while it is still due."""
        parts = range(self._k.partitions)
        pipe = self._c.pipeline()
        for p in parts:
            pipe.zrangebyscore(self._k.delayed(p), "-inf", now_ms, start=0, num=limit)
            pipe.srandmember(self._k.parked(p), SWEEP_TENANTS)
        first = await _run(pipe.execute())
        due = {p: list(first[2 * p]) for p in parts}
        sweep = {p: sorted(first[2 * p + 1] or ()) for p in parts}
        busy = [p for p in parts if due[p] or sweep[p]]
        if not busy:
            return 0
        cap = self.config.tenant_cap
        # A swept tenant fills up to its cap (every parked one when admission is
        # off); at most ``limit`` per pass, as for the due ones.
        heads_each = min(cap, limit) if cap > 0 else limit
        pipe = self._c.pipeline()
        for p in busy:
            for x in due[p]:
                pipe.hget(self._k.exec_in(p, x), "tn")
            for tenant in sweep[p]:
                pipe.srandmember(self._k.admitted(p, tenant), 8)
                pipe.zrange(self._k.park(p, tenant), 0, heads_each - 1)
        replies = iter(await _run(pipe.execute()))
        calls: list[_Call] = []
        found: dict[str, list[str]] = {}
        for p in busy:
            keys: list[str] = []
            for x in due[p]:
                keys.append(self._k.exec_in(p, x))
                tenant = next(replies)
                if tenant is not None:
                    keys += admission_keys(self._k, p, tenant, (), self.config.lanes)
            for tenant in sweep[p]:
                places, parked_next = next(replies), next(replies)
                keys += admission_keys(self._k, p, tenant, [*places, *parked_next], ())
            keys += [self._k.parked(p), *(self._k.jobs(p, lane) for lane in self.config.lanes)]
            found[self._k.delayed(p)] = list(dict.fromkeys(keys))
            args: list[Any] = [self._k.base(p), now_ms, cap, len(due[p]), *due[p]]
            args += [len(sweep[p]), *sweep[p], *self.config.lanes]
            calls.append((CLUSTER_SCRIPTS["cluster_move_due"], self._k.delayed(p), args))
        return sum(int(r) for r in await self._eval_found(calls, found))

    async def reclaim(self, min_idle_ms: int, max_reclaims: int, limit: int) -> ReclaimReport:
        """XAUTOCLAIM per lane stream (to the reclaimer), then the claimed
        executions' tenants and their next parked executions, then one script
        per stream that requeues or dead-letters what it claimed."""
        if JOBS_GROUP not in self._groups_ready:
            await self.ensure_groups()
        now = _now_ms()
        pipe = self._c.pipeline()
        for _, _, name in self._streams:
            pipe.execute_command(
                "XAUTOCLAIM", name, JOBS_GROUP, "reclaimer", min_idle_ms, "0-0", "COUNT", limit
            )
        claims = await _run(pipe.execute(raise_on_error=False))
        claimed: list[tuple[int, int, str, list[tuple[str, str, str, str]]]] = []
        for (p, lane, name), reply in zip(self._streams, claims, strict=True):
            if isinstance(reply, _DOWN):
                raise _unavailable(reply) from reply
            if isinstance(reply, Exception):
                if "NOGROUP" not in str(reply):
                    raise reply
                # Redis lost its data: the group is recreated, nothing is pending.
                self._groups_ready.discard(JOBS_GROUP)
                await self.ensure_groups()
                continue
            entries = []
            for entry_id, f in reply[1]:
                d = dict(zip(f[::2], f[1::2], strict=True)) if f else {}
                entries.append((entry_id, d.get("x", ""), d.get("a", "1"), d.get("tp", "")))
            if entries:
                claimed.append((p, lane, name, entries))
        if not claimed:
            return ReclaimReport()
        ids = [(p, e[1]) for p, _, _, entries in claimed for e in entries if e[1]]
        tenants = await self._tenants([x for _, x in ids], forget=False)
        tenant_of = {x: t for (_, x), t in zip(ids, tenants, strict=True) if t is not None}
        heads = await self._parked_next([(p, tenant_of[x]) for p, x in ids if x in tenant_of])
        calls: list[_Call] = []
        found: dict[str, list[str]] = {}
        for p, lane, name, entries in claimed:
            base = self._k.base(p)
            keys = [base + "events", base + "failed", base + "stats"]
            args: list[Any] = [
                base,
                lane,
                max_reclaims,
                now,
                self.config.events_maxlen,
                self.config.tenant_cap,
            ]
            for entry in entries:
                x = entry[1]
                args += list(entry)
                if x:
                    ek = self._k.exec_in(p, x)
                    keys += [ek, ek + ":ev"]
                if x in tenant_of:
                    keys += self._admission(p, tenant_of[x], heads)
            found[name] = list(dict.fromkeys(keys))
            calls.append((CLUSTER_SCRIPTS["cluster_reclaim"], name, args))
        results = await self._eval_found(calls, found)
        return ReclaimReport(
            requeued=sum(int(r[0]) for r in results),
            dead_lettered=sum(int(r[1]) for r in results),
            dropped=sum(int(r[2]) for r in results),
        )

    async def _eval_found(
        self, calls: Sequence[_Call], found: Mapping[str, Sequence[str]]
    ) -> list[Any]:
        with _declaring(found):
            return await self._eval(calls)

    def _remember(self, execution_id: str, tenant: str) -> None:
        if len(self._tenant_of) >= _TENANTS_KEPT:
            del self._tenant_of[next(iter(self._tenant_of))]
        self._tenant_of[execution_id] = tenant

    async def _tenants(self, ids: Sequence[str], *, forget: bool) -> list[str | None]:
        """Each execution's tenant: from its lease where this process leased it,
        else read from its hash (None: its state is gone).  ``forget``: the
        lease ends with this call."""
        known = self._tenant_of
        out: list[str | None] = [known.pop(x, None) if forget else known.get(x) for x in ids]
        missing = [i for i, t in enumerate(out) if t is None]
        if missing:
            pipe = self._c.pipeline()
            for i in missing:
                pipe.hget(self._k.exec(ids[i]), "tn")
            for i, tenant in zip(missing, await _run(pipe.execute()), strict=True):
                out[i] = tenant
        return out

    async def _parked_next(
        self, owners: Sequence[tuple[int, str]]
    ) -> dict[tuple[int, str], list[str]]:
        """The next parked executions of each (partition, tenant): as many as
        places it may free in the call (one per occurrence)."""
        if not self.config.tenant_cap:
            return {}
        wanted: dict[tuple[int, str], int] = {}
        for owner in owners:
            wanted[owner] = wanted.get(owner, 0) + 1
        if not wanted:
            return {}
        pipe = self._c.pipeline()
        for (p, tenant), n in wanted.items():
            pipe.zrange(self._k.park(p, tenant), 0, n - 1)
        replies = await _run(pipe.execute())
        return {owner: list(r) for owner, r in zip(wanted, replies, strict=True)}

    def _admission(
        self, p: int, tenant: str, heads: Mapping[tuple[int, str], Sequence[str]]
    ) -> list[str]:
        return admission_keys(self._k, p, tenant, heads.get((p, tenant), ()), self.config.lanes)

    async def tail(
        self, cursor: TailCursor, count: int, block_ms: int
    ) -> tuple[list[TailEntry], TailCursor]:
        if tuple(cursor) != self._tail_returned:
            # Not where the last call left off: the reads in flight continue from
            # elsewhere; start again from the caller's position.
            await self._tail_reads.reset()
            self._tail_pos = list(cursor)
        self._tail_count = count
        items = await self._tail_reads.get(block_ms)
        # The position of what is handed out; reads in flight may be further on.
        returned = list(cursor)
        out: list[TailEntry] = []
        for p, entry_id, entries in items:
            returned[p] = entry_id
            out.extend(entries)
        self._tail_returned = tuple(returned)
        return out, self._tail_returned

    async def _tail_partition(self, p: int, block_ms: int) -> list[_TailItem]:
        """One item per entry read, its events possibly none (an undecodable
        entry is skipped, and the cursor still moves past it)."""
        name = self._event_streams[p]
        args: list[Any] = ["XREAD", "COUNT", self._tail_count]
        if block_ms:
            args += ["BLOCK", block_ms]
        resp = await self._read_command(name, *args, "STREAMS", name, self._tail_pos[p])
        out: list[_TailItem] = []
        for _, entries in resp or ():
            for entry_id, f in entries:
                self._tail_pos[p] = entry_id
                records = _tail_records(p, entry_id, f) if f else []
                out.append((p, entry_id, [TailEntry(p, entry_id, r) for r in records]))
        return out

    async def group_read(
        self, group: str, consumer: str, count: int, block_ms: int
    ) -> list[TailEntry]:
        if group not in self._groups_ready:
            await self._ensure_event_group(group)
        reads = self._group_reads.get(group)
        if reads is None:
            reads = self._group_reads[group] = _PartitionReads(
                self._k.partitions, functools.partial(self._group_partition, group)
            )
        self._group_args[group] = (consumer, count)
        return await reads.get(block_ms)

    async def _group_partition(self, group: str, p: int, block_ms: int) -> list[TailEntry]:
        consumer, count = self._group_args[group]
        args: list[Any] = ["XREADGROUP", "GROUP", group, consumer, "COUNT", count]
        if block_ms:
            args += ["BLOCK", block_ms]
        name = self._event_streams[p]
        try:
            resp = await self._read_command(name, *args, "STREAMS", name, ">")
        except ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            await self._ensure_event_group(group)
            return []
        return [
            TailEntry(p, entry_id, record)
            for _, entries in resp or ()
            for entry_id, f in entries
            if f
            for record in _records(f)
        ]
