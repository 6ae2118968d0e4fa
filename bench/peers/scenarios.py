"""The scenarios, and how big they are in a full and a --quick run.

Sizes are fixed by the issue (20,000 no-op jobs, 200 sequential latency
probes, 100 listeners); the time caps keep the whole run bounded: a peer that
cannot finish within its cap is reported with the jobs it did complete, the
rate over that time, and finished=false.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    name: str
    jobs: int  # jobs, probes, chains, or progress events per round
    rounds: int
    timeout_s: float  # cap per round
    what: str


def plan(quick: bool) -> tuple[Scenario, ...]:
    if quick:
        return (
            Scenario("throughput", 2_000, 1, 15.0, "no-op jobs, one INCR each"),
            Scenario("latency", 50, 1, 15.0, "sequential enqueue -> job start"),
            Scenario("chain", 200, 1, 15.0, "five-step chains, one INCR per step"),
            Scenario("events", 200, 1, 15.0, "progress events to 100 listeners"),
        )
    return (
        # Caps sized so the whole run stays under 15 minutes on 2 cores: a
        # peer slower than ~1,300 jobs/s is measured over 15 s of steady work
        # (the rate is taken over what it completed); a round that would start
        # after run.py's --budget-s is not run, and the result file says so.
        Scenario("throughput", 20_000, 3, 15.0, "no-op jobs, one INCR each"),
        Scenario("latency", 200, 3, 12.0, "sequential enqueue -> job start"),
        Scenario("chain", 1_000, 3, 12.0, "five-step chains, one INCR per step"),
        Scenario("events", 1_000, 3, 15.0, "progress events to 100 listeners"),
    )


LISTENERS = 100
