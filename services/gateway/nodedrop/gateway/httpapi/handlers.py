"""The handlers of the plain routes (``routes.ROUTES``), one per route kind."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
import orjson
from google.protobuf.message import Message

from nodedrop.event.v1 import event_pb2, event_service_pb2
from nodedrop.execution.v1 import execution_pb2, execution_service_pb2
from nodedrop.gateway.httpapi.asgi import Request, Send, respond_json
from nodedrop.gateway.httpapi.calls import Calls
from nodedrop.gateway.httpapi.catalog import Method
from nodedrop.gateway.httpapi.codec import (
    message_from_dict,
    message_to_dict,
    message_to_json,
    parse_json,
)
from nodedrop.gateway.httpapi.errors import ApiError
from nodedrop.gateway.httpapi.query import request_dict
from nodedrop.gateway.httpapi.routes import Body, Kind, Route
from nodedrop.gateway.httpapi.settings import HttpApiSettings
from nodedrop.gateway.httpapi.streaming import relay

__all__ = ["HANDLERS", "Context"]

_TERMINAL = frozenset(
    {
        execution_pb2.EXECUTION_STATUS_COMPLETED,
        execution_pb2.EXECUTION_STATUS_FAILED,
        execution_pb2.EXECUTION_STATUS_CANCELLED,
        execution_pb2.EXECUTION_STATUS_TIMED_OUT,
    }
)
_MAX_SEQUENCE = (1 << 64) - 1
# Between GetExecution reads while the history catches up with a terminal event.
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class Context:
    calls: Calls
    methods: dict[str, Method]
    settings: HttpApiSettings
    openapi: bytes


Handler = Callable[[Route, Request, Send, Context], Awaitable[None]]


def _bad(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, message)


async def _transcode(route: Route, request: Request, send: Send, ctx: Context) -> None:
    method = ctx.methods[route.rpc]
    descriptor = method.descriptor.input_type
    if route.body is Body.MESSAGE:
        body = await request.body()
        data = parse_json(body) if body.strip() else {}
        if not isinstance(data, dict):
            raise _bad(f"request body must be a JSON object ({descriptor.full_name})")
        for name in request.path_params:
            data.pop(descriptor.fields_by_name[name].json_name, None)
        data.update(request.path_params)
    else:
        data = request_dict(descriptor, request.query, request.path_params)
    message = message_from_dict(data, method.request)
    reply = await ctx.calls.unary(
        route.rpc, message, request.metadata(), ctx.settings.call_timeout_s
    )
    await respond_json(send, route.status, message_to_json(reply))


async def _execute(route: Route, request: Request, send: Send, ctx: Context) -> None:
    method = ctx.methods[route.rpc]
    wait_s = _wait(request.query.get("wait"), ctx.settings.max_wait_s)
    data = request_dict(
        method.descriptor.input_type, request.query, request.path_params, ignore=frozenset({"wait"})
    )
    body = await request.body()
    if body.strip():
        parse_json(body)  # refuses bad JSON with its position, before anything runs
        data["trigger_data_json"] = body.decode()
    key = request.headers.get("idempotency-key")
    if key is not None:
        data["idempotency_key"] = key
    message = message_from_dict(data, method.request)
    metadata = request.metadata()
    timeout_s = ctx.settings.call_timeout_s
    reply = await ctx.calls.unary(route.rpc, message, metadata, timeout_s)
    assert isinstance(reply, execution_service_pb2.ExecuteWorkflowResponse)
    if wait_s > 0:
        finished = await _finished(ctx, metadata, reply.execution_id, wait_s)
        if finished is not None:
            await respond_json(send, 200, message_to_json(finished))
            return
    await respond_json(send, route.status, message_to_json(reply))


def _wait(values: list[str] | None, ceiling_s: float) -> float:
    if not values:
        return 0.0
    try:
        wait_s = float(values[-1])
    except ValueError:
        raise _bad(f"wait: expected seconds, got {values[-1]!r}") from None
    if not math.isfinite(wait_s) or not 0 <= wait_s <= ceiling_s:
        raise _bad(f"wait: between 0 and {ceiling_s:g} seconds")
    return wait_s


async def _finished(
    ctx: Context, metadata: tuple[tuple[str, str], ...], execution_id: str, wait_s: float
) -> Message | None:
    """The finished execution with its outputs, or None when it does not end within ``wait_s``."""
    follow = ctx.calls.stream(
        "/nodedrop.event.v1.EventService/StreamExecutionEvents",
        event_service_pb2.StreamExecutionEventsRequest(execution_id=execution_id),
        metadata,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    try:
        async with asyncio.timeout(wait_s):
            async for _ in follow:
                pass  # the stream ends after the execution's terminal event
    except (TimeoutError, grpc.aio.AioRpcError):
        return None
    finally:
        follow.cancel()
    get = execution_service_pb2.GetExecutionRequest(execution_id=execution_id, include_outputs=True)
    while True:
        reply = await ctx.calls.unary(
            "/nodedrop.execution.v1.ExecutionService/GetExecution",
            get,
            metadata,
            ctx.settings.call_timeout_s,
        )
        assert isinstance(reply, execution_service_pb2.GetExecutionResponse)
        if reply.execution.status in _TERMINAL:
            return reply
        if loop.time() + _POLL_S > deadline:
            return None
        await asyncio.sleep(_POLL_S)


async def _events(route: Route, request: Request, send: Send, ctx: Context) -> None:
    method = ctx.methods[route.rpc]
    # A browser's EventSource resumes with Last-Event-ID, the last `id:` it saw.
    resume = request.headers.get("last-event-id")
    data = request_dict(method.descriptor.input_type, request.query, request.path_params)
    if resume is not None:
        if not resume.isdigit() or int(resume) > _MAX_SEQUENCE:
            raise _bad(f"Last-Event-ID: expected an event sequence, got {resume!r}")
        data["after_sequence"] = resume
    message = message_from_dict(data, method.request)
    call = ctx.calls.stream(route.rpc, message, request.metadata())
    await relay(
        call,
        request.receive,
        send,
        "text/event-stream",
        encode=_sse_events,
        end=_sse_end,
        idle=(b": keep-alive\n\n", ctx.settings.sse_keepalive_s),
    )


def _sse_events(message: Message) -> bytes:
    frames: list[bytes] = []
    for event in getattr(message, "events"):  # noqa: B009 - every stream response has it
        name = event_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_").lower()
        data = orjson.dumps(message_to_dict(event))
        frames.append(b"id: %d\nevent: %s\ndata: %s\n\n" % (event.sequence, name.encode(), data))
    return b"".join(frames)


def _sse_end(error: ApiError | None) -> bytes:
    # An explicit last event: EventSource reconnects on any close, so clients
    # close on `end`, and resume (Last-Event-ID) after `error`.
    if error is None:
        return b"event: end\ndata: {}\n\n"
    return b"event: error\ndata: %s\n\n" % error.to_json()


async def _health(route: Route, request: Request, send: Send, ctx: Context) -> None:
    del request  # no key is forwarded: the figures are system-wide, never a tenant's
    method = ctx.methods[route.rpc]
    reply = await ctx.calls.unary(route.rpc, method.request(), (), ctx.settings.call_timeout_s)
    assert isinstance(reply, execution_service_pb2.GetSystemHealthResponse)
    await respond_json(send, 200 if reply.healthy else 503, message_to_json(reply))


async def _openapi(route: Route, request: Request, send: Send, ctx: Context) -> None:
    del route, request
    await respond_json(send, 200, ctx.openapi)


HANDLERS: dict[Kind, Handler] = {
    Kind.TRANSCODE: _transcode,
    Kind.EXECUTE: _execute,
    Kind.EVENTS: _events,
    Kind.HEALTH: _health,
    Kind.OPENAPI: _openapi,
}
