"""``nodedrop workflows create|get|list|update|delete|activate|deactivate``: stored
workflows through the API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import orjson

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "workflows",
        help="manage stored workflows (through the API)",
        description="Uses NODEDROP_API_ADDR and NODEDROP_API_KEY.",
    )
    sub = parser.add_subparsers(title="workflows commands", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="store a workflow file as a new workflow")
    create.add_argument("file", help="workflow JSON file ('-' for stdin)")
    create.add_argument("--json", action="store_true", help="print the stored workflow as JSON")
    create.set_defaults(func=_sync(_create))
    get = sub.add_parser("get", help="print a stored workflow as JSON (the file format)")
    get.add_argument("workflow_id")
    get.add_argument("--version", type=int, help="an older version (default: the latest)")
    get.set_defaults(func=_sync(_get))
    listing = sub.add_parser("list", help="list workflows (latest versions)")
    listing.add_argument("--prefix", default="", help="only names starting with this")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=_sync(_list))
    update = sub.add_parser("update", help="store a new version of a workflow")
    update.add_argument("workflow_id")
    update.add_argument("file", help="workflow JSON file ('-' for stdin)")
    update.add_argument(
        "--expected-version",
        type=int,
        help="refuse (ABORTED) unless the latest version is this one",
    )
    update.add_argument("--json", action="store_true", help="print the stored workflow as JSON")
    update.set_defaults(func=_sync(_update))
    delete = sub.add_parser("delete", help="delete a workflow and every version")
    delete.add_argument("workflow_id")
    delete.set_defaults(func=_sync(_delete))
    activate = sub.add_parser(
        "activate", help="register a version's triggers (webhook routes, schedule)"
    )
    activate.add_argument("workflow_id")
    activate.add_argument("--version", type=int, help="the version to activate (default: latest)")
    activate.set_defaults(func=_sync(_activate))
    deactivate = sub.add_parser("deactivate", help="remove the triggers of an active workflow")
    deactivate.add_argument("workflow_id")
    deactivate.set_defaults(func=_sync(_deactivate))


def _sync(
    fn: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace], int]:
    from nodedrop.cli.remote import command  # noqa: PLC0415

    return command("nodedrop workflows", fn)


def _show(wf: Any, as_json: bool, verb: str) -> None:
    from nodedrop.cli.remote import document_of  # noqa: PLC0415

    if as_json:
        print(orjson.dumps(document_of(wf)).decode())
    else:
        print(f"{verb} workflow {wf.id} version {wf.version} ({wf.name})")


def _load(path: str) -> Any:
    from nodedrop.cli.commands._workflow_file import load_workflow_data  # noqa: PLC0415
    from nodedrop.cli.remote import workflow_proto  # noqa: PLC0415

    return workflow_proto(load_workflow_data(path))


async def _create(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import connect  # noqa: PLC0415
    from nodedrop.workflow.v1 import workflow_service_pb2 as pb  # noqa: PLC0415

    wf = _load(args.file)
    async with connect() as api:
        response = await api.call(api.wf.CreateWorkflow, pb.CreateWorkflowRequest(workflow=wf))
    _show(response.workflow, args.json, "created")
    return 0


async def _get(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import connect, document_of  # noqa: PLC0415
    from nodedrop.workflow.v1 import workflow_service_pb2 as pb  # noqa: PLC0415

    request = pb.GetWorkflowRequest(workflow_id=args.workflow_id)
    if args.version is not None:
        request.version = args.version
    async with connect() as api:
        response = await api.call(api.wf.GetWorkflow, request)
    print(orjson.dumps(document_of(response.workflow), option=orjson.OPT_INDENT_2).decode())
    return 0


async def _list(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import connect  # noqa: PLC0415
    from nodedrop.workflow.v1 import workflow_service_pb2 as pb  # noqa: PLC0415

    if args.limit < 1:
        print("nodedrop workflows list: --limit must be >= 1", file=sys.stderr)
        return 2
    shown = 0
    token = ""
    async with connect() as api:
        while shown < args.limit:
            response = await api.call(
                api.wf.ListWorkflows,
                pb.ListWorkflowsRequest(
                    name_prefix=args.prefix,
                    page_size=min(100, args.limit - shown),
                    page_token=token,
                ),
            )
            for wf in response.workflows:
                when = wf.update_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
                if args.json:
                    row = {
                        "id": wf.id,
                        "version": wf.version,
                        "name": wf.name,
                        "updated": when,
                        "active_version": wf.active_version or None,
                    }
                    print(orjson.dumps(row).decode())
                else:
                    active = f"active v{wf.active_version}" if wf.active_version else "inactive"
                    print(f"{wf.id}  v{wf.version:<4} {when}  {active:<12} {wf.name}")
                shown += 1
            token = response.next_page_token
            if not token:
                break
    if shown == 0 and not args.json:
        print("no workflows", file=sys.stderr)
    return 0


async def _update(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import connect  # noqa: PLC0415
    from nodedrop.workflow.v1 import workflow_service_pb2 as pb  # noqa: PLC0415

    request = pb.UpdateWorkflowRequest(workflow_id=args.workflow_id, workflow=_load(args.file))
    if args.expected_version is not None:
        request.expected_version = args.expected_version
    async with connect() as api:
        response = await api.call(api.wf.UpdateWorkflow, request)
    _show(response.workflow, args.json, "updated")
    return 0


async def _delete(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import connect  # noqa: PLC0415
    from nodedrop.workflow.v1 import workflow_service_pb2 as pb  # noqa: PLC0415

    async with connect() as api:
        await api.call(
            api.wf.DeleteWorkflow, pb.DeleteWorkflowRequest(workflow_id=args.workflow_id)
        )
    print(f"deleted workflow {args.workflow_id}")
    return 0


async def _activate(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import connect  # noqa: PLC0415
    from nodedrop.workflow.v1 import workflow_service_pb2 as pb  # noqa: PLC0415

    request = pb.ActivateWorkflowRequest(workflow_id=args.workflow_id)
    if args.version is not None:
        request.version = args.version
    async with connect() as api:
        response = await api.call(api.wf.ActivateWorkflow, request)
    wf = response.workflow
    print(f"activated workflow {wf.id} version {wf.active_version}")
    for path in response.webhook_paths:
        print(f"  webhook  {path}")
    if response.schedule_id:
        print(f"  schedule {response.schedule_id}")
    return 0


async def _deactivate(args: argparse.Namespace) -> int:
    from nodedrop.cli.remote import connect  # noqa: PLC0415
    from nodedrop.workflow.v1 import workflow_service_pb2 as pb  # noqa: PLC0415

    async with connect() as api:
        await api.call(
            api.wf.DeactivateWorkflow, pb.DeactivateWorkflowRequest(workflow_id=args.workflow_id)
        )
    print(f"deactivated workflow {args.workflow_id}")
    return 0
