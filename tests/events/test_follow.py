"""Following one execution's events (``AsyncClient.events``, behind `nodedrop watch`
and `run --follow`) against the real events service, and the terminal printer."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime

import pytest

from nodedrop.cli.follow import EventPrinter
from nodedrop.client import AsyncClient, Event, InvalidArgument, NotFound, Unavailable
from nodedrop.store import EventType

from .conftest import KEY_A, KEY_B, EventsStack, restart_server


def _client(stack: EventsStack, key: str = KEY_A) -> AsyncClient:
    # Only the events service is dialled here; the API address is never used.
    return AsyncClient("127.0.0.1:1", api_key=key, events_address=stack.address)


async def test_events_print_each_one_and_end_at_the_outcome(stack: EventsStack) -> None:
    await stack.writer.write(
        "ex-f",
        [EventType.EXECUTION_QUEUED, EventType.NODE_STARTED, EventType.NODE_COMPLETED],
        data_json='{"true": [{"a": 1}, {"a": 2}], "false": []}',
    )
    await stack.writer.write("ex-f", [EventType.NODE_FAILED, EventType.EXECUTION_FAILED])
    out = io.StringIO()
    printer = EventPrinter(out)
    async with _client(stack) as client:
        events = [e async for e in client.events("ex-f")]
    for event in events:
        printer(event)
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    assert events[-1].type == "execution_failed" and events[-1].terminal
    lines = out.getvalue().splitlines()
    assert len(lines) == 5
    assert "node_completed" in lines[2]
    # Per output port, as an if node sends them.
    assert "true: 2 items, false: 0 items" in lines[2]
    assert "error: [E] boom" in lines[3]
    assert "\x1b[" not in out.getvalue()


async def test_events_resume_after_the_server_drops_every_stream(stack: EventsStack) -> None:
    await stack.writer.write("ex-drop", [EventType.EXECUTION_QUEUED])
    seen: list[int] = []
    dropped = asyncio.Event()

    async def follow(client: AsyncClient) -> None:
        async for event in client.events("ex-drop"):
            seen.append(event.sequence)
            if event.sequence == 3:
                dropped.set()

    async with _client(stack) as client:
        follower = asyncio.create_task(follow(client))
        await stack.writer.write("ex-drop", [EventType.NODE_STARTED, EventType.NODE_COMPLETED])
        await asyncio.wait_for(dropped.wait(), 5)
        await restart_server(stack)
        # Written while no stream is open: the client must replay them.
        await stack.writer.write("ex-drop", [EventType.NODE_STARTED, EventType.NODE_COMPLETED])
        await stack.writer.write("ex-drop", [EventType.EXECUTION_COMPLETED])
        await asyncio.wait_for(follower, 10)
    assert seen == [1, 2, 3, 4, 5, 6]


async def test_final_errors_are_raised_without_retrying(stack: EventsStack) -> None:
    await stack.writer.write("ex-x", [EventType.EXECUTION_QUEUED])
    async with _client(stack, KEY_B) as client:
        with pytest.raises(NotFound):
            await asyncio.wait_for(anext(client.events("ex-x")), 5)


async def test_a_malformed_id_is_invalid_argument_at_once(stack: EventsStack) -> None:
    async with _client(stack) as client:
        for bad in ("not an id!", "{p01}", "x" * 129):
            with pytest.raises(InvalidArgument) as info:
                await asyncio.wait_for(anext(client.events(bad)), 5)
            assert [v.field for v in info.value.violations] == ["execution_id"]


async def test_events_after_the_end_end_at_once(stack: EventsStack) -> None:
    await stack.writer.write("ex-e", [EventType.EXECUTION_QUEUED, EventType.EXECUTION_CANCELLED])
    async with _client(stack) as client:
        events = [e async for e in client.events("ex-e", after_sequence=2)]
    assert events == []


def test_printer_colors_on_a_terminal() -> None:
    out = io.StringIO()
    event = Event("e", 1, "execution_completed", datetime.now(UTC), None, None, 1, None, None)
    EventPrinter(out, color=True)(event)
    assert "\x1b[1;32m" in out.getvalue()


async def test_watch_command_exit_status(
    stack: EventsStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nodedrop.cli.main import main  # noqa: PLC0415

    await stack.writer.write("ex-w", [EventType.EXECUTION_QUEUED, EventType.EXECUTION_COMPLETED])
    monkeypatch.setenv("NODEDROP_EVENTS_ADDR", stack.address)
    monkeypatch.setenv("NODEDROP_API_KEY", KEY_A)
    # The command runs its own event loop, so it runs in a thread here.
    assert await asyncio.to_thread(main, ["watch", "ex-w"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("NODEDROP_API_KEY", KEY_B)
    assert await asyncio.to_thread(main, ["watch", "ex-w"]) == 2
    # Printed once, with its code.
    err = capsys.readouterr().err
    assert err.count("NOT_FOUND") == 1 and err.startswith("nodedrop watch: NOT_FOUND: ")
    # The caller's mistake, answered as such (not UNAVAILABLE after reconnects).
    assert await asyncio.to_thread(main, ["watch", "bad id!"]) == 2
    assert "INVALID_ARGUMENT" in capsys.readouterr().err
    monkeypatch.delenv("NODEDROP_API_KEY")
    assert await asyncio.to_thread(main, ["watch", "ex-w"]) == 2


async def test_no_events_service_ends_in_unavailable() -> None:
    from tests.helpers.ports import free_port  # noqa: PLC0415

    nobody = f"127.0.0.1:{free_port()}"
    async with AsyncClient(
        nobody, api_key=KEY_A, events_address=nobody, stream_reconnects=1
    ) as client:
        with pytest.raises(Unavailable) as info:
            await anext(client.events("ex-1"))
    assert "gave up after 1 reconnects" in info.value.message
