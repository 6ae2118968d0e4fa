"""`nodedrop schedules --json` writes times as the API's JSON does (protobuf's
RFC 3339: 0, 3 or 6 fractional digits, Z), now that it reads the client's
datetimes rather than Timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from nodedrop.cli.commands.schedules import _time


@pytest.mark.parametrize("us", [0, 123_000, 123_456])
def test_times_are_written_as_protobuf_json_writes_them(us: int) -> None:
    at = datetime(2026, 12, 7, 3, 0, 0, us, tzinfo=UTC)
    ts = Timestamp()
    ts.FromDatetime(at)
    assert _time(at) == ts.ToJsonString()
    # Another offset is the same instant, written in UTC.
    assert _time(at.astimezone(timezone(timedelta(hours=2)))) == ts.ToJsonString()
    assert _time(None) is None
