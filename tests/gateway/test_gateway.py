"""The gateway with a real WebSocket client: refusals before the upgrade, the
JSON protocol, resume, frame limit, slow consumer, and the live view's routes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from nodedrop.store import EventType

from .conftest import (
    KEY_A,
    KEY_B,
    ORIGIN,
    TICKET_A,
    TICKET_EXPIRED,
    GatewayStack,
)


async def _next(ws: ClientConnection, kind: str | None = None) -> dict[str, Any]:
    while True:
        # Generous: the shared machine can stall a few seconds under load.
        message: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), 15))
        if kind is None or message["type"] == kind:
            return message


async def _events_until_complete(ws: ClientConnection) -> tuple[list[int], dict[str, Any]]:
    seqs = []
    while True:
        message = await _next(ws)
        if message["type"] == "event":
            seqs.append(message["sequence"])
        elif message["type"] == "complete":
            return seqs, message
        else:
            raise AssertionError(message)


async def _refused(gw: GatewayStack, url: str, headers: dict[str, str]) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, additional_headers=headers):
            pass
    return info.value


async def test_bad_origin_is_refused_before_the_upgrade(gw: GatewayStack) -> None:
    refusal = await _refused(
        gw, gw.url, {"Origin": "http://evil.example", "Authorization": f"Bearer {KEY_A}"}
    )
    assert refusal.response.status_code == 403
    assert b"origin" in refusal.response.body


async def test_missing_credentials_are_refused(gw: GatewayStack) -> None:
    refusal = await _refused(gw, gw.url, {"Origin": ORIGIN})
    assert refusal.response.status_code == 401


async def test_expired_ticket_is_refused(gw: GatewayStack) -> None:
    refusal = await _refused(gw, f"{gw.url}?ticket={TICKET_EXPIRED}", {"Origin": ORIGIN})
    assert refusal.response.status_code == 401
    refusal = await _refused(gw, gw.url, {"Origin": ORIGIN, "Authorization": "Bearer nope"})
    assert refusal.response.status_code == 401


async def test_another_tenants_execution_is_not_found(gw: GatewayStack) -> None:
    await gw.writer.write("ex-a", [EventType.EXECUTION_QUEUED])  # type: ignore[attr-defined]
    async with connect(gw.url, additional_headers={"Authorization": f"Bearer {KEY_B}"}) as ws:
        await ws.send(orjson.dumps({"type": "subscribe", "execution_id": "ex-a"}).decode())
        error = await _next(ws)
        assert error == {
            "type": "error",
            "code": "NOT_FOUND",
            "message": "execution 'ex-a' not found",
            "execution_id": "ex-a",
        }


async def test_subscribe_with_a_ticket_then_resume_after_reconnect(gw: GatewayStack) -> None:
    w: Any = gw.writer
    await w.write("ex-r", [EventType.EXECUTION_QUEUED, EventType.EXECUTION_STARTED])
    await w.write("ex-r", [EventType.NODE_STARTED, EventType.NODE_COMPLETED])
    url = f"{gw.url}?ticket={TICKET_A}"
    async with connect(url, additional_headers={"Origin": ORIGIN}) as ws:
        await ws.send(orjson.dumps({"type": "subscribe", "execution_id": "ex-r"}).decode())
        got = [(await _next(ws, "event"))["sequence"] for _ in range(3)]
        assert got == [1, 2, 3]
    async with connect(url, additional_headers={"Origin": ORIGIN}) as ws:
        await ws.send(
            orjson.dumps(
                {"type": "subscribe", "execution_id": "ex-r", "after_sequence": 3}
            ).decode()
        )
        first = await _next(ws, "event")
        assert first["sequence"] == 4
        assert first["event_type"] == "NODE_COMPLETED"
        assert first["node_id"] == "n1"
        await w.write("ex-r", [EventType.EXECUTION_COMPLETED])
        seqs, complete = await _events_until_complete(ws)
        assert seqs == [5]
        assert complete == {"type": "complete", "execution_id": "ex-r", "last_sequence": 5}


async def test_bad_messages_get_precise_errors_and_ping_gets_pong(gw: GatewayStack) -> None:
    async with connect(gw.url, additional_headers={"Authorization": f"Bearer {KEY_A}"}) as ws:
        for bad, text in [
            ("not json", "message is not JSON"),
            ("[1]", "message must be a JSON object"),
            ('{"type": "subscribe"}', "execution_id must be a non-empty string of at most 128"),
            ('{"type": "subscribe", "execution_id": "x", "after_sequence": -1}', "after_sequence"),
            ('{"type": "dance"}', "unknown message type 'dance'"),
        ]:
            await ws.send(bad)
            error = await _next(ws)
            assert error["type"] == "error"
            assert error["code"] == "INVALID_ARGUMENT"
            assert text in error["message"]
        await ws.send('{"type": "ping", "id": 7}')
        assert await _next(ws) == {"type": "pong", "id": 7}


async def test_oversized_frame_closes_the_connection(gw: GatewayStack) -> None:
    async with connect(gw.url, additional_headers={"Authorization": f"Bearer {KEY_A}"}) as ws:
        await ws.send("x" * 10_000)
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1009


async def test_run_example_list_and_cancel_go_through_the_api(gw: GatewayStack) -> None:
    gw.executions.node_delay_s = 0.3
    async with connect(gw.url, additional_headers={"Authorization": f"Bearer {KEY_A}"}) as ws:
        await ws.send('{"type": "run_example"}')
        started = await _next(ws, "started")
        execution_id = started["execution_id"]
        assert started["status"] == "QUEUED"
        await ws.send('{"type": "list_executions", "limit": 5}')
        listed = await _next(ws, "executions")
        assert [x["id"] for x in listed["items"]] == [execution_id]
        await ws.send(orjson.dumps({"type": "subscribe", "execution_id": execution_id}).decode())
        # Not _next(ws, "event"): an error here (the subscription raced the
        # first commit) must fail at once with its message, not time out.
        first = await _next(ws)
        assert (first["type"], first.get("sequence")) == ("event", 1), first
        await ws.send(orjson.dumps({"type": "cancel", "execution_id": execution_id}).decode())
        # The reply and the stream's end race each other; both must come.
        seen: dict[str, dict[str, Any]] = {}
        while not {"cancelled", "complete"} <= seen.keys():
            message = await _next(ws)
            seen[message["type"]] = message
        assert seen["cancelled"]["status"] == "CANCELLED"
        assert seen["complete"]["execution_id"] == execution_id


async def test_read_only_key_cannot_run(gw: GatewayStack) -> None:
    async with connect(gw.url, additional_headers={"Authorization": f"Bearer {KEY_B}"}) as ws:
        await ws.send('{"type": "run_example"}')
        error = await _next(ws, "error")
        assert error["code"] == "PERMISSION_DENIED"


async def test_http_routes(gw: GatewayStack) -> None:
    async with httpx.AsyncClient(base_url=gw.http, timeout=5) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "nodedrop · console" in page.text
        # Strict CSP: scripts of this origin only, no inline script or style attribute.
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        for module in ("app", "api", "live", "executions", "detail", "graph", "failed", "stats"):
            script = await client.get(f"/static/{module}.js")
            assert script.headers["content-type"].startswith("text/javascript"), module
        example = (await client.get("/api/example")).json()
        assert [n["id"] for n in example["nodes"]] == ["start", "pause", "big", "vip", "std", "all"]
        assert (await client.get("/api/ticket")).status_code == 401
        ticket = await client.get("/api/ticket", headers={"Authorization": f"Bearer {KEY_A}"})
        assert ticket.status_code == 200
        assert ticket.json()["ticket"].startswith("ticket-")
        denied = await client.get("/api/ticket", headers={"Authorization": f"Bearer {KEY_B}"})
        assert denied.status_code == 401
        assert (await client.get("/nope")).status_code == 404
        assert (await client.get("/healthz")).text == "ok\n"


async def _feed_open(ws: ClientConnection, w: Any) -> None:
    """Waits until the upstream feed delivers: ``watching_executions`` is sent
    as the feed opens, a moment before the events service registers it."""
    await _next(ws, "watching_executions")
    for i in range(100):
        await w.write(f"ex-probe-{i}", [EventType.EXECUTION_QUEUED])
        try:
            message = orjson.loads(await asyncio.wait_for(ws.recv(), 0.2))
        except TimeoutError:
            continue
        assert message["execution_id"].startswith("ex-probe-"), message
        return
    raise AssertionError("the feed never delivered")


async def test_watch_executions_sends_the_tenants_status_events(gw: GatewayStack) -> None:
    w: Any = gw.writer
    async with connect(f"{gw.url}?ticket={TICKET_A}", additional_headers={"Origin": ORIGIN}) as ws:
        await ws.send('{"type": "watch_executions"}')
        await _feed_open(ws, w)
        await w.write("ex-b", [EventType.EXECUTION_QUEUED], tenant_id="tenant-b")
        await w.write("ex-w", [EventType.EXECUTION_QUEUED, EventType.EXECUTION_STARTED])
        await w.write("ex-w", [EventType.NODE_STARTED, EventType.NODE_COMPLETED])
        await w.write("ex-w", [EventType.EXECUTION_FAILED])
        got: list[tuple[str, str, str]] = []
        while len(got) < 3:
            message = await _next(ws)
            if message["type"] == "event" and message["execution_id"].startswith("ex-probe-"):
                continue
            got.append((message["type"], message["execution_id"], message["event_type"]))
        # Status changes only (no node events), of this tenant only, in order.
        assert got == [
            ("event", "ex-w", "EXECUTION_QUEUED"),
            ("event", "ex-w", "EXECUTION_STARTED"),
            ("event", "ex-w", "EXECUTION_FAILED"),
        ]
        await ws.send('{"type": "unwatch_executions"}')
        assert await _next(ws, "unwatched_executions") == {"type": "unwatched_executions"}
        await w.write("ex-w2", [EventType.EXECUTION_QUEUED])
        await ws.send('{"type": "ping", "id": 1}')
        # Nothing of the feed after the unwatch: the pong is next.
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 15)) == {"type": "pong", "id": 1}


async def test_watch_executions_reports_the_feeds_end(gw: GatewayStack) -> None:
    async with connect(gw.url, additional_headers={"Authorization": f"Bearer {KEY_A}"}) as ws:
        await ws.send('{"type": "watch_executions"}')
        await _feed_open(ws, gw.writer)
        events: Any = gw.events
        await events.server.stop(0)
        ended = await _next(ws, "unwatched_executions")
        assert ended["code"] == "UNAVAILABLE", ended
