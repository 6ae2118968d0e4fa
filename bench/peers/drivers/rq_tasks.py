"""RQ job functions (RQ imports them by dotted path in the work horse)."""

from __future__ import annotations

import redis
from _common import record_done, record_start, redis_url

client = redis.Redis.from_url(redis_url())


def noop(total: int) -> None:
    record_done(client, total)


def probe() -> None:
    record_start(client)
