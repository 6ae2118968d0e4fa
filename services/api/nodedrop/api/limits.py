"""Per-tenant rate limit of the calls that start work (ExecuteWorkflow,
RetryExecution, ExecuteNode): one token bucket per tenant, shared by them.

Per process on purpose: each replica enforces `rate` on what it receives, so
the cluster-wide limit is rate x replicas, the usual trade for not paying a
Redis round trip on the hot path.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["TokenBuckets"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    def __init__(self, rate_per_s: float, burst: float, *, max_tenants: int = 100_000) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self._rate = rate_per_s
        self._burst = burst
        self._max = max_tenants
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def try_take(self, tenant_id: str, now: float | None = None) -> float:
        """0.0 when allowed; otherwise the seconds until a token is available."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(tenant_id)
        if bucket is None:
            bucket = _Bucket(self._burst, now)
            self._buckets[tenant_id] = bucket
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(tenant_id)
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self._rate
