"""The engine's events and errors as the store records them.

Both runners of the engine (the worker, and the API's direct mode) hand its
events to the store; they convert them here, in one place.
"""

from __future__ import annotations

import orjson

from nodedrop.engine import EngineEvent, ErrorInfo
from nodedrop.engine.events import EventType as EngineEventType
from nodedrop.store.records import EventDraft, EventError, EventType

__all__ = ["event_draft", "event_error"]

# Same names on both sides; a dict lookup instead of an enum call per event.
_TYPES = {t: EventType(t.value) for t in EngineEventType}


def event_error(info: ErrorInfo) -> EventError:
    return EventError(info.message, info.code, info.retryable)


def event_draft(event: EngineEvent, data_json: str = "") -> EventDraft:
    """``data_json``: the event's data already encoded (a checkpoint's outputs), if any."""
    if not data_json:
        data_json = event.data_json
    if not data_json and event.data is not None:
        data_json = orjson.dumps(event.data).decode()
    return EventDraft(
        _TYPES[event.type],
        event.node_id or "",
        data_json,
        event_error(event.error) if event.error else None,
    )
