"""The one-field event entry: what every reader of the event streams decodes."""

from __future__ import annotations

import time
import uuid
from typing import cast

import orjson
import pytest

from nodedrop.store import Commit, EventDraft, EventError, EventRecord, EventType, JobSpec
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
    assert EventRecord.from_fields(fields) == rec
    as_bytes = {k.encode(): v.encode() for k, v in fields.items()}
    assert EventRecord.from_fields(as_bytes) == rec
    bare = _record(node_id="", data_json="", error=None)
    assert EventRecord.from_fields(bare.to_fields()) == bare


def test_numbers_as_strings_decode_like_numbers() -> None:
    # The Lua scripts write sequence, time and attempt as decimal strings.
    value = orjson.dumps(["4", "x", "w", "t", "2", "EXECUTION_STARTED", "1700", "", "", ""])
    rec = EventRecord.from_fields({"v": value.decode()})
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
    rec = EventRecord.from_fields(legacy)
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
    ],
)
def test_malformed_entries_raise_value_or_type_error(value: str) -> None:
    with pytest.raises((ValueError, TypeError)):
        EventRecord.from_fields({"v": value})


def test_tail_is_the_end_of_the_array() -> None:
    draft = EventDraft(EventType.NODE_COMPLETED, "n1", '{"main": []}', EventError("e"))
    tail = event_tail(draft, 1700)
    value = b'[3,"ex","wf","tn",1,' + tail
    rec = EventRecord.from_fields({"v": value.decode()})
    assert (rec.type, rec.node_id, rec.data_json, rec.time_ms) == (
        EventType.NODE_COMPLETED,
        "n1",
        '{"main": []}',
        1700,
    )
    assert rec.error == EventError("e")


async def test_scripts_write_one_field_to_both_streams(redis_store: RedisStore) -> None:
    s = redis_store
    x = f"ex-{uuid.uuid4().hex[:12]}"
    now = int(time.time() * 1000)
    await s.enqueue(JobSpec(x, "t1", 'wf "1"', '{"nodes": []}', "", **DEFAULT_JOB_SETTINGS), now)
    (d,) = await s.read_jobs("w1", 10, 0)
    (acq,) = await s.acquire([d], 30_000, now)
    assert acq.lease is not None
    drafts = (
        EventDraft(EventType.NODE_STARTED, "n1"),
        EventDraft(EventType.NODE_FAILED, "n1", error=EventError('bad "x"', "E", False)),
    )
    (r,) = await s.commit([Commit(acq.lease, events=drafts)], now + 5)
    assert r.ok and r.first_sequence == 3
    keys = s.config.keys
    own = cast(Entries, await s.client.xrange(keys.exec_events(x)))
    assert [list(f) for _, f in own] == [["v"]] * 4
    assert [i for i, _ in own] == ["1-0", "2-0", "3-0", "4-0"]
    shared = cast(Entries, await s.client.xrange(keys.events(keys.partition(x))))
    mine = [EventRecord.from_fields(f) for _, f in shared]
    mine = [e for e in mine if e.execution_id == x]
    assert [e.sequence for e in mine] == [1, 2, 3, 4]
    assert mine == [EventRecord.from_fields(f) for _, f in own]
    last = mine[-1]
    assert (last.workflow_id, last.tenant_id, last.attempt, last.time_ms) == (
        'wf "1"',
        "t1",
        1,
        now + 5,
    )
    assert last.error == EventError('bad "x"', "E", False)
