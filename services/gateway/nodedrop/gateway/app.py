"""Composition root of the gateway: one ASGI application on an HTTP server
(``server.py``), not gRPC.

It fits the same lifecycle as the gRPC services by implementing
``nodedrop.common.server.Runnable`` itself.

Routes (``_router``):
    GET /              the console          GET /static/<file>  its modules and styles
    GET /healthz       readiness            GET /api/example    the example graph (JSON)
    GET /api/ticket    a WebSocket ticket for `Authorization: Bearer <api key>`
    /ws                the WebSocket (key or ticket checked before the upgrade)
    /webhook/...       webhooks, handed to the API (``webhook.py``; no Origin check:
    /webhook-test/...  their callers are servers, and each has its own authentication)
    /api/..., /nodedrop.<service>/<method>
                       the HTTP/JSON API (``nodedrop.gateway.httpapi``, mounted at start)
    <prefix>...        each sub-app given in ``sub_apps`` (mounted ASGI apps)
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

import grpc

from nodedrop.common.auth import SCOPE_READ, Authenticator, Principal, RemoteAuthenticator
from nodedrop.common.client import open_channel
from nodedrop.common.errors import Unauthenticated, Unavailable
from nodedrop.common.logging import get_logger
from nodedrop.gateway import access, web
from nodedrop.gateway.example import example_graph
from nodedrop.gateway.http import (
    ASGIApp,
    ClientGone,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    error_response,
    json_response,
    text_response,
)
from nodedrop.gateway.httpapi import create_http_api
from nodedrop.gateway.router import Handler, Router
from nodedrop.gateway.server import HttpServer
from nodedrop.gateway.session import Session
from nodedrop.gateway.settings import GatewaySettings
from nodedrop.gateway.upstream import Upstream, UpstreamError
from nodedrop.gateway.webhook import METHODS, PRODUCTION_PREFIX, TEST_PREFIX, WebhookForwarder
from nodedrop.gateway.websocket import WebSocket

__all__ = ["GatewayService", "create_service"]

log = get_logger("nodedrop.gateway")

_TICKET_ERRORS = {
    "UNAUTHENTICATED": HTTPStatus.UNAUTHORIZED,
    "PERMISSION_DENIED": HTTPStatus.FORBIDDEN,
}


HTTP_API_PREFIXES = ("/api/", "/nodedrop.")


class GatewayService:
    name = "gateway"

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        dev: bool = False,
        authenticator: Authenticator | None = None,
        sub_apps: Mapping[str, ASGIApp] | None = None,
    ) -> None:
        self._settings = settings
        self._dev = dev
        self._serving = False
        self._authenticator = authenticator
        self._upstream: Upstream | None = None
        self._channels: list[grpc.aio.Channel] = []
        self._static = web.load_static()
        self._webhooks: WebhookForwarder | None = None
        self._router = self._routes(sub_apps or {})
        self._server: HttpServer | None = None
        self.port: int | None = None

    def _routes(self, sub_apps: Mapping[str, ASGIApp]) -> Router:
        router = Router()
        for path, static in self._static.items():
            router.route(path, _constant(static))
        router.route("/healthz", self._healthz)
        router.route("/api/example", _constant(json_response(200, example_graph())))
        router.route("/api/ticket", self._ticket)
        router.prefix(PRODUCTION_PREFIX, self._webhook, METHODS)
        router.prefix(TEST_PREFIX, self._webhook_test, METHODS)
        for prefix, app in sub_apps.items():
            router.mount(prefix, app)
        return router

    async def start(self) -> None:
        s = self._settings
        size, tls = s.server.grpc_max_message_bytes, s.security.tls
        api = open_channel(s.addresses.api, max_message_bytes=size, tls=tls)
        events = open_channel(s.addresses.events, max_message_bytes=size, tls=tls)
        self._channels = [api, events]
        if self._authenticator is None:
            self._authenticator = RemoteAuthenticator(
                api, ttl_s=s.auth_cache_ttl_s, metadata=s.security.metadata()
            )
        self._upstream = Upstream(events, api)
        self._webhooks = WebhookForwarder(
            api,
            s.security.metadata(),
            max_body_bytes=s.webhook_max_body_bytes,
            max_message_bytes=size,
        )
        # The HTTP/JSON API: its plain routes under /api/ (the live view's
        # /api/ticket and /api/example stay exact routes of the gateway) and
        # the Connect paths of every public service.
        http_api = create_http_api(api, events, settings=s.http_api)
        for prefix in HTTP_API_PREFIXES:
            self._router.mount(prefix, http_api)
        addr = s.server.addr
        self._server = HttpServer(
            self,
            host=addr.host,
            port=addr.port,
            max_frame_bytes=s.max_frame_bytes,
            ping_interval_s=s.ping_interval_s,
            ping_timeout_s=s.ping_timeout_s,
            write_limit_bytes=s.write_limit_bytes,
        )
        await self._server.start()
        self.port = self._server.port
        self._serving = True
        log.info("serving", service=self.name, addr=f"{addr.host}:{self.port}")

    async def set_not_serving(self) -> None:
        self._serving = False

    async def stop(self, grace_s: float) -> None:
        server, self._server = self._server, None
        if server is not None:
            # WebSockets are closed with 1012 "service restart": browsers reconnect elsewhere.
            await server.stop(grace_s)
        if self._webhooks is not None:
            self._webhooks.close()
        channels, self._channels = self._channels, []
        for channel in channels:
            await channel.close()
        log.info("stopped", service=self.name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI application."""
        mounted = self._router.mounted(scope["path"])
        if mounted is not None:
            await mounted(scope, receive, send)
            return
        if scope["type"] == "http":
            request = Request(scope, receive)
            try:
                response = await self._http(request)
            except ClientGone:
                return  # nobody to answer, and nothing was started
            await response.send(send)
        elif scope["type"] == "websocket":
            await self._websocket(Request(scope), receive, send)

    async def _http(self, request: Request) -> Response:
        browser = not request.path.startswith((PRODUCTION_PREFIX, TEST_PREFIX, "/healthz"))
        if browser and not access.origin_allowed(request, self._settings.allowed_origins):
            return error_response(HTTPStatus.FORBIDDEN, "origin not allowed")
        return await self._router.dispatch(request)

    async def _healthz(self, _request: Request) -> Response:
        if self._serving:
            return text_response(200, "ok\n")
        return text_response(503, "shutting down\n")

    async def _webhook(self, request: Request) -> Response:
        if self._webhooks is None:
            return error_response(HTTPStatus.SERVICE_UNAVAILABLE, "the gateway is starting")
        return await self._webhooks.production(request)

    async def _webhook_test(self, request: Request) -> Response:
        if self._webhooks is None:
            return error_response(HTTPStatus.SERVICE_UNAVAILABLE, "the gateway is starting")
        return await self._webhooks.test(request)

    async def _ticket(self, request: Request) -> Response:
        key = access.bearer(request)
        if key is None:
            return error_response(
                HTTPStatus.UNAUTHORIZED, "Authorization: Bearer <api key> required"
            )
        if self._upstream is None:
            return error_response(HTTPStatus.SERVICE_UNAVAILABLE, "the gateway is starting")
        try:
            ticket = await self._upstream.issue_ticket(key)
        except UpstreamError as exc:
            status = _TICKET_ERRORS.get(exc.code, HTTPStatus.SERVICE_UNAVAILABLE)
            return error_response(status, exc.message)
        return json_response(200, ticket)

    async def _websocket(self, request: Request, receive: Receive, send: Send) -> None:
        await receive()  # websocket.connect
        caller = await self._admit(request)
        if isinstance(caller, Response):
            await caller.send(send, websocket=True)
            return
        if self._upstream is None:
            await error_response(HTTPStatus.SERVICE_UNAVAILABLE, "the gateway is starting").send(
                send, websocket=True
            )
            return
        principal, credential = caller
        await send({"type": "websocket.accept"})
        session = Session(
            WebSocket(receive, send),
            self._upstream,
            principal,
            credential,
            outbox_size=self._settings.outbox_size,
            max_subscriptions=self._settings.max_subscriptions,
            authenticator=self._authenticator,
            recheck_s=self._settings.auth_cache_ttl_s / 2,
        )
        await session.run()

    async def _admit(self, request: Request) -> tuple[Principal, str] | Response:
        """The caller of a WebSocket handshake, or the response refusing it."""
        if request.path != "/ws":
            return error_response(HTTPStatus.NOT_FOUND, "WebSocket path is /ws")
        if not access.origin_allowed(request, self._settings.allowed_origins):
            return error_response(HTTPStatus.FORBIDDEN, "origin not allowed")
        credential = access.credential_of(request)
        if credential is None:
            return error_response(
                HTTPStatus.UNAUTHORIZED,
                "credentials required: Authorization: Bearer <api key>, or ?ticket=",
            )
        if self._authenticator is None:
            return error_response(HTTPStatus.SERVICE_UNAVAILABLE, "the gateway is starting")
        try:
            principal = await self._authenticator.authenticate(credential)
        except Unauthenticated as exc:
            return error_response(HTTPStatus.UNAUTHORIZED, exc.message)
        except Unavailable as exc:
            return error_response(HTTPStatus.SERVICE_UNAVAILABLE, exc.message)
        if not principal.has_scope(SCOPE_READ):
            return error_response(HTTPStatus.FORBIDDEN, "needs the 'read' scope")
        return principal, credential


def _constant(response: Response) -> Handler:
    async def handler(_request: Request) -> Response:
        return response

    return handler


def create_service(settings: GatewaySettings, *, dev: bool = False) -> GatewayService:
    """The gateway as ``nodedrop gateway`` and ``nodedrop dev`` run it.

    Another ASGI application joins the edge here, one entry per path prefix:
    ``GatewayService(settings, dev=dev, sub_apps={"/api/v1/": app})``. A
    mounted app gets every HTTP and WebSocket call under its prefix as it
    came (no Origin check, no lifespan events: uvicorn runs with
    ``lifespan="off"``, the service's start/stop being the lifecycle).
    """
    return GatewayService(settings, dev=dev)
