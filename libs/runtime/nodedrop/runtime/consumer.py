"""The consumer: the worker's delivery loop over one AttemptRunner.

    read loop ──batch──> acquire (one pipeline) ──> AttemptRunner.begin
    heartbeat loop: keep read-but-unstarted entries, then the runner's leases

Stopping (SIGTERM or DrainWorker): the read loop ends at once; running attempts
get the grace period; what still runs then is checkpointed and handed back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass

from nodedrop.common.logging import get_logger
from nodedrop.common.metrics import Metrics
from nodedrop.common.retry import Backoff
from nodedrop.runtime.attempts import (
    BACKOFF_BASE_S,
    BACKOFF_MAX_S,
    AttemptConfig,
    AttemptRunner,
)
from nodedrop.runtime.ports import Store
from nodedrop.runtime.runner import Runner
from nodedrop.store import Delivery, Unavailable

log = get_logger("nodedrop.runtime.consumer")


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    worker_id: str
    concurrency: int
    lease_s: float
    heartbeat_s: float
    read_block_s: float
    read_batch: int


@dataclass(frozen=True, slots=True)
class Counters:
    consuming: bool
    draining: bool
    active: int
    completed: int
    failed: int
    fence_refusals: int


class Consumer:
    def __init__(
        self,
        store: Store,
        runner: Runner,
        config: ConsumerConfig,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._cfg = config
        self._attempts = AttemptRunner(
            store,
            runner,
            AttemptConfig(
                worker_id=config.worker_id,
                concurrency=config.concurrency,
                lease_s=config.lease_s,
            ),
            metrics=metrics,
            on_slot_free=self._return_slot,
        )
        self._backlog: deque[Delivery] = deque()
        self._free = config.concurrency
        self._slot_freed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._consuming = False
        # The last read found work: refill with take (no BLOCK) until one comes back empty.
        self._busy = False
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self._attempts.start()
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="read"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
        ]

    def counters(self) -> Counters:
        a = self._attempts
        return Counters(
            consuming=self._consuming,
            draining=self._stopping.is_set(),
            active=len(a.jobs),
            completed=a.completed,
            failed=a.failed,
            fence_refusals=a.refusals,
        )

    def begin_drain(self) -> None:
        """Stop reading at once; running attempts go on."""
        self._stopping.set()
        self._consuming = False

    async def stop(self, grace_s: float) -> None:
        """Drain: no read after this, running work gets ``grace_s``, the rest is handed back."""
        if self._stopped:
            return
        self._stopped = True
        self.begin_drain()
        deadline = time.monotonic() + grace_s
        read = self._tasks[0] if self._tasks else None
        if read is not None:
            # The loop sees the drain when its blocking read returns and gives back
            # what that read got; cancel only a read that outlives its BLOCK (it
            # could otherwise be cut between a lease and the start of the job).
            self._slot_freed.set()
            done, _ = await asyncio.wait([read], timeout=self._cfg.read_block_s + 0.5)
            if not done:
                read.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await read
        # Entries read but never started go back to the stream for others.
        if self._backlog:
            with contextlib.suppress(Unavailable):
                await self._store.requeue(list(self._backlog))
            self._backlog.clear()
        # The heartbeat keeps the leases of what runs until the hand-back.
        handed_back = await self._attempts.stop(deadline, hand_back=True)
        for t in self._tasks[1:]:
            t.cancel()
        for t in self._tasks[1:]:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        log.info("drained", completed=self._attempts.completed, handed_back=handed_back)

    # -- reading ---------------------------------------------------------------

    async def _read_loop(self) -> None:
        # The drain ends a back-off at once: the loop then sees it and returns.
        backoff = Backoff(BACKOFF_BASE_S, BACKOFF_MAX_S, stop=self._stopping)
        block_ms = max(1, int(self._cfg.read_block_s * 1000))
        while not self._stopping.is_set():
            if self._free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                if self._backlog:
                    batch = [
                        self._backlog.popleft() for _ in range(min(self._free, len(self._backlog)))
                    ]
                elif self._busy:
                    # Work was waiting a moment ago: read and lease in one round
                    # trip, without BLOCK (an empty take falls back to the read).
                    await self._take()
                    backoff.reset()
                    continue
                else:
                    count = min(self._free, self._cfg.read_batch)
                    self._consuming = True
                    got = await self._store.read_jobs(self._cfg.worker_id, count, block_ms)
                    if self._stopping.is_set():
                        # Read while the drain began: give it back untouched.
                        await self._store.requeue(got)
                        return
                    batch, rest = got[: self._free], got[self._free :]
                    self._backlog.extend(rest)
                    # A full read suggests more is waiting, and so does a read of
                    # several entries: fair admission keeps a busy tenant's
                    # backlog out of the streams, so reads come back partial
                    # while it drains.  After a single entry the next read blocks
                    # again, so an idle worker answers a new job from its
                    # blocking read at once.
                    self._busy = len(got) >= count or len(got) > 1
                if batch:
                    await self._start(batch)
                backoff.reset()
            except Unavailable as e:
                self._consuming = False
                log.warning("store unavailable, retrying", error=str(e))
                await backoff.wait()
            except Exception:
                # A refusal of the store (a Redis out of memory, ...) or a bug must
                # not stop consumption silently: say so, back off, go on.
                self._consuming = False
                log.exception("read loop failed")
                await backoff.wait()

    async def _take(self) -> None:
        count = min(self._free, self._cfg.read_batch)
        lease_ms = int(self._cfg.lease_s * 1000)
        acquired = await self._store.take(self._cfg.worker_id, count, lease_ms, _now_ms())
        self._busy = bool(acquired)
        if self._stopping.is_set():
            # Leased while the drain began: hand them back for another worker.
            leases = [a.lease for a in acquired if a.lease is not None]
            if leases:
                await self._store.release(leases)
            return
        self._free -= self._attempts.begin(acquired)

    async def _start(self, batch: list[Delivery]) -> None:
        now = _now_ms()
        lease_ms = int(self._cfg.lease_s * 1000)
        acquired = await self._store.acquire(batch, lease_ms, now, self._cfg.worker_id)
        self._free -= self._attempts.begin(acquired)

    def _return_slot(self) -> None:
        self._free += 1
        self._slot_freed.set()

    # -- heartbeat -------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.heartbeat_s)
            if self._backlog:
                # Read but not started yet: keep the reclaimer off them.
                try:
                    await self._store.touch(list(self._backlog), self._cfg.worker_id)
                except Unavailable as e:
                    log.warning("heartbeat failed", error=str(e))
            await self._attempts.heartbeat(self._cfg.heartbeat_s * 0.5)


def _now_ms() -> int:
    return int(time.time() * 1000)
