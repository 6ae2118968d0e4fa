"""The one retry policy of the services' loops: exponential back-off with full jitter.

A loop that must outlive an outage (a store read loop, a commit, a
maintenance pass) keeps one ``Backoff``: ``await backoff.wait()`` after each
failure, ``backoff.reset()`` after a success.  The n-th failure in a row waits
a random time in ``[0, min(max_s, base_s * 2**(n-1))]`` ("full jitter"), so
replicas that lost the same server do not come back to it in step, and the
wait never grows past ``max_s``.  A ``stop`` event ends a wait at once:
shutdown does not sit out a back-off.

Written here rather than taken from tenacity: these loops retry forever and
go on after a success, which tenacity's call-until-it-succeeds model fits only
by wrapping every step in a new retrying object.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    def __init__(
        self,
        base_s: float = 0.05,
        max_s: float = 2.0,
        *,
        stop: asyncio.Event | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if base_s <= 0 or max_s < base_s:
            raise ValueError(f"need 0 < base_s <= max_s, got {base_s} and {max_s}")
        self.base_s = base_s
        self.max_s = max_s
        self.failures = 0
        self._stop = stop
        self._rng = rng

    def reset(self) -> None:
        """After a success: the next failure waits the shortest again."""
        self.failures = 0

    def next_delay(self) -> float:
        """Counts a failure and returns how long to wait before the next try."""
        self.failures += 1
        # The exponent is capped first: 2**n overflows a float long after the
        # cap is reached, and a loop may fail for days.
        ceiling: float = min(self.max_s, self.base_s * 2.0 ** min(self.failures - 1, 64))
        return ceiling * self._rng()

    async def wait(self, delay: float | None = None) -> bool:
        """Sleeps ``delay`` (the next back-off when not given); False when the
        stop event was set before or during the wait."""
        if delay is None:
            delay = self.next_delay()
        if self._stop is None:
            await asyncio.sleep(delay)
            return True
        if self._stop.is_set():
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)
        return not self._stop.is_set()
