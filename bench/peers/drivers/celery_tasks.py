"""Celery app and tasks, imported by the driver (to enqueue) and the worker."""

from __future__ import annotations

import redis
from _common import record_done, record_start, redis_url
from celery import Celery

app = Celery("bench", broker=redis_url())
app.conf.task_ignore_result = True
app.conf.broker_connection_retry_on_startup = True
client = redis.Redis.from_url(redis_url())


@app.task
def noop(total: int) -> None:
    record_done(client, total)


@app.task
def probe() -> None:
    record_start(client)
