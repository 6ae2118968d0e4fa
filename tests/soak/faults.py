"""The faults, injected one at a time in a seeded random order.

The schedule deals from a shuffled deck of every enabled fault, so a short
run still meets each of them; a fault is bounded in time and leaves the
system running (whatever it killed is started again). ``worker2`` is the
control worker: no fault ever targets it, and ``worker1`` is only killed or
paused; a lease either loses outside those windows can only have been taken
from a healthy worker, which is a violation (unless Redis itself was paused
longer than the lease: leases run on Redis' clock). ``worker0`` reaches Redis
through the proxy and takes the partitions, the drains and the clock skew
(its log times follow its skewed clock, so its leases are not judged).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.soak.cluster import WORKER_IDS, Cluster
from tests.soak.workload import BY_NAME, Submitter

__all__ = ["ALL_FAULTS", "FaultLog", "Injector", "wipe_redis"]

TARGET_WORKERS = ("worker0", "worker1")
JUDGED_WORKERS = ("worker1", "worker2")


@dataclass
class FaultRecord:
    name: str
    target: str
    start: float
    end: float = 0.0
    note: str = ""


@dataclass
class FaultLog:
    records: list[FaultRecord] = field(default_factory=list)
    drain_seconds: list[float] = field(default_factory=list)
    drain_exits: list[int | None] = field(default_factory=list)
    # Pauses that ended with the paused worker holding a delivery another
    # worker had leased meanwhile, and what its peers lost when it woke.
    held_past_lease: int = 0
    unjudged_wakes: int = 0
    healthy_fenced: list[tuple[float, str]] = field(default_factory=list)

    def redis_pauses(self) -> list[tuple[float, float]]:
        """Wall-clock windows when Redis was paused (SIGSTOP) or lost."""
        return [(r.start, r.end) for r in self.records if r.name in ("redis_pause", "redis_wipe")]


@dataclass
class Injector:
    cluster: Cluster
    rng: random.Random
    log: FaultLog
    enabled: tuple[str, ...]
    submitter: Submitter | None = None

    def _lease(self) -> float:
        return self.cluster.settings.lease_s

    async def run(self, stop: asyncio.Event, gap_s: tuple[float, float]) -> None:
        deck: list[str] = []
        if not self.enabled:
            await stop.wait()
            return
        for _ in range(10_000):
            if stop.is_set():
                return
            try:
                await asyncio.wait_for(stop.wait(), self.rng.uniform(*gap_s))
                return
            except TimeoutError:
                pass
            if not deck:
                # Twice each: the silent partition (a read reply reaching a worker
                # after its entry was reclaimed) and the drain over a slow link.
                deck = list(self.enabled) + [
                    f for f in self.enabled if f in ("partition_silent", "drain_worker")
                ]
                self.rng.shuffle(deck)
            name = deck.pop()
            await self.inject(name)

    async def inject(self, name: str) -> None:
        fault: Callable[[FaultRecord], Awaitable[None]] = getattr(self, f"_{name}")
        record = FaultRecord(name, "", time.time())
        self.log.records.append(record)
        try:
            await fault(record)
        finally:
            record.end = time.time()
        at = time.strftime("%H:%M:%S", time.gmtime(record.start))
        print(
            f"  {at} fault {name:<16} {record.target:<12} {record.end - record.start:5.1f} s"
            + (f"  {record.note}" if record.note else ""),
            flush=True,
        )

    async def _restart_later(self, name: str, record: FaultRecord) -> None:
        record.target = name
        await self.cluster.services[name].kill()
        await asyncio.sleep(self.rng.uniform(0.5, 1.5))
        self.cluster.services[name].start()

    async def _kill_worker(self, record: FaultRecord) -> None:
        await self._restart_later(self.rng.choice(TARGET_WORKERS), record)

    async def _kill_scheduler(self, record: FaultRecord) -> None:
        await self._restart_later("scheduler", record)

    async def _kill_api(self, record: FaultRecord) -> None:
        await self._restart_later("api", record)

    async def _kill_events(self, record: FaultRecord) -> None:
        await self._restart_later("events", record)

    async def _stop_worker(self, record: FaultRecord) -> None:
        """SIGSTOP past the lease: its jobs are reclaimed; on SIGCONT it is fenced.

        A paused worker's blocking read is still answered by Redis: executions
        submitted right after the pause are delivered to it and wait in its
        socket. Once the reclaimer took such a delivery back and another worker
        leased it, the paused worker wakes and must not lease it again: a worker
        that was never paused would lose that lease (and the node would run
        twice). Its peers' fence refusals are compared across the wake."""
        name = self.rng.choice(TARGET_WORKERS)
        record.target = name
        s = self.cluster.services[name]
        peers = [w for w in self.cluster.services if w.startswith("worker") and w != name]
        for w in peers:
            await self.cluster.wait_serving(w, 10.0)
        held: list[str] = []
        tries = 0
        for tries in range(1, 4):
            # Reading again (a previous fault may have left it reconnecting): its
            # next blocking read is then the one the pause catches.
            await self.cluster.wait_consuming(name, 10.0)
            s.signal(signal.SIGSTOP)
            paused_at = time.monotonic()
            held = await self._deliver_to_paused(name)
            if held or tries == 3:
                break
            # Its read had ended or went to a peer: a short pause, harmless; again.
            s.signal(signal.SIGCONT)
            await asyncio.sleep(0.5)
        try:
            leased = await self._leased_elsewhere(held)
            # Past the lease in any case: its own attempts are reclaimed too.
            await asyncio.sleep(max(0.0, paused_at + self._lease() + 1.5 - time.monotonic()))
            before = await self.cluster.fence_refusals(peers)
        finally:
            s.signal(signal.SIGCONT)
        if not leased:
            record.note = f"{len(held)} deliveries held after {tries} pauses, none leased elsewhere"
            return
        self.log.held_past_lease += 1
        # The peers renew every heartbeat: a lease taken from them shows by then.
        await asyncio.sleep(2 * self.cluster.settings.heartbeat_s + 0.5)
        after = await self.cluster.fence_refusals(peers)
        record.note = f"held {', '.join(leased)} past the lease ({tries} pauses)"
        unread = [w for w in peers if w not in before or w not in after]
        if unread:
            # Not judged, and said so: the figure shows how often.
            self.log.unjudged_wakes += 1
            record.note += f"; no status from {', '.join(unread)}"
        for w in peers:
            if w in before and w in after and after[w] > before[w]:
                self.log.healthy_fenced.append(
                    (
                        time.time(),
                        f"{w} lost {after[w] - before[w]} leases when {name} woke from a pause"
                        f" holding a delivery of {', '.join(leased)} already leased elsewhere",
                    )
                )

    async def _deliver_to_paused(self, name: str) -> list[str]:
        """Submits a burst of long executions, one for each worker's blocking
        read and one more; those delivered to the paused worker (within 1.5 s)."""
        if self.submitter is None:
            return []
        kind, rng = BY_NAME["held"], self.submitter.rng
        subs = await asyncio.gather(
            *(self.submitter.submit(kind, rng.randrange(1, 1000)) for _ in self.cluster.workers),
            self.submitter.submit(kind, rng.randrange(1, 1000)),
        )
        submitted = [x.execution_id for x in subs if x is not None]
        held: list[str] = []
        for _ in range(15):
            held = await self.cluster.pending_for(WORKER_IDS[name], submitted)
            if held:
                break
            await asyncio.sleep(0.1)
        return held

    async def _leased_elsewhere(self, held: list[str]) -> list[str]:
        """Until the reclaimer took the held deliveries back and another worker
        leased them (bounded); those that were."""
        if not held:
            return []
        s = self.cluster.settings
        deadline = time.monotonic() + s.lease_s + 3 * s.reclaim_interval_s + 2.0
        while time.monotonic() < deadline:
            running = await self.cluster.running(held)
            if running:
                return running
            await asyncio.sleep(0.05)
        return []

    async def _drain_worker(self, record: FaultRecord) -> None:
        """SIGTERM of worker0 over a slow link to Redis: it stops reading, lets
        running attempts finish within the grace and exits once their last
        commits are sent (the slow link spreads them over several rounds)."""
        name = "worker0"
        record.target = name
        s = self.cluster.services[name]
        proxy = self.cluster.proxy
        assert proxy is not None
        # A process signalled before it installed its handlers would not drain;
        # and a drain with several attempts running ends them in several rounds.
        # Waiting attempts end right after a checkpoint (workload.py): a burst of
        # them makes sure the drain's last end is one.
        await self.cluster.wait_serving(name, 30.0)
        await self.cluster.wait_consuming(name, 10.0)
        if self.submitter is not None:
            kind, rng = BY_NAME["waiting"], self.submitter.rng
            await asyncio.gather(
                *(self.submitter.submit(kind, rng.randrange(1, 1000)) for _ in range(6))
            )
        active = await self.cluster.wait_active_jobs(name, 3, 5.0)
        proxy.delay_s = 0.25
        began = time.monotonic()
        try:
            s.signal(signal.SIGTERM)
            code = await s.wait_exit(self.cluster.settings.grace_s + 10)
        finally:
            proxy.delay_s = 0.0
        took = time.monotonic() - began
        self.log.drain_seconds.append(took)
        self.log.drain_exits.append(code)
        record.note = f"drained in {took:.2f} s ({active} attempts running), exit {code}"
        await s.kill()
        s.start()

    async def _pg_restart(self, record: FaultRecord) -> None:
        """PostgreSQL restarts, and the API dies while it is down: its history
        recorder then holds entries it read and could not record."""
        record.target = "postgres+api"
        pg = self.cluster.pg
        assert pg is not None
        await asyncio.to_thread(pg.stop)
        await asyncio.sleep(self.rng.uniform(1.0, 2.0))
        # Killed once its recorder holds entries it read and could not record.
        held = await self.cluster.history_pending(5.0)
        record.note = f"{held} history entries held"
        await self.cluster.services["api"].kill()
        await asyncio.to_thread(pg.start)
        self.cluster.services["api"].start()

    async def _redis_pause(self, record: FaultRecord) -> None:
        """SIGSTOP of Redis longer than the lease: every lease outlives its renewals."""
        record.target = "redis"
        redis = self.cluster.redis
        assert redis is not None
        redis.signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(self._lease() + 1.5)
        finally:
            redis.signal(signal.SIGCONT)

    async def _partition(self, record: FaultRecord, *, silent: bool) -> None:
        proxy = self.cluster.proxy
        assert proxy is not None
        record.target = "worker0"
        if silent:
            proxy.stall()
        else:
            proxy.cut()
        try:
            # Long enough for the reclaimer to hand worker0's attempts to another
            # worker (idle past the lease, then its next round) before the heal.
            await asyncio.sleep(self._lease() + 3 * self.cluster.settings.reclaim_interval_s + 1)
        finally:
            proxy.heal()

    async def _partition_reset(self, record: FaultRecord) -> None:
        """worker0 loses Redis: its connections are reset, new ones refused."""
        await self._partition(record, silent=False)

    async def _partition_silent(self, record: FaultRecord) -> None:
        """worker0 loses Redis silently: bytes stop, nothing is reset; a read reply
        held up past the lease reaches it on heal."""
        await self._partition(record, silent=True)

    async def _clock_skew(self, record: FaultRecord) -> None:
        """worker0 restarts with its wall clock off by several leases (either way)."""
        record.target = "worker0"
        skew = self.rng.choice((-1, 1)) * self._lease() * self.rng.uniform(3, 6)
        record.note = f"skew {skew:+.1f} s"
        await self.cluster.restart("worker0", self.cluster.worker_env(0, skew_s=skew))


ALL_FAULTS = (
    "kill_worker",
    "kill_scheduler",
    "kill_api",
    "kill_events",
    "stop_worker",
    "drain_worker",
    "pg_restart",
    "redis_pause",
    "partition_reset",
    "partition_silent",
    "clock_skew",
)


async def wipe_redis(cluster: Cluster, log: FaultLog) -> None:
    """Redis restarts empty (no persistence): every key is gone."""
    record = FaultRecord("redis_wipe", "redis", time.time())
    log.records.append(record)
    redis = cluster.redis
    assert redis is not None
    redis.kill()
    await asyncio.sleep(0.5)
    await asyncio.to_thread(redis.start)
    record.end = time.time()
    at = time.strftime("%H:%M:%S", time.gmtime(record.start))
    took = record.end - record.start
    print(f"  {at} fault redis_wipe       redis        {took:5.1f} s", flush=True)
