"""``nodedrop validate FILE``: print every problem of a workflow definition."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nodedrop.cli.commands._workflow_file import FileError, load_workflow_data
from nodedrop.engine import validate_workflow

__all__ = ["register", "validate_file"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("validate", help="check a workflow file and print every problem")
    parser.add_argument("file", help="workflow JSON file ('-' for stdin)")
    parser.set_defaults(func=_run)


def validate_file(path: str) -> int:
    """Exit code: 0 valid, 1 problems found, 2 unreadable file."""
    try:
        data = load_workflow_data(path)
    except FileError as exc:
        print(f"nodedrop validate: {exc}", file=sys.stderr)
        return 2
    problems = validate_workflow(data)
    if not problems:
        count = len(data.get("nodes", [])) if isinstance(data, dict) else 0
        print(f"{path}: valid ({count} nodes)")
        return 0
    for p in problems:
        print(f"{path}: {p.path or '<workflow>'}: {p.code}: {p.message}")
    print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}", file=sys.stderr)
    return 1


def _run(args: argparse.Namespace) -> int:
    return validate_file(args.file)
