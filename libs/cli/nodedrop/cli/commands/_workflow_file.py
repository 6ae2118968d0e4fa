"""Reading workflow files and JSON arguments for the run and validate commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson


class FileError(Exception):
    """The file or argument cannot be read as JSON; the message says why."""


def load_json_file(path: str) -> Any:
    try:
        raw = Path(path).read_bytes() if path != "-" else _stdin()
    except OSError as exc:
        raise FileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FileError(f"{path} is not valid JSON: {exc}") from None


def _stdin() -> bytes:
    import sys  # noqa: PLC0415

    return sys.stdin.buffer.read()


def load_workflow_data(path: str) -> Any:
    """The workflow definition in ``path``; a conformance case file's ``workflow`` works too."""
    data = load_json_file(path)
    if isinstance(data, dict) and "workflow" in data and "nodes" not in data:
        return data["workflow"]
    return data


def parse_input(text: str | None) -> Any:
    """``--input``: inline JSON, or ``@file`` to read it from a file."""
    if text is None:
        return None
    if text.startswith("@"):
        return load_json_file(text[1:])
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FileError(f"--input is not valid JSON: {exc}") from None
