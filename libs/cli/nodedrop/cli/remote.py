"""Talking to a running API from the command line.

The CLI finds the API through NODEDROP_API_ADDR (default 127.0.0.1:50051) and
the events service through NODEDROP_EVENTS_ADDR (default 127.0.0.1:50053),
and sends NODEDROP_API_KEY as ``authorization: Bearer``. With NODEDROP_TLS_CERT,
NODEDROP_TLS_KEY and NODEDROP_TLS_CA set, both channels use mutual TLS. API errors become
``RemoteError`` with the status, the message and one line per field
violation, and an exit status: 2 for what the user can fix (bad input,
unknown id, credentials), 1 for the rest (the service is down, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
from google.rpc import error_details_pb2, status_pb2

from nodedrop.admin.v1 import queue_admin_service_pb2_grpc as admin_grpc
from nodedrop.common.settings import SettingsError, env_addr, env_str, process_env
from nodedrop.common.tls import TlsSettings
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.execution.v1 import execution_service_pb2_grpc as ex_grpc
from nodedrop.workflow.v1 import workflow_pb2
from nodedrop.workflow.v1 import workflow_service_pb2_grpc as wfs_grpc

__all__ = [
    "Api",
    "RemoteError",
    "command",
    "connect",
    "document_of",
    "execution_outcome",
    "run_remote",
    "status_name",
    "workflow_proto",
]

DEFAULT_API_ADDR = "127.0.0.1:50051"
DEFAULT_EVENTS_ADDR = "127.0.0.1:50053"
CALL_TIMEOUT_S = 30.0
_USER_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
TERMINAL = frozenset(
    {
        execution_pb2.EXECUTION_STATUS_COMPLETED,
        execution_pb2.EXECUTION_STATUS_FAILED,
        execution_pb2.EXECUTION_STATUS_CANCELLED,
        execution_pb2.EXECUTION_STATUS_TIMED_OUT,
    }
)
MODES = {"queue": execution_pb2.EXECUTION_MODE_QUEUE, "direct": execution_pb2.EXECUTION_MODE_DIRECT}


class RemoteError(Exception):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    @classmethod
    def from_rpc(cls, exc: grpc.aio.AioRpcError) -> RemoteError:
        lines = [f"{exc.code().name}: {exc.details() or ''}".rstrip(": ")]
        for key, value in exc.trailing_metadata() or ():
            if key != "grpc-status-details-bin" or not isinstance(value, bytes):
                continue
            for detail in status_pb2.Status.FromString(value).details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    lines += [f"  {v.field}: {v.description}" for v in bad.field_violations]
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            lines.append("  (is the API running? it is looked for at NODEDROP_API_ADDR)")
        return cls("\n".join(lines), 2 if exc.code() in _USER_CODES else 1)


@dataclass(frozen=True)
class Api:
    channel: grpc.aio.Channel
    key: str
    events_addr: str
    tls: TlsSettings | None = None

    def events_channel(self) -> grpc.aio.Channel:
        from nodedrop.common.client import open_channel  # noqa: PLC0415

        return open_channel(self.events_addr, tls=self.tls)

    @property
    def admin(self) -> admin_grpc.QueueAdminServiceStub:
        return admin_grpc.QueueAdminServiceStub(self.channel)

    @property
    def ex(self) -> ex_grpc.ExecutionServiceStub:
        return ex_grpc.ExecutionServiceStub(self.channel)

    @property
    def wf(self) -> wfs_grpc.WorkflowServiceStub:
        return wfs_grpc.WorkflowServiceStub(self.channel)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.key}"),)

    async def call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, metadata=self.metadata, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise RemoteError.from_rpc(exc) from None


@asynccontextmanager
async def connect() -> AsyncIterator[Api]:
    env = process_env()
    try:
        target = env_addr(env, "NODEDROP_API_ADDR", DEFAULT_API_ADDR)
        events = env_addr(env, "NODEDROP_EVENTS_ADDR", DEFAULT_EVENTS_ADDR)
        key = env_str(env, "NODEDROP_API_KEY", "")
        tls = TlsSettings.from_env(env)
    except SettingsError as exc:
        raise RemoteError(str(exc), 2) from None
    if not key:
        raise RemoteError(
            "set NODEDROP_API_KEY to talk to the API (`nodedrop dev` prints one, `nodedrop "
            "apikeys create` makes one); `nodedrop run --local` needs no API",
            2,
        )
    from nodedrop.common.client import open_channel  # noqa: PLC0415

    channel = open_channel(target, tls=tls)
    try:
        yield Api(channel, key, events.target, tls)
    finally:
        await channel.close()


def workflow_proto(document: Any) -> workflow_pb2.Workflow:
    """A NODES.md workflow document as the API's protobuf (the API validates it)."""
    from nodedrop.contract import to_proto  # noqa: PLC0415

    if not isinstance(document, dict):
        raise RemoteError("a workflow file must hold a JSON object", 2)
    return to_proto(document)


