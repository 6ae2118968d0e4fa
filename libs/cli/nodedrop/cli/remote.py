"""Talking to a running deployment from the command line, through ``nodedrop.client``.

The CLI finds the API through NODEDROP_API_ADDR (default 127.0.0.1:50051) and
the events service through NODEDROP_EVENTS_ADDR (default 127.0.0.1:50053),
and sends NODEDROP_API_KEY; with NODEDROP_TLS_CERT, NODEDROP_TLS_KEY and
NODEDROP_TLS_CA set, both channels use mutual TLS (``nodedrop.client.ClientConfig``).

Every remote command runs through ``command``, the one place its errors are
printed: once, with the status code, one line per field violation, and an
exit status of 2 for what the user can fix (bad input, unknown id,
credentials) and 1 for the rest (the service is down, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TextIO

import grpc

from nodedrop.client import (
    AsyncClient,
    ClientConfig,
    DeadlineExceeded,
    Execution,
    InvalidArgument,
    NodedropError,
)
from nodedrop.client.errors import status_name
from nodedrop.common.settings import SettingsError

__all__ = [
    "RemoteError",
    "command",
    "execution_outcome",
    "open_client",
    "report",
    "run_remote",
    "workflow_source",
]

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
        grpc.StatusCode.OUT_OF_RANGE,
    }
)


class RemoteError(Exception):
    """A problem the CLI finds itself (a bad argument, no key); ``exit_code`` is returned."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def report(prog: str, exc: BaseException, out: TextIO | None = None) -> int:
    """Prints a command's failure once and returns its exit status."""
    out = out or sys.stderr
    if isinstance(exc, NodedropError):
        code = status_name(exc)
        lines = [f"{prog}: {code}: {exc.message}"]
        if isinstance(exc, InvalidArgument):
            lines += [f"  {v.field}: {v.description}" for v in exc.violations]
        if code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
            lines.append(
                "  (is the service running? the API is looked for at NODEDROP_API_ADDR, "
                "the events service at NODEDROP_EVENTS_ADDR)"
            )
        print("\n".join(lines), file=out, flush=True)
        return 2 if getattr(exc, "code", None) in _USER_CODES else 1
    if isinstance(exc, RemoteError):
        print(f"{prog}: {exc}", file=out, flush=True)
        return exc.exit_code
    print(f"{prog}: {exc}", file=out, flush=True)
    return 2


@asynccontextmanager
async def open_client() -> AsyncIterator[AsyncClient]:
    try:
        config = ClientConfig.from_env()
    except SettingsError as exc:
        raise RemoteError(str(exc)) from None
    if not config.api_key:
        raise RemoteError(
            "set NODEDROP_API_KEY to talk to the API (`nodedrop dev` prints one, `nodedrop "
            "apikeys create` makes one); `nodedrop run --local` needs no API"
        )
    client = AsyncClient(config=config)
    try:
        yield client
    finally:
        await client.close()


def execution_outcome(execution: Execution) -> dict[str, Any]:
    """The shape `nodedrop run --local` prints: status, outputs, error, execution_id."""
    error = None
    if execution.error is not None:
        e = execution.error
        error = {
            "message": e.message,
            "code": e.code,
            "node_id": e.node_id,
            "retryable": e.retryable,
        }
    return {
        "status": str(execution.status),
        "outputs": {
            node: ports["main"] for node, ports in execution.outputs.items() if "main" in ports
        },
        "error": error,
        "execution_id": execution.id,
    }


def workflow_source(arg: str) -> tuple[dict[str, Any] | None, str | None]:
    """(definition, None) for a file or '-', (None, id) for a stored workflow's id."""
    from nodedrop.cli.commands._workflow_file import load_workflow_data  # noqa: PLC0415

    if arg == "-" or os.path.exists(arg):
        document = load_workflow_data(arg)
        if not isinstance(document, dict):
            raise RemoteError("a workflow file must hold a JSON object")
        return document, None
    try:
        uuid.UUID(arg)
    except ValueError:
        raise RemoteError(f"{arg}: no such file, and not a workflow id") from None
    return None, arg


async def run_remote(args: argparse.Namespace, printer: Any) -> dict[str, Any]:
    """`nodedrop run` without --local: submit to the API, then follow or wait for the end.

    Ctrl-C while it waits leaves the execution running and says how to follow
    or cancel it; with ``--cancel-on-exit`` it cancels the execution first.
    """
    from nodedrop.cli.commands._workflow_file import parse_input  # noqa: PLC0415

    definition, workflow_id = workflow_source(args.file)
    trigger = parse_input(args.input)
    stream = printer.stream
    async with open_client() as client:
        submitted = await client.execute(
            definition,
            workflow_id=workflow_id,
            input=trigger,
            mode=getattr(args, "mode", None),
        )
        execution_id = submitted.execution_id
        print(f"execution {execution_id} submitted", file=stream, flush=True)
        try:
            if getattr(args, "follow", False):
                await _follow(client, execution_id, stream)
            execution = await client.wait(execution_id, timeout_s=args.wait)
        except asyncio.CancelledError:
            # asyncio.run turns Ctrl-C into a cancellation of this task.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            raise await _interrupted(client, execution_id, args) from None
    return execution_outcome(execution)


async def _interrupted(
    client: AsyncClient, execution_id: str, args: argparse.Namespace
) -> RemoteError:
    if getattr(args, "cancel_on_exit", False):
        await client.cancel(execution_id, reason="interrupted (nodedrop run --cancel-on-exit)")
        try:
            # The worker stops it at its next check: wait a moment to say so.
            ended = await client.wait(execution_id, timeout_s=10, include_outputs=False)
        except DeadlineExceeded:
            return RemoteError(
                f"interrupted: cancellation of execution {execution_id} requested", 130
            )
        return RemoteError(f"interrupted: execution {execution_id} {ended.status}", 130)
    return RemoteError(
        f"interrupted: execution {execution_id} goes on without this command; follow it with "
        f"`nodedrop executions watch {execution_id}`, cancel it with "
        f"`nodedrop executions cancel {execution_id}`",
        130,
    )


async def _follow(client: AsyncClient, execution_id: str, stream: TextIO) -> None:
    from nodedrop.cli.follow import EventPrinter  # noqa: PLC0415

    printer = EventPrinter(stream, color=stream.isatty())
    try:
        async for event in client.events(execution_id):
            printer(event)
    except NodedropError as exc:
        # The result is still read from the API afterwards; say why the live view stopped.
        print(
            f"nodedrop run: live events unavailable ({status_name(exc)}: {exc.message})",
            file=sys.stderr,
            flush=True,
        )


def command(
    prog: str, fn: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
) -> Callable[[argparse.Namespace], int]:
    """An async command as an argparse handler: errors printed once, exit status returned."""

    def run(args: argparse.Namespace) -> int:
        from nodedrop.cli.commands._workflow_file import FileError  # noqa: PLC0415

        try:
            return asyncio.run(fn(args))
        except (NodedropError, RemoteError, FileError) as exc:
            return report(prog, exc)

    return run
