"""An unreachable Redis is the store's ``Unavailable`` from every port method:
callers handle one store error, never a redis-py exception."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.exceptions import BusyLoadingError, OutOfMemoryError, ReadOnlyError, ResponseError

from nodedrop.store import (
    BlobCache,
    CancelNotices,
    Commit,
    Delivery,
    EventDraft,
    EventLog,
    EventType,
    FailedQueueStore,
    JobQueue,
    JobSpec,
    Lease,
    RestoredFailure,
    ScheduleTable,
    StateStore,
    TailEntry,
    Unavailable,
)
from nodedrop.store.records import EventRecord
from nodedrop.store.redis_cluster import RedisClusterStore
from nodedrop.store.redis_store import RedisStore
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS
from tests.helpers.ports import free_port
from tests.store.conftest import make_config

D = Delivery(0, 0, "1-0", "ex-1", 1, "", 0)
L = Lease("ex-1", 0, 0, "1-0", 1)
SPEC = JobSpec("ex-1", "t1", "wf1", '{"nodes": []}', **DEFAULT_JOB_SETTINGS)
DRAFT = EventDraft(EventType.EXECUTION_STARTED)
ENTRY = TailEntry(0, "1-0", EventRecord("ex-1", 1, EventType.EXECUTION_STARTED, 0, "wf1", "t1"))

Call = Callable[[RedisStore], Awaitable[object]]

# Every method of the three ports, and the adapter's own extras services use.
CALLS: dict[str, Call] = {
    # JobQueue
    "enqueue": lambda s: s.enqueue(SPEC, _now()),
    "enqueue_many": lambda s: s.enqueue_many([SPEC], _now()),
    "read_jobs": lambda s: s.read_jobs("w1", 10, 0),
    "touch": lambda s: s.touch([D], "w1"),
    "requeue": lambda s: s.requeue([D]),
    "release": lambda s: s.release([L]),
    "move_due": lambda s: s.move_due(_now(), 10),
    "reclaim": lambda s: s.reclaim(1000, 3, 10),
    "trim": lambda s: s.trim(),
    "pending": lambda s: s.pending(),
    "list_failed": lambda s: s.list_failed(10, ""),
    "retry_failed": lambda s: s.retry_failed([], True, _now()),
    "purge_failed": lambda s: s.purge_failed(["ex-1"], False),
    "stats": lambda s: s.stats(_now()),
    "failed_queue_lost": lambda s: s.failed_queue_lost(),
    "mark_failed_queue_rebuilt": lambda s: s.mark_failed_queue_rebuilt(),
    "restore_failed": lambda s: s.restore_failed([RestoredFailure(SPEC, 0, "r", "", 1)]),
    # StateStore
    "acquire": lambda s: s.acquire([D], 1000, _now(), "w1"),
    "take": lambda s: s.take("w1", 4, 1000, _now()),
    "renew": lambda s: s.renew([L], 1000, _now(), "w1"),
    "commit": lambda s: s.commit([Commit(L, events=(DRAFT,))], _now()),
    "cancel": lambda s: s.cancel("ex-1", "t1", _now()),
    "states": lambda s: s.states(["ex-1"]),
    "outputs": lambda s: s.outputs("ex-1"),
    # EventLog
    "append": lambda s: s.append("ex-1", [DRAFT], _now()),
    "read": lambda s: s.read("ex-1", 0, 10),
    "tail_position": lambda s: s.tail_position(),
    "tail": lambda s: s.tail(("0-0",) * s.config.keys.partitions, 10, 0),
    "group_read": lambda s: s.group_read("g", "c", 10, 0),
    "group_ack": lambda s: s.group_ack("g", [ENTRY]),
    "group_claim": lambda s: s.group_claim("g", "c", 1000, 10),
    # ScheduleTable
    "put_schedule": lambda s: s.put_schedule("sch", "{}"),
    "get_schedule": lambda s: s.get_schedule("sch"),
    "delete_schedule": lambda s: s.delete_schedule("sch"),
    "all_schedules": lambda s: s.all_schedules(),
    "swap_schedule": lambda s: s.swap_schedule("sch", "{}", "{}"),
    # BlobCache
    "get_blob": lambda s: s.get_blob("b"),
    "put_blob": lambda s: s.put_blob("b", b"x", 60),
    # CancelNotices
    "cancel_notices": lambda s: anext(s.cancel_notices()),
    # Start-up, shutdown
    "connect": lambda s: s.connect(),
}


def _now() -> int:
    return int(time.time() * 1000)


@pytest.fixture(params=["redis", "cluster"])
async def down(request: pytest.FixtureRequest) -> AsyncIterator[RedisStore]:
    """A store whose Redis, or whose cluster's every seed, does not answer."""
    store = (
        RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", make_config())
        if request.param == "redis"
        else RedisClusterStore.from_cluster_url(
            f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}", make_config()
        )
    )
    try:
        yield store
    finally:
        await store.close()


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_every_method_raises_unavailable_when_redis_is_unreachable(
    down: RedisStore, name: str
) -> None:
    started = time.monotonic()
    with pytest.raises(Unavailable) as info:
        await CALLS[name](down)
    # The cause is kept for the logs; the store's retry is one, immediate.
    assert info.value.__cause__ is not None
    assert time.monotonic() - started < 2.0


def test_every_port_method_is_covered() -> None:
    methods = {
        name
        for port in (
            JobQueue,
            StateStore,
            EventLog,
            ScheduleTable,
            BlobCache,
            FailedQueueStore,
            CancelNotices,
        )
        for name in vars(port)
        if not name.startswith("_")
    }
    # ``ack`` is unfenced and unused by any service.
    assert methods - {"ack"} <= set(CALLS)


async def test_an_outage_is_also_a_connection_error(down: RedisStore) -> None:
    with pytest.raises(ConnectionError):
        await down.states(["ex-1"])


@pytest.mark.parametrize(
    ("reply", "raised"),
    [
        # A replica since a failover: the primary is elsewhere, retry later.
        (ReadOnlyError("You can't write against a read only replica."), Unavailable),
        # A server still loading its data set.
        (BusyLoadingError("Redis is loading the dataset in memory"), Unavailable),
        # A full server (maxmemory, noeviction): keys expire and it takes writes again.
        (OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'."), Unavailable),
        # A refusal is not an outage: it stays what it is.
        (ResponseError("ERR Error running script"), ResponseError),
    ],
)
async def test_error_replies_are_outages_only_when_they_say_so(
    redis_store: RedisStore,
    monkeypatch: pytest.MonkeyPatch,
    reply: Exception,
    raised: type[Exception],
) -> None:
    async def answer(calls: object) -> list[Exception]:
        return [reply]

    monkeypatch.setattr(redis_store, "_pipe", answer)
    with pytest.raises(raised) as info:
        await redis_store.cancel("ex-1", "t1", _now())
    assert info.type is raised
