"""Revoking a key ends its open streams, and an expired ticket ends its
session, within the documented window: 1.5 x NODEDROP_AUTH_CACHE_TTL (the
events service and the gateway trust a check that long, and re-check open
streams on half of it). Real API, events and gateway processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from nodedrop.api.model import Scope
from nodedrop.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from nodedrop.common.auth import bearer_metadata
from nodedrop.event.v1 import event_service_pb2, event_service_pb2_grpc
from nodedrop.execution.v1 import execution_pb2, execution_service_pb2, execution_service_pb2_grpc
from nodedrop.gateway.example import example_workflow
from tests.helpers.services import ServiceProcess

from .perimeter_stack import Key, assert_clean, make_key, planted_env, running

CACHE_TTL_S = 1.0
TICKET_TTL_S = 2
# The documented bound, plus room for a busy machine.
WINDOW_S = 1.5 * CACHE_TTL_S + 1.5


@dataclass
class Stack:
    api: ServiceProcess
    events: ServiceProcess
    gateway: ServiceProcess
    watcher: Key
    admin: Key

    def output(self) -> str:
        return self.api.output() + self.events.output() + self.gateway.output()


@pytest.fixture
async def stack(redis_url: str, redis_prefix: str, pg_dsn: str) -> AsyncIterator[Stack]:
    watcher = await make_key(pg_dsn, "tenant-r", Scope.READ, Scope.EXECUTE)
    admin = await make_key(pg_dsn, "tenant-r", Scope.ADMIN)
    env = planted_env(redis_url, redis_prefix, pg_dsn)
    env["NODEDROP_AUTH_CACHE_TTL"] = f"{CACHE_TTL_S}s"
    env["NODEDROP_TICKET_TTL"] = f"{TICKET_TTL_S}s"
    async with (
        running("api", env) as api,
        running("events", env) as events,
        running("gateway", env, http=True) as gateway,
    ):
        stack = Stack(api, events, gateway, watcher, admin)
        yield stack
        # The fixture's own check: nothing above logged a key.
        assert_clean(stack.output(), [watcher.secret, admin.secret])


async def _start_execution(stack: Stack) -> str:
    # Queued and never run (no worker here): its stream stays open.
    async with grpc.aio.insecure_channel(stack.api.target) as channel:
        reply = await execution_service_pb2_grpc.ExecutionServiceStub(channel).ExecuteWorkflow(
            execution_service_pb2.ExecuteWorkflowRequest(
                workflow=example_workflow(),
                trigger_data_json="[]",
                trigger_kind=execution_pb2.TRIGGER_KIND_MANUAL,
            ),
            metadata=bearer_metadata(stack.watcher.secret),
            timeout=10,
        )
    return str(reply.execution_id)


async def _revoke(stack: Stack, key: Key) -> float:
    async with grpc.aio.insecure_channel(stack.api.target) as channel:
        await auth_service_pb2_grpc.AuthServiceStub(channel).RevokeApiKey(
            auth_service_pb2.RevokeApiKeyRequest(api_key_id=key.key_id),
            metadata=bearer_metadata(stack.admin.secret),
            timeout=5,
        )
    return time.monotonic()


async def _ends_with(call: grpc.aio.UnaryStreamCall) -> grpc.StatusCode:
    try:
        async for _ in call:
            pass
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_revoking_a_key_ends_its_event_streams(stack: Stack) -> None:
    execution_id = await _start_execution(stack)
    meta = bearer_metadata(stack.watcher.secret)
    async with grpc.aio.insecure_channel(stack.events.target) as channel:
        stub = event_service_pb2_grpc.EventServiceStub(channel)
        tenant = stub.StreamEvents(event_service_pb2.StreamEventsRequest(), metadata=meta)
        one = stub.StreamExecutionEvents(
            event_service_pb2.StreamExecutionEventsRequest(execution_id=execution_id),
            metadata=meta,
        )
        ends = [asyncio.create_task(_ends_with(c)) for c in (tenant, one)]
        # Several re-checks pass while the key is valid: the streams stay open.
        done, _ = await asyncio.wait(ends, timeout=3 * CACHE_TTL_S)
        assert not done, [t.result() for t in done]
        revoked_at = await _revoke(stack, stack.watcher)
        codes = await asyncio.wait_for(asyncio.gather(*ends), WINDOW_S + 5)
        took = time.monotonic() - revoked_at
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 2
    assert took <= WINDOW_S, took


async def _ws(stack: Stack, headers: dict[str, str] | None = None, ticket: str = "") -> object:
    url = f"ws://{stack.gateway.target}/ws" + (f"?ticket={ticket}" if ticket else "")
    return connect(url, additional_headers=headers or {})


async def _closed_within(ws: object, timeout_s: float) -> tuple[int | None, float]:
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            async for _ in ws:  # type: ignore[attr-defined]
                pass
    except ConnectionClosed:
        pass
    return ws.close_code, time.monotonic() - started  # type: ignore[attr-defined]


async def test_revoking_a_key_closes_its_websocket(stack: Stack) -> None:
    execution_id = await _start_execution(stack)
    headers = {"Authorization": f"Bearer {stack.watcher.secret}"}
    async with await _ws(stack, headers) as ws:  # type: ignore[attr-defined]
        await ws.send(orjson.dumps({"type": "subscribe", "execution_id": execution_id}).decode())
        await asyncio.sleep(3 * CACHE_TTL_S)
        await ws.send('{"type": "ping", "id": 1}')
        revoked_at = await _revoke(stack, stack.watcher)
        code, _ = await _closed_within(ws, WINDOW_S + 5)
        took = time.monotonic() - revoked_at
    assert code == 1008
    assert took <= WINDOW_S, took


async def test_a_ticket_session_ends_when_its_ticket_expires_unless_renewed(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=f"http://{stack.gateway.target}") as http:

        async def ticket() -> str:
            got = await http.get(
                "/api/ticket", headers={"Authorization": f"Bearer {stack.watcher.secret}"}
            )
            assert got.status_code == 200, got.text
            assert 0 < got.json()["expires_in_s"] <= TICKET_TTL_S
            return str(got.json()["ticket"])

        # Renewed every second: open well past several lifetimes.
        async with await _ws(stack, ticket=await ticket()) as ws:  # type: ignore[attr-defined]
            for _ in range(3 * TICKET_TTL_S):
                await ws.send(orjson.dumps({"type": "renew", "ticket": await ticket()}).decode())
                assert orjson.loads(await ws.recv()) == {"type": "renewed"}
                await asyncio.sleep(1)
            await ws.send('{"type": "ping", "id": 2}')
            assert orjson.loads(await ws.recv()) == {"type": "pong", "id": 2}
            # A ticket cannot renew a session into acting, nor act itself.
            await ws.send('{"type": "run_example"}')
            reply = orjson.loads(await ws.recv())
            assert reply["type"] == "error" and reply["code"] == "PERMISSION_DENIED"
            # Not renewed any more: closed once the last ticket expired.
            opened = time.monotonic()
            code, _ = await _closed_within(ws, TICKET_TTL_S + WINDOW_S + 5)
            assert code == 1008
            assert time.monotonic() - opened <= TICKET_TTL_S + WINDOW_S
