"""``nodedrop schedules create|list|pause|resume|delete``: cron schedules through the API.

A schedule runs as the tenant of the key that created it; an admin key sees
its tenant's schedules, an operator key every tenant's.
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "schedules",
        help="cron schedules of workflows (through the API)",
        description="Uses NODEDROP_API_ADDR and NODEDROP_API_KEY (an admin or operator key).",
    )
    sub = parser.add_subparsers(title="schedules commands", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="run a workflow on a cron schedule")
    create.add_argument("workflow", help="a stored workflow's id, or a workflow JSON file")
    create.add_argument("cron", help="five-field cron expression, e.g. '*/5 * * * *'")
    create.add_argument("--timezone", default="", help="IANA name (default UTC)")
    create.add_argument("--paused", action="store_true", help="create it paused")
    create.add_argument("--json", action="store_true", help="print the schedule as JSON")
    create.set_defaults(func=_sync(_create))
    listing = sub.add_parser("list", help="list schedules")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=_sync(_list))
    for name, helptext in (
        ("pause", "stop firing a schedule"),
        ("resume", "fire a paused schedule again (missed ticks are not fired)"),
        ("delete", "delete a schedule"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("schedule_id")
        p.set_defaults(func=_sync(_change), action_name=name)


def _sync(
    fn: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace], int]:
    from nodedrop.cli.remote import command  # noqa: PLC0415

    return command("nodedrop schedules", fn)


def _as_dict(s: Any) -> dict[str, Any]:
    return {
        "id": s.id,
        "tenant_id": s.tenant_id,
        "workflow_id": s.workflow_id,
        "cron": s.cron,
        "timezone": s.timezone or "UTC",
        "paused": s.paused,
        "next_fire_time": s.next_fire_time.ToJsonString() if s.HasField("next_fire_time") else None,
    }


def _show(s: Any, as_json: bool) -> None:
    import orjson  # noqa: PLC0415

    d = _as_dict(s)
    if as_json:
        print(orjson.dumps(d).decode())
        return
    state = "paused" if d["paused"] else f"next {d['next_fire_time']}"
    workflow = d["workflow_id"] or "(inline)"
    print(f"{d['id']}  {d['cron']} ({d['timezone']})  workflow {workflow}  {state}")


def _create_request(args: argparse.Namespace) -> Any:
    from nodedrop.admin.v1 import queue_admin_service_pb2 as pb  # noqa: PLC0415
    from nodedrop.cli.commands._workflow_file import load_workflow_data  # noqa: PLC0415
    from nodedrop.cli.remote import RemoteError, workflow_proto  # noqa: PLC0415

    request = pb.CreateScheduleRequest(cron=args.cron, timezone=args.timezone, paused=args.paused)
    if args.workflow == "-" or os.path.exists(args.workflow):
        request.workflow.CopyFrom(workflow_proto(load_workflow_data(args.workflow)))
        return request
    try:
        uuid.UUID(args.workflow)
    except ValueError:
        raise RemoteError(f"{args.workflow}: no such file, and not a workflow id", 2) from None
    request.workflow_id = args.workflow
    return request


async def _create(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import connect  # noqa: PLC0415

    request = _create_request(args)
    async with connect() as api:
        r = await api.call(api.admin.CreateSchedule, request)
    _show(r.schedule, args.json)
    return 0


async def _list(args: argparse.Namespace) -> int:
    from nodedrop.admin.v1 import queue_admin_service_pb2 as pb  # noqa: PLC0415
    from nodedrop.cli.remote import connect  # noqa: PLC0415

    async with connect() as api:
        r = await api.call(api.admin.ListSchedules, pb.ListSchedulesRequest())
    for s in r.schedules:
        _show(s, args.json)
    return 0


async def _change(args: argparse.Namespace) -> int:
    from nodedrop.admin.v1 import queue_admin_service_pb2 as pb  # noqa: PLC0415
    from nodedrop.cli.remote import connect  # noqa: PLC0415

    async with connect() as api:
        if args.action_name == "pause":
            r = await api.call(
                api.admin.PauseSchedule, pb.PauseScheduleRequest(schedule_id=args.schedule_id)
            )
            _show(r.schedule, False)
        elif args.action_name == "resume":
            r = await api.call(
                api.admin.ResumeSchedule, pb.ResumeScheduleRequest(schedule_id=args.schedule_id)
            )
            _show(r.schedule, False)
        else:
            await api.call(
                api.admin.DeleteSchedule, pb.DeleteScheduleRequest(schedule_id=args.schedule_id)
            )
            print(f"deleted {args.schedule_id}")
    return 0
