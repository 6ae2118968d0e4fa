"""MicroBatcher: concurrent calls coalesced into batched flushes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from nodedrop.api.batching import MicroBatcher
from nodedrop.common.errors import Unavailable


class Flusher:
    """Doubles each item; each flush waits until released, and may fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.fail_next = False
        self.inflight = 0
        self.most_inflight = 0

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        self.inflight += 1
        self.most_inflight = max(self.most_inflight, self.inflight)
        try:
            await self.gate.wait()
            if self.fail_next:
                self.fail_next = False
                raise Unavailable("flush failed")
            return [2 * i for i in items]
        finally:
            self.inflight -= 1


async def test_one_flush_in_flight_and_the_rest_becomes_the_next_batch() -> None:
    flush = Flusher()
    batcher: MicroBatcher[int, int] = MicroBatcher(flush, name="t", concurrency=1, max_batch=5)
    batcher.start()
    try:
        first = asyncio.create_task(batcher.submit(0))
        await asyncio.sleep(0.01)
        rest = [asyncio.create_task(batcher.submit(i)) for i in range(1, 8)]
        await asyncio.sleep(0.01)
        flush.gate.set()
        assert await first == 0
        assert await asyncio.gather(*rest) == [2 * i for i in range(1, 8)]
    finally:
        await batcher.stop()
    assert flush.batches == [[0], [1, 2, 3, 4, 5], [6, 7]]
    assert flush.most_inflight == 1


async def test_a_failed_flush_fails_its_callers_only() -> None:
    flush = Flusher()
    batcher: MicroBatcher[int, int] = MicroBatcher(flush, name="t", concurrency=1)
    batcher.start()
    try:
        flush.fail_next = True
        failed = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
        flush.gate.set()
        for outcome in await asyncio.gather(*failed, return_exceptions=True):
            assert isinstance(outcome, Unavailable)
        assert await batcher.submit(21) == 42
    finally:
        await batcher.stop()


async def test_stop_lets_the_flush_in_flight_finish_and_fails_the_rest() -> None:
    flush = Flusher()
    batcher: MicroBatcher[int, int] = MicroBatcher(flush, name="t", concurrency=1)
    batcher.start()
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.01)
    queued = [asyncio.create_task(batcher.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0.01)
    stopping = asyncio.create_task(batcher.stop())
    await asyncio.sleep(0.01)
    flush.gate.set()
    await stopping
    assert await first == 2
    for outcome in await asyncio.gather(*queued, return_exceptions=True):
        assert isinstance(outcome, Unavailable)
    assert flush.batches == [[1]]


async def test_not_started_calls_flush_directly() -> None:
    flush = Flusher()
    flush.gate.set()
    batcher: MicroBatcher[int, int] = MicroBatcher(flush, name="t")
    assert await batcher.submit(4) == 8
    assert flush.batches == [[4]]


async def test_under_concurrent_load_a_linger_lets_later_arrivals_join_the_batch() -> None:
    flush = Flusher()
    flush.gate.set()
    batcher: MicroBatcher[int, int] = MicroBatcher(flush, name="t", concurrency=1, linger_s=0.2)
    batcher.start()
    try:
        # Concurrent callers: a burst, so the batcher has seen batches of more than one.
        for burst in range(4):
            await asyncio.gather(*(batcher.submit(i) for i in range(8 * burst, 8 * burst + 8)))
        # Then callers arriving 20 ms apart, well within the linger.
        staggered = []
        for i in range(32, 37):
            staggered.append(asyncio.create_task(batcher.submit(i)))
            await asyncio.sleep(0.02)
        assert await asyncio.gather(*staggered) == [2 * i for i in range(32, 37)]
    finally:
        await batcher.stop()
    # Without the linger each staggered item would be a batch of its own.
    assert [32, 33, 34, 35, 36] in flush.batches, flush.batches


async def test_a_lone_caller_calling_back_to_back_never_waits_for_the_linger() -> None:
    flush = Flusher()
    flush.gate.set()
    linger_s = 0.5
    batcher: MicroBatcher[int, int] = MicroBatcher(
        flush, name="t", concurrency=1, linger_s=linger_s
    )
    batcher.start()
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        for i in range(6):
            assert await batcher.submit(i) == 2 * i
        elapsed = loop.time() - started
    finally:
        await batcher.stop()
    assert flush.batches == [[i] for i in range(6)]
    # Six waits of the linger would take 3 s.
    assert elapsed < linger_s, elapsed
