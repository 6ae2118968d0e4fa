"""Packing ready events into stream responses.

A stream response is `repeated ExecutionEvent events = 1`, and each LiveEvent's
frame is already the wire form of one element of that field, so a response of
N events is the concatenation of N frames: batching costs a join, not a
re-serialization.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from operator import attrgetter

from nodedrop.events.live import EventRun, LiveEvent

# Well under gRPC's default 4 MiB receive limit, so a client that kept the
# default still accepts every response.
DEFAULT_MAX_BATCH_BYTES = 1 << 20
DEFAULT_MAX_BATCH_EVENTS = 1024

_frame = attrgetter("frame")


def pack(
    events: Sequence[LiveEvent],
    *,
    max_events: int = DEFAULT_MAX_BATCH_EVENTS,
    max_bytes: int = DEFAULT_MAX_BATCH_BYTES,
) -> Iterator[bytes]:
    """Responses holding `events` in order, each at most `max_events` and `max_bytes`.

    An event larger than `max_bytes` on its own still goes, alone: the store
    accepted it under the payload limit, and dropping it would break the
    exactly-once guarantee.
    """
    if max_events < 1 or max_bytes < 1:
        raise ValueError("batch limits must be positive")
    if len(events) <= max_events:
        # The usual case, joined without a Python step per event, and for a
        # published run once for all its subscribers.
        body = events.body if isinstance(events, EventRun) else b"".join(map(_frame, events))
        if len(body) <= max_bytes:
            if body:
                yield body
            return
    frames: list[bytes] = []
    size = 0
    for event in events:
        frame = event.frame
        if frames and (len(frames) >= max_events or size + len(frame) > max_bytes):
            yield b"".join(frames)
            frames = []
            size = 0
        frames.append(frame)
        size += len(frame)
    if frames:
        yield b"".join(frames)
