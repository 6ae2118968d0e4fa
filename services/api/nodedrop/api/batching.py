"""Coalesces concurrent calls into one batched call.

Each caller awaits its own future; a background task drains whatever has
queued up (up to ``max_batch``) into one call of ``flush``, with at most
``concurrency`` flushes in flight. Under load this turns N round trips into
about N / batch; an idle call waits no extra time, since the drain starts as
soon as one item is queued. Used for the executions' multi-row INSERT and
for the pipelined enqueue into the store.

Both use one flush in flight (group commit): whatever arrives during a flush
is the next batch, so batches grow with the load and the round trip time
instead of splitting across parallel flushes: each flush is a round trip
and a pool checkout, whatever its size, so parallel flushes make smaller
batches (docs/benchmarks.md, API).

Group commit alone still leaves small batches under full load: a flush is
quick, and a process busy with gRPC hands over only a few calls meanwhile.
With a ``linger``, the drain holds a batch that long for more items, but
only while items arrive faster than one per linger (an average of the gaps
between arrivals) and the previous batch held more than one: a call on an
idle API, or a lone client calling back to back, waits for nothing. Fuller
batches mean fewer INSERTs and round trips per call (figures in
docs/benchmarks.md, API).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from nodedrop.api.model import NewExecution, Status
from nodedrop.api.queueing import EnqueueRequest
from nodedrop.api.repository import ExecutionRepository, InsertOutcome
from nodedrop.common.errors import Unavailable
from nodedrop.store import JobSpec

__all__ = ["Insert", "InsertBatcher", "MicroBatcher"]

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """``flush`` gets the batch's items and returns one result per item, in order."""

    def __init__(
        self,
        flush: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        name: str,
        max_batch: int = 256,
        concurrency: int = 4,
        linger_s: float = 0.0,
    ) -> None:
        self._flush_items = flush
        self._name = name
        self._max_batch = max_batch
        self._linger_s = linger_s
        # Average gap between arrivals (exponentially weighted), from idle.
        self._gap_s = 4 * linger_s
        self._last_arrival = 0.0
        self._last_batch = 0
        # A deque and one wake-up future rather than an asyncio.Queue: the
        # queue looks the running loop up (a getpid syscall) on every wait.
        self._items: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._arrived: asyncio.Future[None] | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._drain(), name=self._name)

    @property
    def running(self) -> bool:
        return self._task is not None

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        while self._items:
            _, future = self._items.popleft()
            if not future.done():
                future.set_exception(Unavailable("the API is shutting down"))

    async def submit(self, item: T) -> R:
        if self._task is None or self._loop is None:
            # Not started (tests, CLI): one call of its own.
            return (await self._flush_items([item]))[0]
        future: asyncio.Future[R] = self._loop.create_future()
        self.push(item, future)
        return await future

    def push(self, item: T, future: asyncio.Future[R]) -> None:
        """Queues ``item`` for a caller that awaits ``future`` (made on this loop):
        an earlier stage's flush hands its items on without waking their callers."""
        if self._task is None:
            future.set_exception(Unavailable(f"{self._name} is not running"))
            return
        self._items.append((item, future))
        if self._linger_s:
            assert self._loop is not None
            now = self._loop.time()
            # Capped: one pause must not hide the next burst for long.
            gap = min(now - self._last_arrival, 4 * self._linger_s)
            self._last_arrival = now
            self._gap_s = 0.9 * self._gap_s + 0.1 * gap
        arrived, self._arrived = self._arrived, None
        if arrived is not None and not arrived.done():
            arrived.set_result(None)

    async def _drain(self) -> None:
        assert self._loop is not None
        while True:
            if not self._items:
                self._arrived = self._loop.create_future()
                await self._arrived
            await self._slots.acquire()
            if (
                self._last_batch > 1
                and self._gap_s < self._linger_s
                and len(self._items) < self._max_batch
            ):
                # Concurrent callers, more items due within the linger: let them join.
                await asyncio.sleep(self._linger_s)
            batch = [self._items.popleft() for _ in range(min(len(self._items), self._max_batch))]
            self._last_batch = len(batch)
            task = self._loop.create_task(self._flush(batch))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _flush(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush_items([item for item, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._settle(batch, results)
        finally:
            self._slots.release()

    def _settle(self, batch: list[tuple[T, asyncio.Future[R]]], results: Sequence[R]) -> None:
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


class Insert:
    """One row through the InsertBatcher, and the job to enqueue once it is created."""

    __slots__ = ("execution", "job", "outcome")

    def __init__(self, execution: NewExecution, job: JobSpec | None = None) -> None:
        self.execution = execution
        self.job = job
        self.outcome: InsertOutcome | None = None


class JobHandoff(Protocol):
    """Where the INSERT flush hands a created row's job on (the store queue)."""

    def prepared(self, request: EnqueueRequest) -> JobSpec | None: ...

    def hand_on(self, job: JobSpec, future: asyncio.Future[Status]) -> None: ...


class InsertBatcher(MicroBatcher[Insert, Status]):
    """Execution rows, one multi-row INSERT per batch.

    A row submitted with its job (``insert_then_enqueue``) is handed on by the
    flush to ``handoff`` (the store enqueue's batcher) together with its
    caller's future once its row is committed: the caller wakes once, with its
    job enqueued, instead of waking to enqueue its job itself; and the jobs of
    one INSERT batch reach the enqueue batcher together, as soon as it commits.
    """

    def __init__(
        self,
        repository: ExecutionRepository,
        *,
        handoff: JobHandoff | None = None,
        max_batch: int = 256,
        concurrency: int = 1,
        linger_s: float = 0.0,
    ) -> None:
        super().__init__(
            self._insert,
            name="nodedrop-insert-batcher",
            max_batch=max_batch,
            concurrency=concurrency,
            linger_s=linger_s,
        )
        self._repo = repository
        self.handoff = handoff

    async def _insert(self, items: Sequence[Insert]) -> list[Status]:
        outcomes = await self._repo.insert_executions([i.execution for i in items])
        for item, outcome in zip(items, outcomes, strict=True):
            item.outcome = outcome
        return [o.status for o in outcomes]

    def _settle(
        self, batch: list[tuple[Insert, asyncio.Future[Status]]], results: Sequence[Status]
    ) -> None:
        handoff = self.handoff
        for (item, future), status in zip(batch, results, strict=True):
            if future.done():
                continue
            job = item.job
            if (
                job is not None
                and handoff is not None
                and item.outcome is not None
                and item.outcome.created
            ):
                handoff.hand_on(job, future)
            else:
                future.set_result(status)

    @property
    def hands_on(self) -> bool:
        """Whether a job submitted with its row is enqueued by the flush."""
        return self.running and self.handoff is not None

    def prepared(self, request: EnqueueRequest) -> JobSpec | None:
        """The job to submit with its row (``insert_then_enqueue``), when the
        handoff takes one for this request."""
        return self.handoff.prepared(request) if self.handoff is not None else None

    async def insert(self, execution: NewExecution) -> InsertOutcome:
        item = Insert(execution)
        await self.submit(item)
        assert item.outcome is not None
        return item.outcome

    async def insert_then_enqueue(self, item: Insert) -> Status:
        """The row's status; once created, the status its job's enqueue returned.
        A failure with ``item.outcome`` still None is the INSERT's, otherwise the enqueue's."""
        return await self.submit(item)
