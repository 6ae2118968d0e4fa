"""The services' one back-off: exponential, full jitter, capped, stoppable."""

from __future__ import annotations

import asyncio
import time

import pytest

from nodedrop.common.retry import Backoff


def test_ceiling_doubles_per_failure_up_to_the_cap() -> None:
    b = Backoff(0.05, 1.0, rng=lambda: 1.0)
    assert [b.next_delay() for _ in range(7)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_full_jitter_draws_below_the_ceiling() -> None:
    b = Backoff(0.1, 10.0, rng=lambda: 0.25)
    assert [b.next_delay() for _ in range(3)] == [0.025, 0.05, 0.1]
    real = Backoff(0.1, 0.4)
    delays = [real.next_delay() for _ in range(200)]
    assert all(0 <= d <= 0.4 for d in delays)
    assert len(set(delays)) > 100  # not one fixed schedule for every replica


def test_reset_starts_over_and_a_long_outage_does_not_overflow() -> None:
    b = Backoff(0.05, 2.0, rng=lambda: 1.0)
    for _ in range(5000):
        b.next_delay()
    assert b.next_delay() == 2.0
    b.reset()
    assert b.failures == 0 and b.next_delay() == 0.05


@pytest.mark.parametrize(("base", "cap"), [(0, 1), (-1, 1), (2, 1)])
def test_refuses_a_bad_policy(base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        Backoff(base, cap)


async def test_wait_sleeps_the_next_delay() -> None:
    b = Backoff(0.05, 0.05, rng=lambda: 1.0)
    started = time.monotonic()
    assert await b.wait()
    assert 0.04 <= time.monotonic() - started < 1.0
    assert b.failures == 1


async def test_stop_ends_a_wait_at_once() -> None:
    stop = asyncio.Event()
    b = Backoff(30.0, 30.0, stop=stop, rng=lambda: 1.0)
    asyncio.get_running_loop().call_later(0.05, stop.set)
    started = time.monotonic()
    assert not await b.wait()
    assert time.monotonic() - started < 5.0
    # Once stopped, no further wait sleeps at all.
    assert not await b.wait(30.0)