def document_of(wf: workflow_pb2.Workflow) -> dict[str, Any]:
    """The protobuf back as the NODES.md document, with the stored id and version."""
    from nodedrop.contract import document_of  # noqa: PLC0415

    document, _ = document_of(wf)
    return {"id": wf.id, "version": wf.version, **document}


def status_name(value: int) -> str:
    return execution_pb2.ExecutionStatus.Name(value).removeprefix("EXECUTION_STATUS_").lower()  # type: ignore[arg-type]


def execution_outcome(execution: execution_pb2.Execution) -> dict[str, Any]:
    """The shape `nodedrop run --local` prints: status, outputs, error, execution_id."""
    outputs = {
        node: orjson.loads(out.ports_json["main"])
        for node, out in execution.outputs.items()
        if "main" in out.ports_json
    }
    error = None
    if execution.HasField("error"):
        e = execution.error
        error = {
            "message": e.message,
            "code": e.code,
            "node_id": e.node_id or None,
            "retryable": e.retryable,
        }
    return {
        "status": status_name(execution.status),
        "outputs": outputs,
        "error": error,
        "execution_id": execution.id,
    }


async def wait_for_end(api: Api, execution_id: str, *, timeout_s: float) -> execution_pb2.Execution:
    """Polls GetExecution until the stored status is terminal (bounded by `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        response = await api.call(
            api.ex.GetExecution,
            ex_pb.GetExecutionRequest(execution_id=execution_id, include_outputs=True),
        )
        execution: execution_pb2.Execution = response.execution
        if execution.status in TERMINAL:
            return execution
        if time.monotonic() > deadline:
            raise RemoteError(
                f"execution {execution_id} is still {status_name(execution.status)} after "
                f"{timeout_s:g} s; follow it with `nodedrop executions watch {execution_id}`",
                1,
            )
        await asyncio.sleep(delay)
        delay = min(1.0, delay * 1.5)


def _source(arg: str) -> tuple[str, Any]:
    """("file", document) for a file or '-', ("id", workflow id) for a stored workflow."""
    from nodedrop.cli.commands._workflow_file import load_workflow_data  # noqa: PLC0415

    if arg == "-" or os.path.exists(arg):
        return "file", load_workflow_data(arg)
    try:
        uuid.UUID(arg)
    except ValueError:
        raise RemoteError(f"{arg}: no such file, and not a workflow id", 2) from None
    return "id", arg


async def run_remote(args: argparse.Namespace, printer: Any) -> dict[str, Any]:
    """`nodedrop run` without --local: submit to the API, then follow or wait for the end."""
    from nodedrop.cli.commands._workflow_file import parse_input  # noqa: PLC0415

    kind, source = _source(args.file)
    trigger = parse_input(args.input)
    request = ex_pb.ExecuteWorkflowRequest(
        trigger_data_json=orjson.dumps(trigger).decode() if trigger is not None else "",
        mode=MODES[args.mode] if getattr(args, "mode", None) else 0,  # type: ignore[arg-type]
    )
    if kind == "file":
        request.workflow.CopyFrom(workflow_proto(source))
    else:
        request.workflow_id = source
    stream = printer.stream
    async with connect() as api:
        submitted = await api.call(api.ex.ExecuteWorkflow, request)
        execution_id = submitted.execution_id
        print(f"execution {execution_id} submitted", file=stream, flush=True)
        if getattr(args, "follow", False):
            await _follow(api, execution_id, stream)
        execution = await wait_for_end(api, execution_id, timeout_s=args.wait)
    return execution_outcome(execution)


async def _follow(api: Api, execution_id: str, stream: Any) -> None:
    from nodedrop.cli.follow import EventPrinter, FollowError, follow_execution  # noqa: PLC0415

    channel = api.events_channel()
    try:
        await follow_execution(
            channel,
            api.key,
            execution_id,
            on_event=EventPrinter(stream, color=stream.isatty()),
        )
    except FollowError as exc:
        # The result is still read from the API below; say why the live view stopped.
        print(f"nodedrop: live events unavailable ({exc.code}: {exc})", file=sys.stderr)
    finally:
        await channel.close()


def command(
    prog: str, fn: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
) -> Callable[[argparse.Namespace], int]:
    """An async command as an argparse handler: errors printed, exit status returned."""

    def run(args: argparse.Namespace) -> int:
        from nodedrop.cli.commands._workflow_file import FileError  # noqa: PLC0415

        try:
            return asyncio.run(fn(args))
        except RemoteError as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return exc.exit_code
        except FileError as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:
            # The reader (`| head`) went away: not an error of this command.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0

    return run
