"""The HTTP API as one ASGI application: routing, and the one place where an
error becomes a response (never a traceback)."""

from __future__ import annotations

import grpc
import orjson

from nodedrop.common.logging import get_logger
from nodedrop.gateway.httpapi.asgi import (
    ASGIApp,
    ClientGone,
    Message,
    Receive,
    Request,
    Scope,
    Send,
    respond_error,
)
from nodedrop.gateway.httpapi.calls import Calls
from nodedrop.gateway.httpapi.catalog import public_methods
from nodedrop.gateway.httpapi.connect import serve_connect
from nodedrop.gateway.httpapi.errors import ApiError
from nodedrop.gateway.httpapi.handlers import HANDLERS, Context
from nodedrop.gateway.httpapi.openapi import build_document
from nodedrop.gateway.httpapi.routes import ROUTES
from nodedrop.gateway.httpapi.settings import HttpApiSettings

__all__ = ["create_http_api"]

log = get_logger("nodedrop.gateway.httpapi")


class _TrackedSend:
    """Whether the response has started: after that an error can only end it."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


def create_http_api(
    api: grpc.aio.Channel, events: grpc.aio.Channel, *, settings: HttpApiSettings
) -> ASGIApp:
    """``api`` reaches the API's public services, ``events`` the events service;
    both are the caller's to open and close."""
    methods = public_methods()
    by_path = {m.path: m for m in methods}
    context = Context(
        calls=Calls(methods, api, events),
        methods=by_path,
        settings=settings,
        openapi=orjson.dumps(build_document(methods, ROUTES)),
    )
    routes = [(route, route.pattern) for route in ROUTES]

    async def dispatch(request: Request, send: Send) -> None:
        method = by_path.get(request.path)
        if method is not None:
            if request.method != "POST":
                raise ApiError.bad_method(request.method, request.path, ["POST"])
            await serve_connect(method, request, send, context.calls, settings.call_timeout_s)
            return
        allowed: list[str] = []
        for route, pattern in routes:
            match = pattern.match(request.path)
            if match is None:
                continue
            if route.method != request.method:
                allowed.append(route.method)
                continue
            request.path_params = match.groupdict()
            await HANDLERS[route.kind](route, request, send, context)
            return
        if allowed:
            raise ApiError.bad_method(request.method, request.path, allowed)
        raise ApiError.no_route(request.method, request.path)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        request = Request.from_scope(scope, receive, settings.max_body_bytes)
        tracked = _TrackedSend(send)
        try:
            await dispatch(request, tracked)
        except ClientGone:
            return
        except ApiError as error:
            if not tracked.started:
                await respond_error(send, error)
        except Exception:
            log.exception("http request failed", method=request.method, path=request.path)
            if not tracked.started:
                await respond_error(send, ApiError(grpc.StatusCode.INTERNAL, "internal error"))

    return app


async def _lifespan(receive: Receive, send: Send) -> None:
    # Nothing to start: the channels belong to whoever mounts the app.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
