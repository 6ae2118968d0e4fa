"""A code node's console lines in a NODE_COMPLETED event, for the CLI's printers."""

from __future__ import annotations

import orjson

from nodedrop.engine.nodes.code import CONSOLE_KEY

__all__ = ["console_lines"]


def console_lines(data: object) -> list[str]:
    """A code node's console lines (docs/workflows.md, "Code"), as ``level: line``,
    from the event's data: JSON text, or the client's decoded ``Event.data``."""
    ports = data
    if isinstance(data, str):
        try:
            ports = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []
    lines = ports.get(CONSOLE_KEY) if isinstance(ports, dict) else None
    if not isinstance(lines, list):
        return []
    return [
        f"console.{entry.get('level', 'log')}: {entry.get('line', '')}"
        for entry in lines
        if isinstance(entry, dict)
    ]
