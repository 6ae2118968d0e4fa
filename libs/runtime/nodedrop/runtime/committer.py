"""Group commit: every buffered write of every running job goes out in one pipeline.

Engines add checkpoints and events to their job's buffer without waiting; the
flusher sends what has gathered since its last round as one EVALSHA pipeline,
so a batch of short executions costs one round trip per stage, and a job's
last checkpoint travels with its end (the finish, the TTL cut and the XACK).
Rounds run one at a time, which keeps each job's commits in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeAlias

from nodedrop.common.logging import get_logger
from nodedrop.common.retry import Backoff
from nodedrop.runtime.job import Job
from nodedrop.store import Commit, CommitResult, StateStore, Transition, Unavailable

log = get_logger("nodedrop.runtime.committer")

_RETRY_BASE_S = 0.05
_RETRY_MAX_S = 2.0

# Told whether the fence accepted a job's last commit: a future someone awaits,
# or a callback (the consumer's, so an ending job needs no task waiting for it).
Waiter: TypeAlias = "asyncio.Future[bool] | Callable[[bool], None]"


class Committer:
    def __init__(self, store: StateStore, on_refused: Callable[[Job], None]) -> None:
        self._store = store
        self._on_refused = on_refused
        self._dirty: dict[Job, None] = {}
        self._endings: dict[Job, tuple[Transition | None, Waiter]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="committer")

    async def stop(self) -> None:
        """Flushes what is buffered, then stops."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task

    def touch(self, job: Job) -> None:
        self._dirty[job] = None
        self._wake.set()

    def end(self, job: Job, transition: Transition | None) -> asyncio.Future[bool]:
        """Queues the job's last commit; the future tells whether the fence accepted it.

        ``transition`` None flushes the buffer without ending the attempt (drain)."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.finish(job, transition, fut)
        return fut

    def finish(self, job: Job, transition: Transition | None, waiter: Waiter) -> None:
        """``end`` with a given waiter; a callback runs inside the commit round."""
        self._endings[job] = (transition, waiter)
        self._dirty.pop(job, None)
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._dirty and not self._endings:
                if self._stopping:
                    return
                continue
            await self._round()
            # stop() may have set the wake while this round ran, and the wake
            # was then consumed by the round itself: once a stopping committer
            # has nothing left, it must end here, not wait for a wake-up that
            # nobody will send (the drain would sit out its whole grace).
            if self._stopping and not self._dirty and not self._endings:
                return

    async def _round(self) -> None:
        dirty, self._dirty = self._dirty, {}
        endings, self._endings = self._endings, {}
        commits: list[Commit] = []
        owners: list[tuple[Job, Waiter | None]] = []
        for job in dirty:
            if job.fenced_out:
                continue
            c = job.take_commit()
            if c is not None:
                commits.append(c)
                owners.append((job, None))
        for job, (transition, fut) in endings.items():
            c = None if job.fenced_out else job.take_commit(transition)
            if c is None:
                _tell(fut, not job.fenced_out)
                continue
            commits.append(c)
            owners.append((job, fut))
        if not commits:
            return
        try:
            results = await self._send(commits)
        except Exception:
            # A fault here must not leave the round's jobs waiting for their end.
            log.exception("commit round failed")
            for _, waiter in owners:
                if waiter is not None:
                    _tell(waiter, False)
            return
        for (job, waiter), r in zip(owners, results, strict=True):
            if not r.ok:
                job.fenced_out = True
                self._on_refused(job)
            if waiter is not None:
                _tell(waiter, r.ok)

    async def _send(self, commits: list[Commit]) -> list[CommitResult]:
        # Numbered commits make a resend after a lost reply safe: the store applies
        # each number once.  Retry until it answers; leases expire meanwhile and
        # the fence then refuses, which is the right answer.
        backoff = None  # made on the first failure: every round passes here
        while True:
            try:
                return await self._store.commit(commits, int(time.time() * 1000))
            except Unavailable as e:
                log.warning("commit failed, retrying", error=str(e))
                backoff = backoff or Backoff(_RETRY_BASE_S, _RETRY_MAX_S)
                await backoff.wait()


def _tell(waiter: Waiter, ok: bool) -> None:
    if isinstance(waiter, asyncio.Future):
        if not waiter.done():
            waiter.set_result(ok)
        return
    try:
        waiter(ok)
    except Exception:
        # One job's bookkeeping must not cost the rest of the round its answers.
        log.exception("commit callback failed")
