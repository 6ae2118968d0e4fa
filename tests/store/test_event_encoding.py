"""The one-field event entry: what every reader of the event streams decodes."""

from __future__ import annotations

import time
import uuid
from typing import cast

import orjson
import pytest

from nodedrop.store import (
    Commit,
    EventDraft,
    EventError,
    EventRecord,
    EventType,
    JobSpec,
    decode_entry,
)
from nodedrop.store.records import event_tail
from nodedrop.store.redis_store import RedisStore
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS

# The store's client decodes responses: stream entries come back as str.
Entries = list[tuple[str, dict[str, str]]]


def _record(**kw: object) -> EventRecord:
    base: dict[str, object] = {
        "execution_id": "ex-1",
        "sequence": 7,
        "type": EventType.NODE_FAILED,
        "time_ms": 1_764_000_000_123,
        "workflow_id": 'wf "quoted"',
        "tenant_id": "tenant/ü",
        "node_id": "n\n1",
        "attempt": 3,
        "data_json": '{"main": [{"x": "é"}]}',
        "error": EventError("boom", "E1", True),
    }
    base.update(kw)
    return EventRecord(**base)  # type: ignore[arg-type]


def test_round_trip_through_one_field() -> None:
    rec = _record()
    fields = rec.to_fields()
    assert list(fields) == ["v"]
    assert decode_entry(fields) == [rec]
    as_bytes = {k.encode(): v.encode() for k, v in fields.items()}
    assert decode_entry(as_bytes) == [rec]
    bare = _record(node_id="", data_json="", error=None)
    assert decode_entry(bare.to_fields()) == [bare]


def test_numbers_as_strings_decode_like_numbers() -> None:
    # The Lua scripts write sequence, time and attempt as decimal strings.
    value = orjson.dumps(["4", "x", "w", "t", "2", "EXECUTION_STARTED", "1700", "", "", ""])
    (rec,) = decode_entry({"v": value.decode()})
    assert (rec.sequence, rec.attempt, rec.time_ms) == (4, 2, 1700)
    assert rec.type is EventType.EXECUTION_STARTED


def test_older_ten_field_entries_still_decode() -> None:
    legacy = {
        "x": "ex-9",
        "s": "2",
        "t": "EXECUTION_STARTED",
        "ts": "1700",
        "w": "wf",
        "tn": "t1",
        "n": "",
        "a": "1",
        "d": "",
        "e": "",
    }
    (rec,) = decode_entry(legacy)
    assert (rec.execution_id, rec.sequence, rec.type) == ("ex-9", 2, EventType.EXECUTION_STARTED)


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        "[1, 2]",
        '{"a": 1}',
        '[1, "x", "w", "t", 1, "NO_SUCH_TYPE", 1, "", "", ""]',
        '[1, 5, "w", "t", 1, "NODE_STARTED", 1, "", "", ""]',
        '["one", "x", "w", "t", 1, "NODE_STARTED", 1, "", "", ""]',
        # A second event cut short, and one whose node is not a string.
        '[1, "x", "w", "t", 1, "NODE_STARTED", 1, "", "", "", "NODE_COMPLETED", 2]',
        '[1, "x", "w", "t", 1, "NODE_STARTED", 1, "", "", "", "NODE_COMPLETED", 2, 7, "", ""]',
        '[1, "x", "w", "t", 1]',
    ],
)
def test_malformed_entries_raise_value_or_type_error(value: str) -> None:
    with pytest.raises((ValueError, TypeError)):
        decode_entry({"v": value})


def test_tail_is_the_end_of_the_array() -> None:
    draft = EventDraft(EventType.NODE_COMPLETED, "n1", '{"main": []}', EventError("e"))
    tail = event_tail(draft, 1700)
    value = b'[3,"ex","wf","tn",1,' + tail + b"]"
    (rec,) = decode_entry({"v": value.decode()})
    assert (rec.type, rec.node_id, rec.data_json, rec.time_ms) == (
        EventType.NODE_COMPLETED,
        "n1",
        '{"main": []}',
        1700,
    )
    assert rec.error == EventError("e")


async def test_a_commit_writes_its_events_as_one_entry_to_both_streams(
    redis_store: RedisStore,
) -> None:
    s = redis_store
    x = f"ex-{uuid.uuid4().hex[:12]}"
    now = int(time.time() * 1000)
    await s.enqueue(JobSpec(x, "t1", 'wf "1"', '{"nodes": []}', "", **DEFAULT_JOB_SETTINGS), now)
    (d,) = await s.read_jobs("w1", 10, 0)
    (acq,) = await s.acquire([d], 30_000, now)
    assert acq.lease is not None
    cursor = await s.tail_position()
    drafts = (
        EventDraft(EventType.NODE_STARTED, "n1"),
        EventDraft(EventType.NODE_COMPLETED, "n1", '{"main": [{"x": 1}]}'),
        EventDraft(EventType.NODE_FAILED, "n2", error=EventError('bad "x"', "E", False)),
    )
    (r,) = await s.commit([Commit(acq.lease, events=drafts)], now + 5)
    assert r.ok and r.first_sequence == 3
    keys = s.config.keys
    own = cast(Entries, await s.client.xrange(keys.exec_events(x)))
    assert [list(f) for _, f in own] == [["v"]] * 3
    # Queued, started, then the commit's three events: the id is the last sequence.
    assert [i for i, _ in own] == ["1-0", "2-0", "5-0"]
    shared = cast(Entries, await s.client.xrange(keys.events(keys.partition(x))))
    mine = [e for _, f in shared for e in decode_entry(f) if e.execution_id == x]
    assert len([f for _, f in shared if decode_entry(f)[0].execution_id == x]) == 3
    assert [e.sequence for e in mine] == [1, 2, 3, 4, 5]
    assert mine == [e for _, f in own for e in decode_entry(f)]
    assert [e.type for e in mine[2:]] == [d.type for d in drafts]
    assert [e.time_ms for e in mine[2:]] == [now + 5] * 3
    last = mine[-1]
    assert (last.workflow_id, last.tenant_id, last.attempt, last.node_id) == (
        'wf "1"',
        "t1",
        1,
        "n2",
    )
    assert last.error == EventError('bad "x"', "E", False)
    assert mine[3].data_json == '{"main": [{"x": 1}]}'
    # Replay from inside an entry gives the events after the sequence asked for.
    assert await s.read(x, 0, 100) == mine
    assert [e.sequence for e in await s.read(x, 3, 1)] == [4]
    assert [e.sequence for e in await s.read(x, 3, 10)] == [4, 5]
    assert await s.read(x, 5, 10) == []
    # The live tail and the consumer group expand the entry into its events.
    tailed, _ = await s.tail(cursor, 100, 0)
    assert [t.record for t in tailed if t.record.execution_id == x] == mine[2:]
    group = f"g-{uuid.uuid4().hex[:6]}"
    read = [t for t in await s.group_read(group, "c1", 1000, 0) if t.record.execution_id == x]
    assert [t.record for t in read] == mine
    assert len({t.entry_id for t in read}) == 3
    await s.group_ack(group, read)
    pending = await s.client.xpending(keys.events(keys.partition(x)), group)
    assert pending["pending"] == 0
