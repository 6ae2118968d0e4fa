"""Stalls: moments the machine could not run the soak's own process.

On a loaded machine every process can be held off the CPU for seconds. A
worker held off longer than the lease minus one heartbeat misses its renewal
and loses a lease it did nothing wrong to lose; the soak cannot see that
worker's heartbeats, but it sees its own event loop: a tick due every
``tick_s`` that comes seconds late says the whole machine was starved then.
A lease a judged worker lost during or right after such a stall is reported
as lost to starvation (its own figure, with the stall), not as a violation.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

__all__ = ["StallMonitor"]


@dataclass
class StallMonitor:
    tick_s: float = 0.1
    # Lateness worth recording: far beyond what the soak's own work causes.
    min_stall_s: float = 0.5
    stalls: list[tuple[float, float]] = field(default_factory=list)

    async def run(self, stop: asyncio.Event, max_s: float) -> None:
        """Ticks until ``stop`` (or ``max_s``), recording every late tick as a
        wall-clock window."""
        for _ in range(int(max_s / self.tick_s) + 1):
            if stop.is_set():
                return
            began_wall, began = time.time(), time.monotonic()
            await asyncio.sleep(self.tick_s)
            late = time.monotonic() - began - self.tick_s
            if late >= self.min_stall_s:
                self.stalls.append((began_wall, time.time()))

    def longest(self) -> float:
        return max((b - a for a, b in self.stalls), default=0.0)

    def covering(self, t: float, before_s: float, at_least_s: float) -> tuple[float, float] | None:
        """A stall of ``at_least_s`` or longer that ended within ``before_s``
        before ``t`` (or still ran at ``t``)."""
        for a, b in self.stalls:
            if b - a >= at_least_s and a <= t and b >= t - before_s:
                return a, b
        return None
