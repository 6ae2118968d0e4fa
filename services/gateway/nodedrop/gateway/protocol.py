"""The gateway's JSON protocol over WebSocket (documented in docs/events.md).

Client -> gateway:
    {"type": "subscribe", "execution_id": str, "after_sequence": int >= 0}
    {"type": "unsubscribe", "execution_id": str}
    {"type": "ping", "id": any}
    {"type": "list_executions", "limit": int}        the live view's recent list
    {"type": "run_example", "api_key"?: str}          runs the built-in example
    {"type": "cancel", "execution_id": str, "api_key"?: str}
    {"type": "renew", "ticket": str}                  the session goes on with a fresh ticket
    {"type": "watch_executions"}                      every execution's status events of the tenant
    {"type": "unwatch_executions"}
Gateway -> client:
    {"type": "event", ...event fields}
    {"type": "complete", "execution_id", "last_sequence"}
    {"type": "error", "code", "message", "execution_id"?}
    {"type": "pong", "id"}, {"type": "executions", "items"}, {"type": "started", ...},
    {"type": "cancelled", ...}, {"type": "renewed"},
    {"type": "watching_executions"}, {"type": "unwatched_executions", "code"?, "message"?}

``api_key`` is how a session opened with a ticket (which only watches) acts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from nodedrop.event.v1 import event_pb2

MAX_ID_LEN = 128


class ProtocolError(ValueError):
    """A client message the gateway cannot act on; answered with an error message."""

    def __init__(self, message: str, execution_id: str = "") -> None:
        super().__init__(message)
        self.execution_id = execution_id


@dataclass(frozen=True, slots=True)
class Subscribe:
    execution_id: str
    after_sequence: int


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    execution_id: str


@dataclass(frozen=True, slots=True)
class Ping:
    id: Any


@dataclass(frozen=True, slots=True)
class ListExecutions:
    limit: int


@dataclass(frozen=True, slots=True)
class RunExample:
    api_key: str | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    execution_id: str
    api_key: str | None = None


@dataclass(frozen=True, slots=True)
class Renew:
    ticket: str


@dataclass(frozen=True, slots=True)
class WatchExecutions:
    pass


@dataclass(frozen=True, slots=True)
class UnwatchExecutions:
    pass


Command = (
    Subscribe
    | Unsubscribe
    | Ping
    | ListExecutions
    | RunExample
    | Cancel
    | Renew
    | WatchExecutions
    | UnwatchExecutions
)

# Keys and tickets are short; anything longer is not one (and is not echoed).
MAX_CREDENTIAL_LEN = 512


def _credential(raw: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = raw.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_CREDENTIAL_LEN:
        raise ProtocolError(f"{name} must be a non-empty string of at most {MAX_CREDENTIAL_LEN}")
    return value.strip()


def _execution_id(raw: dict[str, Any]) -> str:
    value = raw.get("execution_id")
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LEN:
        raise ProtocolError(f"execution_id must be a non-empty string of at most {MAX_ID_LEN}")
    return value.strip()


def parse(message: str | bytes) -> Command:
    try:
        raw = orjson.loads(message)
    except orjson.JSONDecodeError:
        raise ProtocolError("message is not JSON") from None
    if not isinstance(raw, dict):
        raise ProtocolError("message must be a JSON object")
    kind = raw.get("type")
    if kind == "subscribe":
        execution_id = _execution_id(raw)
        after = raw.get("after_sequence", 0)
        if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after < 2**63:
            raise ProtocolError("after_sequence must be a non-negative integer", execution_id)
        return Subscribe(execution_id, after)
    if kind == "unsubscribe":
        return Unsubscribe(_execution_id(raw))
    if kind == "ping":
        return Ping(raw.get("id"))
    if kind == "list_executions":
        limit = raw.get("limit", 20)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise ProtocolError("limit must be an integer within 1..100")
        return ListExecutions(limit)
    if kind == "run_example":
        return RunExample(_credential(raw, "api_key", required=False))
    if kind == "cancel":
        return Cancel(_execution_id(raw), _credential(raw, "api_key", required=False))
    if kind == "renew":
        ticket = _credential(raw, "ticket", required=True)
        assert ticket is not None
        return Renew(ticket)
    if kind == "watch_executions":
        return WatchExecutions()
    if kind == "unwatch_executions":
        return UnwatchExecutions()
    raise ProtocolError(f"unknown message type {kind!r}")


def _event_type_name(value: int) -> str:
    try:
        return event_pb2.EventType.Name(value).removeprefix("EVENT_TYPE_")  # type: ignore[arg-type]
    except ValueError:
        return "UNSPECIFIED"


def event_message(event: event_pb2.ExecutionEvent) -> bytes:
    data: Any = None
    if event.data_json:
        try:
            data = orjson.loads(event.data_json)
        except orjson.JSONDecodeError:
            data = event.data_json
    body: dict[str, Any] = {
        "type": "event",
        "execution_id": event.execution_id,
        "sequence": event.sequence,
        "event_type": _event_type_name(event.type),
        "time": event.time.ToJsonString() if event.HasField("time") else None,
        "workflow_id": event.workflow_id,
        "node_id": event.node_id or None,
        "attempt": event.attempt,
        "data": data,
        "error": None,
    }
    if event.HasField("error"):
        body["error"] = {
            "message": event.error.message,
            "code": event.error.code,
            "retryable": event.error.retryable,
        }
    return orjson.dumps(body)


def complete_message(execution_id: str, last_sequence: int) -> bytes:
    return orjson.dumps(
        {"type": "complete", "execution_id": execution_id, "last_sequence": last_sequence}
    )


def error_message(code: str, message: str, execution_id: str = "") -> bytes:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if execution_id:
        body["execution_id"] = execution_id
    return orjson.dumps(body)


def reply(kind: str, **fields: Any) -> bytes:
    return orjson.dumps({"type": kind, **fields})
