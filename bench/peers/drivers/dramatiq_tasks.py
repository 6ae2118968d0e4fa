"""Dramatiq broker and actors, imported by the driver and the worker."""

from __future__ import annotations

import dramatiq
import redis
from _common import record_done, record_start, redis_url
from dramatiq.brokers.redis import RedisBroker

dramatiq.set_broker(RedisBroker(url=redis_url()))
client = redis.Redis.from_url(redis_url())


@dramatiq.actor
def noop(total: int) -> None:
    record_done(client, total)


@dramatiq.actor
def probe() -> None:
    record_start(client)
