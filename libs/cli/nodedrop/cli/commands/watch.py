"""`nodedrop watch EXECUTION_ID`: live progress of one execution in the terminal."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="follow an execution's events live (resumes after dropped connections)",
        description="Prints one line per event until the execution ends. Uses "
        "NODEDROP_EVENTS_ADDR and NODEDROP_API_KEY. Exit status: 0 completed, "
        "1 failed, cancelled or timed out (or the service cannot be reached), 2 on "
        "usage errors (a malformed or unknown id, credentials).",
    )
    parser.add_argument("execution_id")
    parser.add_argument(
        "--after", type=int, default=0, metavar="SEQ", help="start after this sequence number"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from nodedrop.cli.follow import watch  # noqa: PLC0415
    from nodedrop.cli.remote import command  # noqa: PLC0415

    return command("nodedrop watch", watch)(args)
