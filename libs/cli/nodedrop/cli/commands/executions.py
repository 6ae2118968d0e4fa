"""``nodedrop executions list|show|cancel|retry|watch``: executions through the API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import orjson

__all__ = ["register"]

_STATUSES = (
    "queued",
    "running",
    "retry_scheduled",
    "completed",
    "failed",
    "cancelled",
    "timed_out",
)


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


def _when(ts: Any) -> str:
    return ts.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") if ts.seconds else "-"


async def _list(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import connect, status_name  # noqa: PLC0415
    from nodedrop.execution.v1 import execution_pb2  # noqa: PLC0415
    from nodedrop.execution.v1 import execution_service_pb2 as pb  # noqa: PLC0415

    if args.limit < 1:
        print("nodedrop executions list: --limit must be >= 1", file=sys.stderr)
        return 2
    statuses = [
        execution_pb2.ExecutionStatus.Value(f"EXECUTION_STATUS_{s.upper()}") for s in args.status
    ]
    shown = 0
    token = ""
    async with connect() as api:
        while shown < args.limit:
            response = await api.call(
                api.ex.ListExecutions,
                pb.ListExecutionsRequest(
                    workflow_id=args.workflow,
                    statuses=statuses,
                    page_size=min(200, args.limit - shown),
                    page_token=token,
                ),
            )
            for e in response.executions:
                if args.json:
                    row = {
                        "id": e.id,
                        "status": status_name(e.status),
                        "workflow_id": e.workflow_id or None,
                        "created": _when(e.create_time),
                        "attempt": e.attempt,
                    }
                    print(orjson.dumps(row).decode())
                else:
                    print(
                        f"{e.id}  {status_name(e.status):<15} {_when(e.create_time)}  "
                        f"{e.workflow_id or '(inline)'}"
                    )
                shown += 1
            token = response.next_page_token
            if not token:
                break
    if shown == 0 and not args.json:
        print("no executions", file=sys.stderr)
    return 0


async def _show(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict  # noqa: PLC0415

    from nodedrop.cli.remote import connect, execution_outcome, status_name  # noqa: PLC0415
    from nodedrop.execution.v1 import execution_pb2  # noqa: PLC0415
    from nodedrop.execution.v1 import execution_service_pb2 as pb  # noqa: PLC0415

    async with connect() as api:
        response = await api.call(
            api.ex.GetExecution,
            pb.GetExecutionRequest(execution_id=args.execution_id, include_outputs=True),
        )
    e = response.execution
    if args.json:
        print(orjson.dumps(MessageToDict(e, preserving_proto_field_name=True)).decode())
        return 0
    print(f"execution {e.id}  {status_name(e.status)}  (attempt {e.attempt}/{e.max_attempts})")
    print(f"  workflow  {e.workflow_id or '(inline)'}  v{e.workflow_version}")
    print(
        f"  created   {_when(e.create_time)}   started {_when(e.start_time)}"
        f"   ended {_when(e.end_time)}"
    )
    if e.retry_of:
        print(f"  retry of  {e.retry_of}")
    if e.schedule_id:
        print(f"  schedule  {e.schedule_id}  tick {_when(e.scheduled_time)}")
    if e.HasField("error"):
        where = f" at {e.error.node_id}" if e.error.node_id else ""
        print(f"  error{where}: [{e.error.code}] {e.error.message}")
    # In the order the nodes ran (a node that never started sorts last).
    runs = sorted(
        e.node_runs,
        key=lambda r: (r.start_time.ToNanoseconds() if r.start_time.seconds else 2**63, r.node_id),
    )
    for run in runs:
        state = (
            execution_pb2.NodeRunStatus.Name(run.status).removeprefix("NODE_RUN_STATUS_").lower()
        )
        took = ""
        if run.start_time.seconds and run.end_time.seconds:
            ms = (run.end_time.ToNanoseconds() - run.start_time.ToNanoseconds()) / 1e6
            took = f"{ms:.0f} ms"
        error = f"  {run.error.message}" if run.HasField("error") else ""
        print(f"    {run.node_id:<24} {state:<10} {took:>9}  {run.output_item_count} items{error}")
    for node, items in execution_outcome(e)["outputs"].items():
        print(f"  output {node}: {orjson.dumps(items).decode()}")
    return 0


async def _cancel(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import connect, status_name  # noqa: PLC0415
    from nodedrop.execution.v1 import execution_service_pb2 as pb  # noqa: PLC0415

    async with connect() as api:
        response = await api.call(
            api.ex.CancelExecution,
            pb.CancelExecutionRequest(execution_id=args.execution_id, reason=args.reason),
        )
    print(f"execution {response.execution_id} {status_name(response.status)}")
    return 0


async def _retry(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import MODES, connect, status_name  # noqa: PLC0415
    from nodedrop.execution.v1 import execution_service_pb2 as pb  # noqa: PLC0415

    request = pb.RetryExecutionRequest(
        execution_id=args.execution_id,
        retry_from=pb.RETRY_FROM_START if args.from_start else pb.RETRY_FROM_FAILED_NODE,
    )
    if args.mode:
        request.mode = MODES[args.mode]
    async with connect() as api:
        response = await api.call(api.ex.RetryExecution, request)
    print(
        f"execution {response.execution_id} {status_name(response.status)} "
        f"(retry of {args.execution_id})"
    )
    return 0


async def _watch(args: argparse.Namespace) -> int:
    from nodedrop.cli.follow import EventPrinter, FollowError, follow_execution  # noqa: PLC0415
    from nodedrop.cli.remote import connect  # noqa: PLC0415

    if args.after < 0:
        print("nodedrop executions watch: --after must be >= 0", file=sys.stderr)
        return 2
    async with connect() as api:
        channel = api.events_channel()
        try:
            result = await follow_execution(
                channel,
                api.key,
                args.execution_id,
                after_sequence=args.after,
                on_event=EventPrinter(sys.stdout, color=sys.stdout.isatty()),
            )
        except FollowError as exc:
            print(f"nodedrop executions watch: {exc.code}: {exc}", file=sys.stderr)
            return 2
        finally:
            await channel.close()
    if result.outcome == "ENDED_BEFORE":
        print(f"execution had already ended at sequence {result.last_sequence}")
        return 0
    return 0 if result.succeeded else 1
