"""Composition root of the gateway: an HTTP/WebSocket server, not gRPC.

It fits the same lifecycle as the gRPC services by implementing
``nodedrop.common.server.Runnable`` itself.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from nodedrop.common.logging import get_logger
from nodedrop.gateway.settings import GatewaySettings

__all__ = ["GatewayService", "create_service"]

log = get_logger("nodedrop.gateway")


class GatewayService:
    name = "gateway"

    def __init__(self, settings: GatewaySettings, *, dev: bool = False) -> None:
        self._settings = settings
        self._dev = dev
        self._server: Server | None = None
        self._serving = False
        self.port: int | None = None

    async def start(self) -> None:
        addr = self._settings.server.addr
        self._server = await serve(
            self._handle,
            addr.host or None,
            addr.port,
            process_request=self._process_request,
            max_size=self._settings.server.grpc_max_message_bytes,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        self._serving = True
        log.info("serving", service=self.name, addr=f"{addr.host}:{self.port}")

    async def set_not_serving(self) -> None:
        self._serving = False

    async def stop(self, grace_s: float) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        # 1012 "service restart" tells browsers to reconnect elsewhere.
        server.close(close_connections=True, code=CloseCode.SERVICE_RESTART)
        try:
            await asyncio.wait_for(server.wait_closed(), timeout=grace_s)
        except TimeoutError:
            log.warning("connections still open after the grace period", grace_s=grace_s)
        log.info("stopped", service=self.name)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            if self._serving:
                return connection.respond(HTTPStatus.OK, "ok\n")
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down\n")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        # The event bridge is not built yet: refuse clearly instead of
        # holding a socket open that never delivers anything.
        await connection.close(CloseCode.TRY_AGAIN_LATER, "event bridge not available yet")


def create_service(settings: GatewaySettings, *, dev: bool = False) -> GatewayService:
    return GatewayService(settings, dev=dev)
