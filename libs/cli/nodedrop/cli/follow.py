"""Following one execution's events in a terminal, resuming after dropped connections.

`follow_execution` is the reusable piece behind `nodedrop watch`, `nodedrop
run --follow` and `nodedrop executions watch`: it streams from EventService,
prints one line per event, and when the stream breaks before the terminal
event it reconnects with the last sequence it printed, so no event is shown
twice or skipped.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import grpc
import orjson

from nodedrop.cli.console import console_lines
from nodedrop.engine.nodes.code import CONSOLE_KEY
from nodedrop.event.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc

__all__ = ["EventPrinter", "FollowError", "FollowResult", "follow_execution"]

TERMINAL = {
    event_pb2.EVENT_TYPE_EXECUTION_COMPLETED: "COMPLETED",
    event_pb2.EVENT_TYPE_EXECUTION_FAILED: "FAILED",
    event_pb2.EVENT_TYPE_EXECUTION_CANCELLED: "CANCELLED",
    event_pb2.EVENT_TYPE_EXECUTION_TIMED_OUT: "TIMED_OUT",
}
# Errors a reconnect cannot fix: report them instead of retrying.
_FINAL_CODES = frozenset(
    {
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


class FollowError(Exception):
    """The stream cannot be followed (unknown execution, bad credentials, too many retries)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class FollowResult:
    execution_id: str
    last_sequence: int
    # COMPLETED, FAILED, CANCELLED, TIMED_OUT, or ENDED_BEFORE when the
    # execution had already ended at the sequence the caller started after.
    outcome: str
    reconnects: int

    @property
    def succeeded(self) -> bool:
        return self.outcome == "COMPLETED"


_COLORS = {
    "NODE_STARTED": "\x1b[34m",
    "NODE_COMPLETED": "\x1b[32m",
    "NODE_FAILED": "\x1b[31m",
    "NODE_SKIPPED": "\x1b[90m",
    "EXECUTION_COMPLETED": "\x1b[1;32m",
    "EXECUTION_FAILED": "\x1b[1;31m",
    "EXECUTION_CANCELLED": "\x1b[1;33m",
    "EXECUTION_TIMED_OUT": "\x1b[1;31m",
    "EXECUTION_RETRYING": "\x1b[33m",
}
_RESET = "\x1b[0m"


@dataclass
class EventPrinter:
    """One line per event: time, sequence, type, node, and what matters for it."""

    out: TextIO
    color: bool = False
    _node_start: dict[str, float] = field(default_factory=dict)

    def __call__(self, event: event_pb2.ExecutionEvent) -> None:
        kind = event_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_")
        at = event.time.ToDatetime()
        seconds = event.time.seconds + event.time.nanos / 1e9
        parts = [f"{at:%H:%M:%S}.{at.microsecond // 1000:03d}", f"#{event.sequence:<5}"]
        label = f"{kind:<20}"
        if self.color and kind in _COLORS:
            label = f"{_COLORS[kind]}{label}{_RESET}"
        parts.append(label)
        if event.node_id:
            parts.append(event.node_id)
        detail = self._detail(kind, event, seconds)
        if detail:
            parts.append(detail)
        print("  ".join(parts).rstrip(), file=self.out, flush=True)
        if kind == "NODE_COMPLETED" and event.data_json:
            for line in console_lines(event.data_json):
                print(f"    {line}", file=self.out, flush=True)

    def _detail(self, kind: str, event: event_pb2.ExecutionEvent, seconds: float) -> str:
        if kind == "NODE_STARTED":
            self._node_start[event.node_id] = seconds
            return f"(attempt {event.attempt})" if event.attempt > 1 else ""
        bits: list[str] = []
        started = self._node_start.pop(event.node_id, None) if event.node_id else None
        if started is not None:
            bits.append(f"{(seconds - started) * 1000:.0f} ms")
        if kind == "NODE_COMPLETED" and event.data_json:
            bits.append(_items_summary(event.data_json))
        if kind == "EXECUTION_RETRYING" and event.data_json:
            bits.append(f"next attempt in {_field(event.data_json, 'delay_s')} s")
        if event.HasField("error") and event.error.message:
            code = f"[{event.error.code}] " if event.error.code else ""
            bits.append(f"error: {code}{event.error.message}")
        return ", ".join(b for b in bits if b)


def _items_summary(data_json: str) -> str:
    try:
        ports = orjson.loads(data_json)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(ports, dict):
        return ""
    return ", ".join(
        f"{port}: {len(items)} item{'s' if len(items) != 1 else ''}"
        for port, items in ports.items()
        if isinstance(items, list) and port != CONSOLE_KEY
    )


def _field(data_json: str, name: str) -> object:
    try:
        value = orjson.loads(data_json)
    except orjson.JSONDecodeError:
        return "?"
    return value.get(name, "?") if isinstance(value, dict) else "?"


async def follow_execution(
    channel: grpc.aio.Channel,
    credential: str,
    execution_id: str,
    *,
    after_sequence: int = 0,
    on_event: Callable[[event_pb2.ExecutionEvent], None] | None = None,
    out: TextIO | None = None,
    max_retries: int = 8,
    backoff_s: tuple[float, float] = (0.2, 5.0),
) -> FollowResult:
    """Streams until the terminal event; reconnects from the last sequence on failures.

    `max_retries` counts consecutive reconnects that brought no new event.
    """
    handler = on_event or EventPrinter(out or sys.stdout, color=(out or sys.stdout).isatty())
    stub = event_service_pb2_grpc.EventServiceStub(channel)
    metadata = (("authorization", f"Bearer {credential}"),)
    last = after_sequence
    reconnects = 0
    idle_failures = 0
    while True:
        progressed = False
        call = stub.StreamExecutionEvents(
            event_service_pb2.StreamExecutionEventsRequest(
                execution_id=execution_id, after_sequence=last
            ),
            metadata=metadata,
            # Keepalive on the channel detects a dead server; no deadline here.
            wait_for_ready=True,
        )
        try:
            async for response in call:
                for event in response.events:
                    if event.sequence <= last:
                        continue
                    handler(event)
                    last = event.sequence
                    progressed = True
                    if event.type in TERMINAL:
                        return FollowResult(execution_id, last, TERMINAL[event.type], reconnects)
            # The service ends a stream only after the terminal event, so a clean
            # end with nothing new means the execution had ended at `last` already.
            if not progressed:
                return FollowResult(execution_id, last, "ENDED_BEFORE", reconnects)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _FINAL_CODES:
                raise FollowError(exc.details() or exc.code().name, exc.code().name) from None
        finally:
            call.cancel()
        idle_failures = 0 if progressed else idle_failures + 1
        if idle_failures > max_retries:
            raise FollowError(
                f"gave up after {max_retries} reconnects without a new event "
                f"(last sequence {last})",
                "UNAVAILABLE",
            )
        reconnects += 1
        await asyncio.sleep(min(backoff_s[1], backoff_s[0] * 2 ** max(0, idle_failures - 1)))
