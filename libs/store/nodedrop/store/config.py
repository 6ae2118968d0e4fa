"""Tunables of the store, shared by its adapters."""

from __future__ import annotations

from dataclasses import dataclass, field

from nodedrop.store.keys import DEFAULT_LANE, Keys


@dataclass(frozen=True, slots=True)
class StoreConfig:
    keys: Keys = field(default_factory=Keys)
    # Priority lanes; a job goes to the highest lane <= its priority (else the lowest).
    lanes: tuple[int, ...] = (DEFAULT_LANE,)
    # EXECUTION_STATE_TTL: an execution's keys live a day while it can still run.
    state_ttl_s: int = 86400
    # EXECUTION_COMPLETION_TTL: after the end, an hour of replay for late subscribers.
    completion_ttl_s: int = 3600
    # Approximate cap of each partition's events stream (live tail, recorder).
    events_maxlen: int = 100_000

    def __post_init__(self) -> None:
        if not self.lanes:
            raise ValueError("at least one lane is required")
        object.__setattr__(self, "lanes", tuple(sorted(set(self.lanes), reverse=True)))
        if self.state_ttl_s <= 0 or self.completion_ttl_s <= 0:
            raise ValueError("TTLs must be positive")

    def lane_of(self, priority: int) -> int:
        for lane in self.lanes:
            if priority >= lane:
                return lane
        return self.lanes[-1]
