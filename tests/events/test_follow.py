"""The terminal follower (`nodedrop watch`, `run --follow`) against the real events service."""

from __future__ import annotations

import asyncio
import io

import grpc
import pytest

from nodedrop.cli.follow import EventPrinter, FollowError, follow_execution
from nodedrop.event.v1 import event_pb2
from nodedrop.store import EventType

from .conftest import KEY_A, KEY_B, EventsStack, restart_server


async def test_follow_prints_each_event_and_reports_the_outcome(stack: EventsStack) -> None:
    await stack.writer.write(
        "ex-f",
        [EventType.EXECUTION_QUEUED, EventType.NODE_STARTED, EventType.NODE_COMPLETED],
        data_json='{"main": [{"a": 1}, {"a": 2}]}',
    )
    await stack.writer.write("ex-f", [EventType.NODE_FAILED, EventType.EXECUTION_FAILED])
    out = io.StringIO()
    async with grpc.aio.insecure_channel(stack.address) as channel:
        result = await follow_execution(channel, KEY_A, "ex-f", out=out)
    assert (result.outcome, result.last_sequence, result.succeeded) == ("FAILED", 5, False)
    lines = out.getvalue().splitlines()
    assert len(lines) == 5
    assert "NODE_COMPLETED" in lines[2]
    assert "main: 2 items" in lines[2]
    assert "error: [E] boom" in lines[3]
    assert "\x1b[" not in out.getvalue()


async def test_follow_resumes_after_the_server_drops_every_stream(stack: EventsStack) -> None:
    await stack.writer.write("ex-drop", [EventType.EXECUTION_QUEUED])
    seen: list[int] = []
    dropped = asyncio.Event()

    def on_event(event: event_pb2.ExecutionEvent) -> None:
        seen.append(event.sequence)
        if event.sequence == 3:
            dropped.set()

    async with grpc.aio.insecure_channel(stack.address) as channel:
        follower = asyncio.create_task(
            follow_execution(channel, KEY_A, "ex-drop", on_event=on_event, backoff_s=(0.05, 0.2))
        )
        await stack.writer.write("ex-drop", [EventType.NODE_STARTED, EventType.NODE_COMPLETED])
        await asyncio.wait_for(dropped.wait(), 5)
        await restart_server(stack)
        # Written while no stream is open: the follower must replay them.
        await stack.writer.write("ex-drop", [EventType.NODE_STARTED, EventType.NODE_COMPLETED])
        await stack.writer.write("ex-drop", [EventType.EXECUTION_COMPLETED])
        result = await asyncio.wait_for(follower, 10)
    assert seen == [1, 2, 3, 4, 5, 6]
    assert result.outcome == "COMPLETED"
    assert result.reconnects >= 1


async def test_follow_reports_final_errors_without_retrying(stack: EventsStack) -> None:
    await stack.writer.write("ex-x", [EventType.EXECUTION_QUEUED])
    async with grpc.aio.insecure_channel(stack.address) as channel:
        with pytest.raises(FollowError) as info:
            await follow_execution(channel, KEY_B, "ex-x", out=io.StringIO())
    assert info.value.code == "NOT_FOUND"


async def test_follow_after_the_end_says_so(stack: EventsStack) -> None:
    await stack.writer.write("ex-e", [EventType.EXECUTION_QUEUED, EventType.EXECUTION_CANCELLED])
    async with grpc.aio.insecure_channel(stack.address) as channel:
        result = await follow_execution(channel, KEY_A, "ex-e", after_sequence=2, out=io.StringIO())
    assert result.outcome == "ENDED_BEFORE"


def test_printer_colors_on_a_terminal() -> None:
    out = io.StringIO()
    event = event_pb2.ExecutionEvent(
        execution_id="e", sequence=1, type=event_pb2.EVENT_TYPE_EXECUTION_COMPLETED
    )
    EventPrinter(out, color=True)(event)
    assert "\x1b[1;32m" in out.getvalue()


async def test_watch_command_exit_status(
    stack: EventsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nodedrop.cli.main import main  # noqa: PLC0415

    await stack.writer.write("ex-w", [EventType.EXECUTION_QUEUED, EventType.EXECUTION_COMPLETED])
    monkeypatch.setenv("NODEDROP_EVENTS_ADDR", stack.address)
    monkeypatch.setenv("NODEDROP_API_KEY", KEY_A)
    # The command runs its own event loop, so it runs in a thread here.
    assert await asyncio.to_thread(main, ["watch", "ex-w"]) == 0
    monkeypatch.setenv("NODEDROP_API_KEY", KEY_B)
    assert await asyncio.to_thread(main, ["watch", "ex-w"]) == 2
    monkeypatch.delenv("NODEDROP_API_KEY")
    assert await asyncio.to_thread(main, ["watch", "ex-w"]) == 2
