"""Printing one execution's events in a terminal: ``nodedrop watch``,
``nodedrop executions watch`` and ``nodedrop run --follow``.

The events come from ``AsyncClient.events``, which resumes after dropped
connections; this module only prints them, and ``watch`` turns the end of a
stream into an exit status.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

from nodedrop.cli.console import console_lines
from nodedrop.client import Event
from nodedrop.engine.nodes.code import CONSOLE_KEY

__all__ = ["EventPrinter", "watch"]

_COLORS = {
    "node_started": "\x1b[34m",
    "node_completed": "\x1b[32m",
    "node_failed": "\x1b[31m",
    "node_skipped": "\x1b[90m",
    "execution_completed": "\x1b[1;32m",
    "execution_failed": "\x1b[1;31m",
    "execution_cancelled": "\x1b[1;33m",
    "execution_timed_out": "\x1b[1;31m",
    "execution_retrying": "\x1b[33m",
}
_RESET = "\x1b[0m"


@dataclass
class EventPrinter:
    """One line per event: time, sequence, type, node, and what matters for it."""

    out: TextIO
    color: bool = False
    _node_start: dict[str, datetime] = field(default_factory=dict)

    def __call__(self, event: Event) -> None:
        at = event.time
        parts = [f"{at:%H:%M:%S}.{at.microsecond // 1000:03d}", f"#{event.sequence:<5}"]
        label = f"{event.type:<20}"
        if self.color and event.type in _COLORS:
            label = f"{_COLORS[event.type]}{label}{_RESET}"
        parts.append(label)
        if event.node_id:
            parts.append(event.node_id)
        detail = self._detail(event)
        if detail:
            parts.append(detail)
        print("  ".join(parts).rstrip(), file=self.out, flush=True)
        if event.type == "node_completed":
            for line in console_lines(event.data):
                print(f"    {line}", file=self.out, flush=True)

    def _detail(self, event: Event) -> str:
        if event.type == "node_started":
            if event.node_id:
                self._node_start[event.node_id] = event.time
            return f"(attempt {event.attempt})" if event.attempt > 1 else ""
        bits: list[str] = []
        started = self._node_start.pop(event.node_id, None) if event.node_id else None
        if started is not None:
            bits.append(f"{(event.time - started).total_seconds() * 1000:.0f} ms")
        if event.type == "node_completed":
            bits.append(_items_summary(event.data))
        if event.type == "execution_retrying" and isinstance(event.data, dict):
            bits.append(f"next attempt in {event.data.get('delay_s', '?')} s")
        if event.error is not None:
            code = f"[{event.error.code}] " if event.error.code else ""
            bits.append(f"error: {code}{event.error.message}")
        return ", ".join(b for b in bits if b)


def _items_summary(ports: object) -> str:
    """Items per output port; an event may carry the items or only their count."""
    if not isinstance(ports, dict):
        return ""
    summary = ports.get("$summary")
    by_port: dict[object, object] = ports
    if isinstance(summary, dict) and isinstance(summary.get("items"), dict):
        # Too large for the event: it carries the counts instead of the items.
        by_port = summary["items"]
    counts = []
    for port, items in by_port.items():
        if port == CONSOLE_KEY:
            continue
        n = len(items) if isinstance(items, list) else items if isinstance(items, int) else None
        if n is not None:
            counts.append(f"{port}: {n} item{'s' if n != 1 else ''}")
    return ", ".join(counts)


async def watch(args: argparse.Namespace) -> int:
    """Exit status: 0 completed (or already ended), 1 failed, cancelled or timed out."""
    from nodedrop.cli.remote import RemoteError, open_client  # noqa: PLC0415

    if args.after < 0:
        raise RemoteError("--after must be >= 0")
    printer = EventPrinter(sys.stdout, color=sys.stdout.isatty())
    last = None
    async with open_client() as client:
        async for event in client.events(args.execution_id, after_sequence=args.after):
            printer(event)
            last = event
    if last is None:
        print(f"execution had already ended at sequence {args.after}")
        return 0
    return 0 if last.type == "execution_completed" else 1
