"""Composition root of the gateway: an HTTP/WebSocket server, not gRPC.

It fits the same lifecycle as the gRPC services by implementing
``nodedrop.common.server.Runnable`` itself.

Routes (all GET, the only method a WebSocket server's HTTP parser takes):
    /                 the live view        /static/<file>   its script and styles
    /healthz          readiness            /api/example     the example graph (JSON)
    /api/ticket       a WebSocket ticket for `Authorization: Bearer <api key>`
    /ws               the WebSocket (key or ticket checked before the upgrade)
"""

from __future__ import annotations

import asyncio
import weakref
from http import HTTPStatus

import grpc
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from nodedrop.common.auth import SCOPE_READ, Authenticator, Principal, RemoteAuthenticator
from nodedrop.common.client import open_channel
from nodedrop.common.errors import Unauthenticated, Unavailable
from nodedrop.common.logging import get_logger
from nodedrop.gateway import access, web
from nodedrop.gateway.example import example_graph
from nodedrop.gateway.session import Session
from nodedrop.gateway.settings import GatewaySettings
from nodedrop.gateway.upstream import Upstream, UpstreamError

__all__ = ["GatewayService", "create_service"]

log = get_logger("nodedrop.gateway")


class GatewayService:
    name = "gateway"

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        dev: bool = False,
        authenticator: Authenticator | None = None,
    ) -> None:
        self._settings = settings
        self._dev = dev
        self._server: Server | None = None
        self._serving = False
        self._authenticator = authenticator
        self._upstream: Upstream | None = None
        self._channels: list[grpc.aio.Channel] = []
        self._callers: weakref.WeakKeyDictionary[ServerConnection, tuple[Principal, str]] = (
            weakref.WeakKeyDictionary()
        )
        self._static = web.load_static()
        self.port: int | None = None

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
        addr = s.server.addr
        self._server = await serve(
            self._handle,
            addr.host or None,
            addr.port,
            process_request=self._process_request,
            max_size=s.max_frame_bytes,
            ping_interval=s.ping_interval_s,
            ping_timeout=s.ping_timeout_s,
            write_limit=s.write_limit_bytes,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        self._serving = True
        log.info("serving", service=self.name, addr=f"{addr.host}:{self.port}")

    async def set_not_serving(self) -> None:
        self._serving = False

    async def stop(self, grace_s: float) -> None:
        server, self._server = self._server, None
        if server is not None:
            # 1012 "service restart" tells browsers to reconnect elsewhere.
            server.close(close_connections=True, code=CloseCode.SERVICE_RESTART)
            try:
                await asyncio.wait_for(server.wait_closed(), timeout=grace_s)
            except TimeoutError:
                log.warning("connections still open after the grace period", grace_s=grace_s)
        channels, self._channels = self._channels, []
        for channel in channels:
            await channel.close()
        log.info("stopped", service=self.name)

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = access.path_of(request)
        if path == "/healthz":
            if self._serving:
                return connection.respond(HTTPStatus.OK, "ok\n")
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down\n")
        if not access.origin_allowed(request, self._settings.allowed_origins):
            return web.error_response(connection, HTTPStatus.FORBIDDEN, "origin not allowed")
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if not upgrade:
            return await self._http(connection, request, path)
        if path != "/ws":
            return web.error_response(connection, HTTPStatus.NOT_FOUND, "WebSocket path is /ws")
        credential = access.credential_of(request)
        if credential is None:
            return web.error_response(
                connection,
                HTTPStatus.UNAUTHORIZED,
                "credentials required: Authorization: Bearer <api key>, or ?ticket=",
            )
        refusal = await self._authenticate(connection, credential)
        if refusal is not None:
            return refusal
        return None

    async def _authenticate(self, connection: ServerConnection, credential: str) -> Response | None:
        if self._authenticator is None:
            return web.error_response(
                connection, HTTPStatus.SERVICE_UNAVAILABLE, "the gateway is starting"
            )
        try:
            principal = await self._authenticator.authenticate(credential)
        except Unauthenticated as exc:
            return web.error_response(connection, HTTPStatus.UNAUTHORIZED, exc.message)
        except Unavailable as exc:
            return web.error_response(connection, HTTPStatus.SERVICE_UNAVAILABLE, exc.message)
        if not principal.has_scope(SCOPE_READ):
            return web.error_response(connection, HTTPStatus.FORBIDDEN, "needs the 'read' scope")
        self._callers[connection] = (principal, credential)
        return None

    async def _http(self, connection: ServerConnection, request: Request, path: str) -> Response:
        static = self._static.get(path)
        if static is not None:
            return web.file_response(connection, static)
        if path == "/api/example":
            return web.json_response(connection, HTTPStatus.OK, example_graph())
        if path == "/api/ticket":
            return await self._ticket(connection, request)
        return web.error_response(connection, HTTPStatus.NOT_FOUND, "not found")

    async def _ticket(self, connection: ServerConnection, request: Request) -> Response:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return web.error_response(
                connection, HTTPStatus.UNAUTHORIZED, "Authorization: Bearer <api key> required"
            )
        if self._upstream is None:
            return web.error_response(
                connection, HTTPStatus.SERVICE_UNAVAILABLE, "the gateway is starting"
            )
        try:
            ticket = await self._upstream.issue_ticket(key.strip())
        except UpstreamError as exc:
            status = {
                "UNAUTHENTICATED": HTTPStatus.UNAUTHORIZED,
                "PERMISSION_DENIED": HTTPStatus.FORBIDDEN,
            }.get(exc.code, HTTPStatus.SERVICE_UNAVAILABLE)
            return web.error_response(connection, status, exc.message)
        return web.json_response(connection, HTTPStatus.OK, ticket)

    async def _handle(self, connection: ServerConnection) -> None:
        caller = self._callers.pop(connection, None)
        if caller is None or self._upstream is None:
            await connection.close(CloseCode.INTERNAL_ERROR, "connection was not authenticated")
            return
        principal, credential = caller
        session = Session(
            connection,
            self._upstream,
            principal,
            credential,
            outbox_size=self._settings.outbox_size,
            max_subscriptions=self._settings.max_subscriptions,
            authenticator=self._authenticator,
            recheck_s=self._settings.auth_cache_ttl_s / 2,
        )
        await session.run()


def create_service(settings: GatewaySettings, *, dev: bool = False) -> GatewayService:
    return GatewayService(settings, dev=dev)
