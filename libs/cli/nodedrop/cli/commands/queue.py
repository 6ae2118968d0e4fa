"""``nodedrop stats`` and ``nodedrop failed list|retry|purge``: the queue, for operators.

Talks to SchedulerService at NODEDROP_SCHEDULER_ADDR (default 127.0.0.1:50052).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["register"]

_TIMEOUT_S = 10.0


def register(subparsers: Any) -> None:
    stats = subparsers.add_parser(
        "stats",
        help="queue statistics: waiting, active, delayed, completed, failed, per lane",
        description="Uses NODEDROP_SCHEDULER_ADDR.",
    )
    stats.add_argument("--json", action="store_true", help="as one JSON object")
    stats.set_defaults(func=_sync(_stats))

    failed = subparsers.add_parser(
        "failed",
        help="the failed queue: list, retry or purge dead-lettered jobs",
        description="Uses NODEDROP_SCHEDULER_ADDR.",
    )
    sub = failed.add_subparsers(title="failed commands", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="oldest failure first")
    listing.add_argument("--limit", type=int, default=50, help="page size (default 50)")
    listing.add_argument("--page-token", default="", help="continue after a previous page")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=_sync(_list))
    for name, helptext in (
        ("retry", "queue the jobs again, resuming after their completed nodes"),
        ("purge", "drop the jobs from the failed queue"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("execution_ids", nargs="*", metavar="EXECUTION_ID")
        p.add_argument("--all", action="store_true", help="every job in the failed queue")
        p.set_defaults(func=_sync(_retry if name == "retry" else _purge), action_name=name)


def _sync(
    fn: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from nodedrop.common.errors import NodedropError  # noqa: PLC0415
        from nodedrop.common.settings import SettingsError  # noqa: PLC0415

        try:
            return asyncio.run(fn(args))
        except SettingsError as e:
            print(f"nodedrop: {e}", file=sys.stderr)
            return 2
        except NodedropError as e:
            print(f"nodedrop: {type(e).__name__}: {e.message}", file=sys.stderr)
            return 1
        except Exception as e:  # a transport failure: say what, not a traceback
            import grpc  # noqa: PLC0415

            if isinstance(e, grpc.aio.AioRpcError):
                print(
                    f"nodedrop: scheduler call failed: {e.code().name}: {e.details()}",
                    file=sys.stderr,
                )
                return 1
            raise

    return run


def _stub() -> tuple[Any, Any]:
    from nodedrop.common.client import open_channel  # noqa: PLC0415
    from nodedrop.common.settings import Addresses, process_env  # noqa: PLC0415
    from nodedrop.queue.v1 import scheduler_service_pb2_grpc as pb_grpc  # noqa: PLC0415

    channel = open_channel(Addresses.from_env(process_env()).scheduler)
    return channel, pb_grpc.SchedulerServiceStub(channel)


def _ms(d: Any) -> int:
    return int(d.seconds * 1000 + d.nanos // 1_000_000)


async def _stats(args: argparse.Namespace) -> int:
    import orjson  # noqa: PLC0415

    from nodedrop.common.client import call  # noqa: PLC0415
    from nodedrop.queue.v1 import scheduler_service_pb2 as pb  # noqa: PLC0415

    channel, stub = _stub()
    async with channel:
        s = await call(stub.GetQueueStats, pb.GetQueueStatsRequest(), timeout_s=_TIMEOUT_S)
    data = {
        "waiting": s.waiting,
        "active": s.active,
        "delayed": s.delayed,
        "completed": s.completed,
        "failed": s.failed,
        "oldest_waiting_ms": _ms(s.oldest_waiting_age),
        "partitions": s.partitions,
        "lanes": [
            {
                "priority": lane.priority,
                "waiting": lane.waiting,
                "oldest_waiting_ms": _ms(lane.oldest_waiting_age),
            }
            for lane in s.lanes
        ],
    }
    if args.json:
        print(orjson.dumps(data).decode())
        return 0
    for key in ("waiting", "active", "delayed", "completed", "failed"):
        print(f"{key:<12}{data[key]}")
    print(f"{'oldest':<12}{data['oldest_waiting_ms'] / 1000:.3f}s waiting")
    print(f"{'partitions':<12}{data['partitions']}")
    for lane in data["lanes"]:
        print(
            f"lane {lane['priority']:<7}{lane['waiting']} waiting, "
            f"oldest {lane['oldest_waiting_ms'] / 1000:.3f}s"
        )
    return 0


async def _list(args: argparse.Namespace) -> int:
    import orjson  # noqa: PLC0415

    from nodedrop.common.client import call  # noqa: PLC0415
    from nodedrop.queue.v1 import scheduler_service_pb2 as pb  # noqa: PLC0415

    if not 1 <= args.limit <= 1000:
        print("nodedrop failed list: --limit must be within 1..1000", file=sys.stderr)
        return 2
    channel, stub = _stub()
    async with channel:
        r = await call(
            stub.ListFailedJobs,
            pb.ListFailedJobsRequest(page_size=args.limit, page_token=args.page_token),
            timeout_s=_TIMEOUT_S,
        )
    for j in r.jobs:
        when = j.fail_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
        if args.json:
            print(
                orjson.dumps(
                    {
                        "execution_id": j.execution_id,
                        "tenant_id": j.tenant_id,
                        "workflow_id": j.workflow_id,
                        "attempts": j.attempts,
                        "reason": j.reason,
                        "node_id": j.node_id,
                        "fail_time": when,
                    }
                ).decode()
            )
        else:
            node = f" node {j.node_id}" if j.node_id else ""
            print(f"{j.execution_id}  {when}  attempts {j.attempts}{node}: {j.reason}")
    if r.next_page_token:
        print(f"more: --page-token {r.next_page_token}", file=sys.stderr)
    return 0


def _targets(args: argparse.Namespace) -> list[str] | None:
    if bool(args.execution_ids) == bool(args.all):
        print(f"nodedrop failed {args.action_name}: give execution ids or --all", file=sys.stderr)
        return None
    return list(args.execution_ids)


async def _retry(args: argparse.Namespace) -> int:
    from nodedrop.common.client import call  # noqa: PLC0415
    from nodedrop.queue.v1 import scheduler_service_pb2 as pb  # noqa: PLC0415

    ids = _targets(args)
    if ids is None:
        return 2
    channel, stub = _stub()
    async with channel:
        r = await call(
            stub.RetryFailedJobs,
            pb.RetryFailedJobsRequest(execution_ids=ids, all=args.all),
            timeout_s=_TIMEOUT_S,
        )
    print(f"retried {r.retried}")
    return 0


async def _purge(args: argparse.Namespace) -> int:
    from nodedrop.common.client import call  # noqa: PLC0415
    from nodedrop.queue.v1 import scheduler_service_pb2 as pb  # noqa: PLC0415

    ids = _targets(args)
    if ids is None:
        return 2
    channel, stub = _stub()
    async with channel:
        r = await call(
            stub.PurgeFailedJobs,
            pb.PurgeFailedJobsRequest(execution_ids=ids, all=args.all),
            timeout_s=_TIMEOUT_S,
        )
    print(f"purged {r.purged}")
    return 0
