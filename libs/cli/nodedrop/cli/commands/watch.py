"""`nodedrop watch EXECUTION_ID`: live progress of one execution in the terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from nodedrop.common.settings import SettingsError, env_addr, env_str, process_env

DEFAULT_EVENTS_ADDR = "127.0.0.1:50053"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="follow an execution's events live (resumes after dropped connections)",
        description="Prints one line per event until the execution ends. Uses "
        "NODEDROP_EVENTS_ADDR and NODEDROP_API_KEY. Exit status: 0 completed, "
        "1 failed, cancelled or timed out, 2 on usage or connection errors.",
    )
    parser.add_argument("execution_id")
    parser.add_argument(
        "--after", type=int, default=0, metavar="SEQ", help="start after this sequence number"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from nodedrop.cli.follow import FollowError, follow_execution  # noqa: PLC0415
    from nodedrop.common.client import open_channel  # noqa: PLC0415
    from nodedrop.common.tls import TlsSettings  # noqa: PLC0415

    if args.after < 0:
        print("nodedrop watch: --after must be >= 0", file=sys.stderr)
        return 2
    env = process_env()
    try:
        target = env_addr(env, "NODEDROP_EVENTS_ADDR", DEFAULT_EVENTS_ADDR)
        key = env_str(env, "NODEDROP_API_KEY", "")
        tls = TlsSettings.from_env(env)
    except SettingsError as exc:
        print(f"nodedrop: {exc}", file=sys.stderr)
        return 2
    if not key:
        print("nodedrop watch: set NODEDROP_API_KEY", file=sys.stderr)
        return 2

    async def main() -> int:
        channel = open_channel(target, tls=tls)
        try:
            result = await follow_execution(
                channel, key, args.execution_id, after_sequence=args.after
            )
        except FollowError as exc:
            print(f"nodedrop watch: {exc.code}: {exc}", file=sys.stderr)
            return 2
        finally:
            await channel.close()
        if result.outcome == "ENDED_BEFORE":
            print(f"execution had already ended at sequence {result.last_sequence}")
            return 0
        return 0 if result.succeeded else 1

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 130
