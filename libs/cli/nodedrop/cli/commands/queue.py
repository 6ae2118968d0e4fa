"""``nodedrop stats`` and ``nodedrop failed list|retry|purge``: the queue, for operators.

Through the API's QueueAdminService (NODEDROP_API_ADDR, NODEDROP_API_KEY): an
admin key sees and acts on its own tenant's jobs, an operator key on every
tenant's. The scheduler itself takes only the service credential.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["register"]

_USES = "Uses NODEDROP_API_ADDR and NODEDROP_API_KEY (an admin or operator key)."


def register(subparsers: Any) -> None:
    stats = subparsers.add_parser(
        "stats",
        help="queue statistics: waiting, active, delayed, completed, failed, per lane",
        description=_USES + " An admin key sees its tenant's figures, an operator key the queue's.",
    )
    stats.add_argument("--json", action="store_true", help="as one JSON object")
    stats.set_defaults(func=_sync(_stats))

    failed = subparsers.add_parser(
        "failed",
        help="the failed queue: list, retry or purge dead-lettered jobs",
        description=_USES,
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
        p.add_argument("--all", action="store_true", help="every job in the failed queue you see")
        p.set_defaults(func=_sync(_retry if name == "retry" else _purge), action_name=name)


def _sync(
    fn: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace], int]:
    from nodedrop.cli.remote import command  # noqa: PLC0415

    return command("nodedrop", fn)


async def _stats(args: argparse.Namespace) -> int:
    import orjson  # noqa: PLC0415

    from nodedrop.cli.remote import open_client  # noqa: PLC0415

    async with open_client() as client:
        s = await client.queue_stats()
    data: dict[str, Any] = {
        "tenant_id": s.tenant_id,
        "waiting": s.waiting,
        "active": s.active,
        "delayed": s.delayed,
        "failed": s.failed,
    }
    if s.tenant_id is None:
        # The whole queue's figures: only the scheduler has these.
        data |= {
            "completed": s.completed,
            "oldest_waiting_ms": round((s.oldest_waiting_s or 0.0) * 1000),
            "partitions": s.partitions,
            "lanes": [
                {
                    "priority": lane.priority,
                    "waiting": lane.waiting,
                    "oldest_waiting_ms": round(lane.oldest_waiting_s * 1000),
                }
                for lane in s.lanes
            ],
        }
    if args.json:
        print(orjson.dumps(data).decode())
        return 0
    print(f"{'tenant':<12}{s.tenant_id or '(every tenant)'}")
    for key in ("waiting", "active", "delayed", "completed", "failed"):
        if key in data:
            print(f"{key:<12}{data[key]}")
    if s.tenant_id is not None:
        return 0
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

    from nodedrop.cli.remote import RemoteError, open_client  # noqa: PLC0415

    if not 1 <= args.limit <= 1000:
        raise RemoteError("--limit must be within 1..1000")
    async with open_client() as client:
        jobs, next_token = await client.failed_jobs(
            page_size=args.limit, page_token=args.page_token
        )
    for j in jobs:
        when = j.failed.strftime("%Y-%m-%d %H:%M:%S") if j.failed else "-"
        if args.json:
            print(
                orjson.dumps(
                    {
                        "execution_id": j.execution_id,
                        "tenant_id": j.tenant_id,
                        "workflow_id": j.workflow_id or "",
                        "attempts": j.attempts,
                        "reason": j.reason,
                        "node_id": j.node_id or "",
                        "fail_time": when,
                    }
                ).decode()
            )
        else:
            node = f" node {j.node_id}" if j.node_id else ""
            print(f"{j.execution_id}  {when}  attempts {j.attempts}{node}: {j.reason}")
    if next_token:
        print(f"more: --page-token {next_token}", file=sys.stderr)
    return 0


def _targets(args: argparse.Namespace) -> list[str]:
    from nodedrop.cli.remote import RemoteError  # noqa: PLC0415

    if bool(args.execution_ids) == bool(args.all):
        raise RemoteError(f"failed {args.action_name}: give execution ids or --all")
    return list(args.execution_ids)


async def _retry(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import open_client  # noqa: PLC0415

    ids = _targets(args)
    async with open_client() as client:
        retried = await client.retry_failed(ids, all=args.all)
    print(f"retried {retried}")
    return 0


async def _purge(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import open_client  # noqa: PLC0415

    ids = _targets(args)
    async with open_client() as client:
        purged = await client.purge_failed(ids, all=args.all)
    print(f"purged {purged}")
    return 0
