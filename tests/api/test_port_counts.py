"""A node run's items per output port, from what the history recorded: its
items, or the summary an event carries when they were too large for it."""

from __future__ import annotations

import orjson
import pytest

from nodedrop.api.convert import port_counts


@pytest.mark.parametrize(
    ("recorded", "counts"),
    [
        (None, {}),
        ("", {}),
        ("not json", {}),
        ("[1, 2]", {}),
        (orjson.dumps({"true": [{"a": 1}], "false": []}).decode(), {"true": 1, "false": 0}),
        (
            orjson.dumps({"$summary": {"items": {"main": 100}, "bytes": 123456}}).decode(),
            {"main": 100},
        ),
        (orjson.dumps({"$summary": {"items": {"main": "x"}}}).decode(), {}),
    ],
)
def test_port_counts(recorded: str | None, counts: dict[str, int]) -> None:
    assert port_counts(recorded) == counts
