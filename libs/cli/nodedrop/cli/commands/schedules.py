"""``nodedrop schedules create|list|show|pause|resume|trigger|delete``: cron
schedules through the API.

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
    create.add_argument(
        "--overlap",
        choices=_OVERLAP,
        default="skip",
        help="while the previous run is unfinished: skip the tick (default), allow another "
        "run, or buffer_one (run once more when it ends)",
    )
    create.add_argument(
        "--catch-up",
        choices=_CATCH_UP,
        default="skip",
        help="ticks missed while no scheduler ran: skip them (default), or run_last "
        "(the last one, if within --catch-up-window)",
    )
    create.add_argument(
        "--catch-up-window",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="with --catch-up run_last: how late the last missed tick may still run",
    )
    create.add_argument(
        "--jitter",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="start each tick up to this much later (fixed per schedule and tick)",
    )
    create.add_argument("--json", action="store_true", help="print the schedule as JSON")
    create.set_defaults(func=_sync(_create))
    listing = sub.add_parser("list", help="list schedules")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=_sync(_list))
    for name, helptext in (
        ("show", "a schedule, its next tick and its last run"),
        ("pause", "stop firing a schedule"),
        ("resume", "fire a paused schedule again (missed ticks are not fired)"),
        ("trigger", "start a run now, whatever the overlap policy; prints its execution id"),
        ("delete", "delete a schedule"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("schedule_id")
        p.add_argument("--json", action="store_true", help="print the schedule as JSON")
        p.set_defaults(func=_sync(_change), action_name=name)


_OVERLAP = ("skip", "allow", "buffer_one")
_CATCH_UP = ("skip", "run_last")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _sync(
    fn: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace], int]:
    from nodedrop.cli.remote import command  # noqa: PLC0415

    return command("nodedrop schedules", fn)


def _time(ts: Any) -> str | None:
    return ts.ToJsonString() if ts.seconds or ts.nanos else None


def _as_dict(s: Any) -> dict[str, Any]:
    from nodedrop.execution.v1 import execution_pb2  # noqa: PLC0415
    from nodedrop.queue.v1 import scheduler_service_pb2 as spb  # noqa: PLC0415

    last = None
    if s.HasField("last_run"):
        status = execution_pb2.ExecutionStatus.Name(s.last_run.status)
        last = {
            "execution_id": s.last_run.execution_id,
            "scheduled_time": _time(s.last_run.scheduled_time),
            "start_time": _time(s.last_run.start_time),
            # Unknown once the queue no longer keeps the execution's state.
            "status": status.removeprefix("EXECUTION_STATUS_").lower(),
        }
    return {
        "id": s.id,
        "tenant_id": s.tenant_id,
        "workflow_id": s.workflow_id,
        "cron": s.cron,
        "timezone": s.timezone or "UTC",
        "paused": s.paused,
        "next_fire_time": _time(s.next_fire_time),
        "overlap": spb.OverlapPolicy.Name(s.overlap).removeprefix("OVERLAP_POLICY_").lower(),
        "catch_up": spb.CatchUpPolicy.Name(s.catch_up).removeprefix("CATCH_UP_POLICY_").lower(),
        "catch_up_window_s": s.catch_up_window.ToMilliseconds() / 1000,
        "jitter_s": s.jitter.ToMilliseconds() / 1000,
        "last_run": last,
        "buffered_time": _time(s.buffered_time),
    }


def _show(s: Any, as_json: bool, *, detail: bool = False) -> None:
    import orjson  # noqa: PLC0415

    d = _as_dict(s)
    if as_json:
        print(orjson.dumps(d).decode())
        return
    state = "paused" if d["paused"] else f"next {d['next_fire_time']}"
    workflow = d["workflow_id"] or "(inline)"
    last = d["last_run"]
    ran = f"  last {last['status']}" if last is not None and not detail else ""
    print(f"{d['id']}  {d['cron']} ({d['timezone']})  workflow {workflow}  {state}{ran}")
    if not detail:
        return
    catch_up = d["catch_up"]
    if catch_up == "run_last":
        catch_up += f" within {d['catch_up_window_s']:g} s"
    print(f"  overlap {d['overlap']}  catch-up {catch_up}  jitter {d['jitter_s']:g} s")
    if last is None:
        print("  last run  none")
    else:
        print(
            f"  last run  {last['execution_id']}  tick {last['scheduled_time']}"
            f"  started {last['start_time']}  {last['status']}"
        )
    if d["buffered_time"]:
        print(f"  buffered  tick {d['buffered_time']} (runs when the last run ends)")


def _create_request(args: argparse.Namespace) -> Any:
    from nodedrop.admin.v1 import queue_admin_service_pb2 as pb  # noqa: PLC0415
    from nodedrop.cli.commands._workflow_file import load_workflow_data  # noqa: PLC0415
    from nodedrop.cli.remote import RemoteError, workflow_proto  # noqa: PLC0415
    from nodedrop.queue.v1 import scheduler_service_pb2 as spb  # noqa: PLC0415

    request = pb.CreateScheduleRequest(
        cron=args.cron,
        timezone=args.timezone,
        paused=args.paused,
        overlap=spb.OverlapPolicy.Value(f"OVERLAP_POLICY_{args.overlap.upper()}"),
        catch_up=spb.CatchUpPolicy.Value(f"CATCH_UP_POLICY_{args.catch_up.upper()}"),
    )
    request.catch_up_window.FromMilliseconds(round(args.catch_up_window * 1000))
    request.jitter.FromMilliseconds(round(args.jitter * 1000))
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

    sid = args.schedule_id
    async with connect() as api:
        if args.action_name == "show":
            r = await api.call(api.admin.GetSchedule, pb.GetScheduleRequest(schedule_id=sid))
            _show(r.schedule, args.json, detail=True)
        elif args.action_name == "pause":
            r = await api.call(api.admin.PauseSchedule, pb.PauseScheduleRequest(schedule_id=sid))
            _show(r.schedule, args.json)
        elif args.action_name == "resume":
            r = await api.call(api.admin.ResumeSchedule, pb.ResumeScheduleRequest(schedule_id=sid))
            _show(r.schedule, args.json)
        elif args.action_name == "trigger":
            r = await api.call(
                api.admin.TriggerSchedule, pb.TriggerScheduleRequest(schedule_id=sid)
            )
            if args.json:
                _show(r.schedule, True)
            else:
                print(f"started {r.execution_id}")
        else:
            await api.call(
                api.admin.DeleteSchedule, pb.DeleteScheduleRequest(schedule_id=args.schedule_id)
            )
            print(f"deleted {args.schedule_id}")
    return 0
