"""``nodedrop schedules create|list|show|pause|resume|trigger|delete``: cron
schedules through the API.

A schedule runs as the tenant of the key that created it; an admin key sees
its tenant's schedules, an operator key every tenant's.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nodedrop.client import Schedule

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


def _time(value: datetime | None) -> str | None:
    """RFC 3339 in UTC as the API's JSON writes it: 0, 3 or 6 fractional digits."""
    if value is None:
        return None
    us = value.microsecond
    spec = "seconds" if not us else "milliseconds" if not us % 1000 else "microseconds"
    return value.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def _as_dict(s: Schedule) -> dict[str, Any]:
    last = None
    if s.last_run is not None:
        run = s.last_run
        last = {
            "execution_id": run.execution_id,
            "scheduled_time": _time(run.scheduled),
            "start_time": _time(run.started),
            # Unknown once the queue no longer keeps the execution's state.
            "status": str(run.status) if run.status is not None else "unspecified",
        }
    return {
        "id": s.id,
        "tenant_id": s.tenant_id,
        "workflow_id": s.workflow_id or "",
        "cron": s.cron,
        "timezone": s.timezone,
        "paused": s.paused,
        "next_fire_time": _time(s.next_fire),
        "overlap": s.overlap,
        "catch_up": s.catch_up,
        "catch_up_window_s": s.catch_up_window_s,
        "jitter_s": s.jitter_s,
        "last_run": last,
        "buffered_time": _time(s.buffered),
    }


def _show(s: Schedule, as_json: bool, *, detail: bool = False) -> None:
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


async def _create(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import open_client, workflow_source  # noqa: PLC0415

    definition, workflow_id = workflow_source(args.workflow)
    async with open_client() as client:
        schedule = await client.create_schedule(
            args.cron,
            workflow=definition,
            workflow_id=workflow_id,
            timezone=args.timezone,
            paused=args.paused,
            overlap=args.overlap,
            catch_up=args.catch_up,
            catch_up_window_s=args.catch_up_window,
            jitter_s=args.jitter,
        )
    _show(schedule, args.json)
    return 0


async def _list(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import open_client  # noqa: PLC0415

    async with open_client() as client:
        schedules = await client.list_schedules()
    for s in schedules:
        _show(s, args.json)
    return 0


async def _change(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import open_client  # noqa: PLC0415

    sid = args.schedule_id
    async with open_client() as client:
        if args.action_name == "show":
            _show(await client.get_schedule(sid), args.json, detail=True)
        elif args.action_name == "pause":
            _show(await client.pause_schedule(sid), args.json)
        elif args.action_name == "resume":
            _show(await client.resume_schedule(sid), args.json)
        elif args.action_name == "trigger":
            schedule, execution_id = await client.trigger_schedule(sid)
            if args.json:
                _show(schedule, True)
            else:
                print(f"started {execution_id}")
        else:
            await client.delete_schedule(sid)
            print(f"deleted {sid}")
    return 0
