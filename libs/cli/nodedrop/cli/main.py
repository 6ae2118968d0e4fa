"""Entry point of ``nodedrop``: discovers the command modules (``nodedrop.cli.commands``
and the composition root ``nodedrop.cli.compose``) and dispatches."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Callable, Sequence
from typing import Any

from nodedrop.cli import commands, compose

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


def _command_modules() -> list[Any]:
    """The client commands, then the composition root's (start and administer services)."""
    modules = []
    for package in (commands, compose):
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            if callable(getattr(module, "register", None)):
                modules.append(module)
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nodedrop",
        description="Execution engine for n8n-style workflows.",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in _command_modules():
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "func", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code = handler(args)
        # Flushed here, inside the guard: a reader that left (`| head`) fails this write.
        sys.stdout.flush()
    except BrokenPipeError:
        # Not an error of the command. Later writes (the interpreter's own
        # flush at exit) go to /dev/null so they cannot raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
