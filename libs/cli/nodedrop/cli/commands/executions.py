"""``nodedrop executions list|show|cancel|retry|watch``: executions through the API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

import orjson

from nodedrop.client import ExecutionStatus

__all__ = ["register"]

# The proto's statuses, lower-case: the words every command prints.
_STATUSES = tuple(s.value for s in ExecutionStatus if s is not ExecutionStatus.UNSPECIFIED)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "executions",
        help="list, inspect, cancel, retry and watch executions (through the API)",
        description="Uses NODEDROP_API_ADDR and NODEDROP_API_KEY (watch: NODEDROP_EVENTS_ADDR).",
    )
    sub = parser.add_subparsers(title="executions commands", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="newest first")
    listing.add_argument("--workflow", default="", help="only this workflow id")
    listing.add_argument(
        "--status", action="append", choices=_STATUSES, default=[], help="repeatable"
    )
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=_sync(_list))
    show = sub.add_parser("show", help="status, node runs, error and outputs of one execution")
    show.add_argument("execution_id")
    show.add_argument("--json", action="store_true", help="the whole execution as JSON")
    show.set_defaults(func=_sync(_show))
    cancel = sub.add_parser("cancel", help="cancel a queued or running execution")
    cancel.add_argument("execution_id")
    cancel.add_argument("--reason", default="", help="recorded with the cancellation")
    cancel.set_defaults(func=_sync(_cancel))
    retry = sub.add_parser("retry", help="run a failed, cancelled or timed-out execution again")
    retry.add_argument("execution_id")
    retry.add_argument(
        "--from-start", action="store_true", help="rerun every node (default: from the failed one)"
    )
    retry.add_argument("--mode", choices=("queue", "direct"), help="default: the original's")
    retry.set_defaults(func=_sync(_retry))
    watch = sub.add_parser("watch", help="follow an execution's events live until it ends")
    watch.add_argument("execution_id")
    watch.add_argument("--after", type=int, default=0, metavar="SEQ", help="start after SEQ")
    watch.set_defaults(func=_sync(_watch))


def _sync(
    fn: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace], int]:
    from nodedrop.cli.remote import command  # noqa: PLC0415

    return command("nodedrop executions", fn)


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at is not None else "-"


async def _list(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import RemoteError, open_client  # noqa: PLC0415

    if args.limit < 1:
        raise RemoteError("--limit must be >= 1")
    shown = 0
    async with open_client() as client:
        async for e in client.list_executions(
            workflow_id=args.workflow, statuses=args.status, limit=args.limit
        ):
            if args.json:
                row = {
                    "id": e.id,
                    "status": str(e.status),
                    "workflow_id": e.workflow_id,
                    "created": _when(e.created),
                    "attempt": e.attempt,
                }
                print(orjson.dumps(row).decode())
            else:
                print(f"{e.id}  {e.status:<15} {_when(e.created)}  {e.workflow_id or '(inline)'}")
            shown += 1
    if shown == 0 and not args.json:
        print("no executions", file=sys.stderr)
    return 0


def _items(counts: dict[str, int]) -> str:
    if not counts:
        return ""
    if list(counts) == ["main"]:
        n = counts["main"]
        return f"{n} item{'s' if n != 1 else ''}"
    return ", ".join(f"{port}: {n}" for port, n in counts.items())


async def _show(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import open_client  # noqa: PLC0415
    from nodedrop.execution.v1 import execution_service_pb2 as pb  # noqa: PLC0415
    from nodedrop.execution.v1 import execution_service_pb2_grpc as pb_grpc  # noqa: PLC0415

    async with open_client() as client:
        if args.json:
            from nodedrop.cli.proto_json import message_json  # noqa: PLC0415

            # The API's message itself: every field, for scripts.
            response = await client.unary(
                pb_grpc.ExecutionServiceStub(client.channel).GetExecution,
                pb.GetExecutionRequest(execution_id=args.execution_id, include_outputs=True),
            )
            print(orjson.dumps(message_json(response.execution)).decode())
            return 0
        e = await client.get_execution(args.execution_id)
    print(f"execution {e.id}  {e.status}  (attempt {e.attempt}/{e.max_attempts})")
    print(f"  workflow  {e.workflow_id or '(inline)'}  v{e.workflow_version}")
    print(f"  created   {_when(e.created)}   started {_when(e.started)}   ended {_when(e.ended)}")
    if e.retry_of:
        print(f"  retry of  {e.retry_of}")
    if e.schedule_id:
        print(f"  schedule  {e.schedule_id}  tick {_when(e.scheduled)}")
    if e.error is not None:
        where = f" at {e.error.node_id}" if e.error.node_id else ""
        print(f"  error{where}: [{e.error.code}] {e.error.message}")
    for run in e.node_runs:
        took = f"{run.duration.total_seconds() * 1000:.0f} ms" if run.duration else ""
        error = f"  [{run.error.code}] {run.error.message}" if run.error else ""
        print(f"    {run.node_id:<24} {run.status:<10} {took:>9}  {_items(run.items)}{error}")
    for node, ports in e.outputs.items():
        for port, items in ports.items():
            where = node if port == "main" else f"{node}.{port}"
            print(f"  output {where}: {orjson.dumps(items).decode()}")
    return 0


async def _cancel(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import open_client  # noqa: PLC0415

    async with open_client() as client:
        status = await client.cancel(args.execution_id, reason=args.reason)
    print(f"execution {args.execution_id} {status}")
    return 0


async def _retry(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import open_client  # noqa: PLC0415

    async with open_client() as client:
        submitted = await client.retry(
            args.execution_id, from_start=args.from_start, mode=args.mode
        )
    print(f"execution {submitted.execution_id} {submitted.status} (retry of {args.execution_id})")
    return 0


async def _watch(args: argparse.Namespace) -> int:
    from nodedrop.cli.follow import watch  # noqa: PLC0415

    return await watch(args)
