"""The Redis adapter on Redis Cluster (``redis+cluster://host:port,host:port``).

Same layout, same scripts as on one Redis (docs/redis-layout.md): every key of a
partition carries its hash tag, so a partition is one slot and a script call
stays on one master.  What differs is what a cluster refuses or routes:

- a script call declares every key the script derives from its arguments in
  KEYS (``declared_keys``): during a slot migration Redis then answers
  TRYAGAIN or ASK before the script runs, instead of failing it halfway at the
  first key that already moved;
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
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar
from urllib.parse import unquote, urlsplit

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.client import NEVER_DECODE
from redis.exceptions import AskError, MovedError, ResponseError, SlotNotCoveredError

from nodedrop.store.config import StoreConfig
from nodedrop.store.errors import Misconfigured, Unavailable
from nodedrop.store.keys import JOBS_GROUP, Keys
from nodedrop.store.model import Delivery, TailEntry
from nodedrop.store.ports import TailCursor
from nodedrop.store.redis_store import (
    _DOWN,
    CLUSTER_SCHEME,
    RedisStore,
    _Call,
    _raw_reply,
    _records,
    _run,
    _tail_records,
    _unavailable,
)
from nodedrop.store.scripts import SCRIPTS

__all__ = ["RedisClusterStore", "declared_keys", "parse_cluster_url"]

_T = TypeVar("_T")
# An events entry the tail read: partition, entry id, its events.
_TailItem = tuple[int, str, list[TailEntry]]
# How long closing waits for job reads in flight to bring what they read.
_CLOSE_WAIT_S = 2.0


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

    Keys a script only finds while it runs cannot be declared: the executions
    of the entries ``take`` and ``reclaim`` read, the due ones of ``move_due``,
    a tenant's next parked execution a freed place goes to, and the tenant's
    admission keys where only the execution's hash names the tenant
    (``commit``, ``acquire`` of a cancelled execution, a cancel for any
    tenant).  Those keys are in the same slot, so they are served unless that
    slot is being migrated (docs/redis-layout.md, "On Redis Cluster").
    """
    a = [str(x) for x in args]
    out = [key]
    if name in ("trim", "requeue", "swap_schedule", "purge_failed"):
        pass  # KEYS[1] is all they touch (purge_failed: the failed set, then its ids)
    elif name == "take":
        base = a[0]
        out += _lane_streams(k, base, a[6:])
        out += [base + "events", base + "delayed", base + "stats"]
    elif name == "move_due":
        base = a[0]
        out += [*_lane_streams(k, base, a[5:]), base + "parked"]
    elif name == "reclaim":
        base = a[0]
        out += [base + "events", base + "failed", base + "stats"]
    else:
        base, execution = a[0], a[1]
        ek = base + "exec:" + execution
        out += [ek, ek + ":out", ek + ":ev", base + "events"]
        if name == "enqueue":
            tenant, lane = a[2], a[6]
            out += _lane_streams(k, base, [lane])
            out += [base + "delayed", base + "in:" + tenant, base + "park:" + tenant]
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
                out += [base + "in:" + tenant, base + "park:" + tenant]
        elif name == "retry_failed":
            out += [*_lane_streams(k, base, a[6:]), base + "failed", base + "parked"]
        elif name == "restore_failed":
            out += [base + "failed"]
    # KEYS[1] names one of them already (the exec hash, a stream): once each.
    return list(dict.fromkeys(out))


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
        for s in SCRIPTS.values():
            await _run(
                self._c.execute_command(
                    "SCRIPT LOAD", s.source, target_nodes=RedisCluster.PRIMARIES
                )
            )

    async def _pipe(self, calls: Sequence[_Call]) -> list[Any]:
        """One pipeline per master; every key the script derives from its
        arguments declared.  A reply that is an error comes back in place."""
        pipe = self._c.pipeline()
        lanes = self.config.lanes
        for script, key, args in calls:
            keys = declared_keys(self._k, script.name, key, args, lanes)
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
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
