"""``nodedrop run FILE``: run a workflow and show its events as they happen.

``--local`` runs it in this process (direct mode, no services needed). Without
it the run goes to the API; that mode plugs in through ``REMOTE_RUNNER`` (the
API part sets it), so this module keeps the argument handling, the display and
the exit codes shared by both modes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TextIO

import orjson

from nodedrop.cli.commands._workflow_file import FileError, load_workflow_data, parse_input
from nodedrop.cli.console import console_lines
from nodedrop.engine import (
    CancelToken,
    EngineConfig,
    EventType,
    HttpPolicy,
    ValidationError,
    parse_workflow,
)
from nodedrop.engine.limits import DEFAULT_LIMITS
from nodedrop.engine.local import SequencedEvent, run_local
from nodedrop.sandbox import ProcessSandbox

__all__ = ["EventPrinter", "Outcome", "register", "run_file_local"]

# (args, printer) -> final execution {"status", "outputs", "error"}; None = no remote mode.
RemoteRunner = Callable[[argparse.Namespace, "EventPrinter"], Coroutine[Any, Any, dict[str, Any]]]
REMOTE_RUNNER: RemoteRunner | None = None

Outcome = dict[str, Any]

_GLYPH = {
    EventType.NODE_STARTED: "…",
    EventType.NODE_COMPLETED: "✓",
    EventType.NODE_FAILED: "✗",
    EventType.NODE_SKIPPED: "-",
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="run a workflow file and follow its events")
    parser.add_argument(
        "file", help="workflow JSON file ('-' for stdin), or a stored workflow's id (remote runs)"
    )
    parser.add_argument("--local", action="store_true", help="run in this process (direct mode)")
    parser.add_argument(
        "--mode",
        choices=("queue", "direct"),
        help="remote runs: where the API runs it (default: the API's NODEDROP_DEFAULT_MODE)",
    )
    parser.add_argument(
        "--follow",
        action="store_true",
        help="remote runs: show each event live (through NODEDROP_EVENTS_ADDR)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=600.0,
        metavar="S",
        help="remote runs: give up waiting for the end after S seconds (default 600)",
    )
    parser.add_argument(
        "--cancel-on-exit",
        action="store_true",
        help="remote runs: cancel the execution when interrupted (Ctrl-C); without it the "
        "execution goes on",
    )
    parser.add_argument("--input", help="trigger data as JSON, or @FILE")
    parser.add_argument(
        "--json", action="store_true", help="print the final execution as one JSON object"
    )
    parser.add_argument(
        "--http-allow",
        action="append",
        default=[],
        metavar="ADDR",
        help="with --local: let http_request reach this non-public address, network or "
        "host, optionally with :port (e.g. 127.0.0.1:8000); repeatable",
    )
    parser.set_defaults(func=_run)


class EventPrinter:
    """Events as they happen: one line each, or a compact live line on a terminal.

    With ``--json`` the events go to stderr so that stdout holds only the result.
    """

    def __init__(self, stream: TextIO, *, live: bool) -> None:
        self.stream = stream
        self.live = live
        self.done = 0
        self.nodes: dict[str, str] = {}

    def __call__(self, seq: SequencedEvent) -> None:
        self.show(
            seq.sequence,
            seq.event.type,
            seq.event.node_id,
            seq.event.error.message if seq.event.error else None,
        )
        if seq.event.type is EventType.NODE_COMPLETED and seq.event.data_json:
            for line in console_lines(seq.event.data_json):
                self.stream.write(f"     {line}\n")
            self.stream.flush()

    def show(self, sequence: int, etype: EventType, node_id: str | None, error: str | None) -> None:
        if node_id is not None:
            self.nodes[node_id] = etype.name
        if etype in (EventType.NODE_COMPLETED, EventType.NODE_SKIPPED, EventType.NODE_FAILED):
            self.done += 1
        if self.live:
            glyph = _GLYPH.get(etype, "")
            line = f"\r\x1b[2K[{self.done} nodes] {glyph} {node_id or etype.name.lower()}"
            if node_id is None or etype is EventType.NODE_FAILED:
                line += "\n"
            if error:
                line += f"  {error}\n"
            self.stream.write(line)
        else:
            where = f" {node_id}" if node_id else ""
            tail = f": {error}" if error else ""
            self.stream.write(f"{sequence:>4} {etype.name.lower()}{where}{tail}\n")
        self.stream.flush()


def _printer(args: argparse.Namespace) -> EventPrinter:
    stream = sys.stderr if args.json else sys.stdout
    return EventPrinter(stream, live=stream.isatty())


async def run_file_local(
    workflow_data: Any,
    trigger: Any,
    printer: EventPrinter,
    cancel: CancelToken | None = None,
    config: EngineConfig | None = None,
) -> Outcome:
    wf = parse_workflow(workflow_data)
    run = await run_local(wf, trigger, on_event=printer, cancel=cancel, config=config)
    return run.result.to_dict() | {"execution_id": run.execution_id}


async def _local_main(
    args: argparse.Namespace, printer: EventPrinter, trigger: Any, config: EngineConfig
) -> Outcome:
    token = CancelToken()
    loop = asyncio.get_running_loop()
    # Not available off the main thread or on some platforms: Ctrl-C then just stops.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, token.cancel, "interrupted")
    try:
        return await run_file_local(load_workflow_data(args.file), trigger, printer, token, config)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
        if isinstance(config.code, ProcessSandbox):
            await config.code.close()


def _run(args: argparse.Namespace) -> int:
    outcome: Outcome
    try:
        trigger = parse_input(args.input)
        if not args.local:
            from nodedrop.cli.remote import command, run_remote  # noqa: PLC0415

            printer = _printer(args)
            result: list[Outcome] = []

            async def remote(a: argparse.Namespace) -> int:
                result.append(await (REMOTE_RUNNER or run_remote)(a, printer))
                return 0

            code = command("nodedrop run", remote)(args)
            if code:
                return code
            outcome = result[0]
        else:
            try:
                config = EngineConfig(
                    http=HttpPolicy(allow=tuple(args.http_allow)),
                    code=ProcessSandbox(1, DEFAULT_LIMITS.code_memory_bytes),
                )
            except ValueError as exc:
                print(f"nodedrop run: bad --http-allow entry: {exc}", file=sys.stderr)
                return 2
            printer = _printer(args)
            outcome = asyncio.run(_local_main(args, printer, trigger, config))
    except FileError as exc:
        print(f"nodedrop run: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        for p in exc.problems:
            print(f"{args.file}: {p.path or '<workflow>'}: {p.code}: {p.message}", file=sys.stderr)
        return 2
    return _finish(args, outcome)


def _finish(args: argparse.Namespace, outcome: Outcome) -> int:
    if args.json:
        sys.stdout.write(orjson.dumps(outcome).decode() + "\n")
    else:
        status = outcome["status"]
        error = outcome.get("error")
        print(
            f"execution {outcome.get('execution_id', '')} {status}"
            + (f": {error['message']}" if error else "")
        )
        for node_id, items in outcome.get("outputs", {}).items():
            print(f"  {node_id}: {orjson.dumps(items).decode()}")
    return 0 if outcome["status"] == "completed" else 1
