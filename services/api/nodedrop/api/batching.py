"""Coalesces concurrent execution inserts into one multi-row INSERT.

Each ExecuteWorkflow call awaits its own future; a background task drains
whatever has queued up (up to `max_batch`) into one repository call. Under
load this turns N round trips into about N / batch; an idle call waits no
extra time, since the drain starts as soon as one item is queued.
"""

from __future__ import annotations

import asyncio
import contextlib

from nodedrop.api.model import NewExecution
from nodedrop.api.repository import ExecutionRepository, InsertOutcome

__all__ = ["InsertBatcher"]

_Pending = tuple[NewExecution, asyncio.Future[InsertOutcome]]


class InsertBatcher:
    def __init__(
        self, repository: ExecutionRepository, *, max_batch: int = 256, concurrency: int = 4
    ) -> None:
        self._repo = repository
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._slots = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="nodedrop-insert-batcher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(RuntimeError("the API is shutting down"))

    async def insert(self, execution: NewExecution) -> InsertOutcome:
        if self._task is None:
            # Not started (tests, CLI): insert directly.
            return (await self._repo.insert_executions([execution]))[0]
        future: asyncio.Future[InsertOutcome] = asyncio.get_running_loop().create_future()
        await self._queue.put((execution, future))
        return await future

    async def _drain(self) -> None:
        while True:
            first = await self._queue.get()
            await self._slots.acquire()
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            task = asyncio.create_task(self._flush(batch))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _flush(self, batch: list[_Pending]) -> None:
        try:
            outcomes = await self._repo.insert_executions([e for e, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
        finally:
            self._slots.release()
