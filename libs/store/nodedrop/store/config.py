"""Tunables of the store, shared by its adapters."""

from __future__ import annotations

from dataclasses import dataclass, field

from nodedrop.store.keys import DEFAULT_LANE, Keys

# NODEDROP_TENANT_MAX_ACTIVE: executions of one tenant in the job streams at once.
DEFAULT_TENANT_MAX_ACTIVE = 64
MAX_TENANT_MAX_ACTIVE = 1_000_000
# A parked job's score: lane rank * PARK_RANK + arrival ms (lua/_fair.lua).
PARK_RANK = 10**13
# Tenants with a backlog whose free places the scheduler's sweep fills per
# partition and pass.
SWEEP_TENANTS = 16


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
    # Fairness between tenants: at most this many executions of one tenant are in
    # the job streams at once (waiting or running), the rest waits parked; 0 = no
    # limit.  Enforced per partition, as ``tenant_cap`` places each.
    tenant_max_active: int = DEFAULT_TENANT_MAX_ACTIVE

    def __post_init__(self) -> None:
        if not self.lanes:
            raise ValueError("at least one lane is required")
        object.__setattr__(self, "lanes", tuple(sorted(set(self.lanes), reverse=True)))
        if self.state_ttl_s <= 0 or self.completion_ttl_s <= 0:
            raise ValueError("TTLs must be positive")
        if not 0 <= self.tenant_max_active <= MAX_TENANT_MAX_ACTIVE:
            raise ValueError(
                f"tenant_max_active must be within 0..{MAX_TENANT_MAX_ACTIVE}, "
                f"got {self.tenant_max_active}"
            )

    @property
    def tenant_cap(self) -> int:
        """A tenant's places in each partition's job streams (0 = no limit).

        Executions spread evenly over the partitions, so the total stays near
        ``tenant_max_active``; rounding up keeps every partition usable."""
        if not self.tenant_max_active:
            return 0
        return -(-self.tenant_max_active // self.keys.partitions)

    def lane_rank(self, lane: int) -> int:
        """0 for the highest lane: the order a tenant's parked jobs are promoted in."""
        return self.lanes.index(lane) if lane in self.lanes else len(self.lanes) - 1

    def lane_of(self, priority: int) -> int:
        for lane in self.lanes:
            if priority >= lane:
                return lane
        return self.lanes[-1]
