"""The gateway's HTTP server: uvicorn (httptools parser, websockets sans-I/O
protocol) run inside the service's own event loop, chosen over granian by
measurement (docs/benchmarks.md "HTTP server").

uvicorn's ``serve()`` would install its own signal handlers; the service's
lifecycle belongs to ``nodedrop.common.server``, so this drives uvicorn's
start-up, tick and shutdown steps itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from nodedrop.gateway.http import ASGIApp


def _websocket_protocol(write_limit: int) -> type[WebSocketsSansIOProtocol]:
    class Protocol(WebSocketsSansIOProtocol):
        # A send waits once this many bytes are buffered for the client, so a
        # client that stops reading fills the session's bounded outbox instead
        # of the process's memory.
        def connection_made(self, transport: Any) -> None:
            transport.set_write_buffer_limits(high=write_limit)
            super().connection_made(transport)

    return Protocol


class HttpServer:
    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str,
        port: int,
        max_frame_bytes: int,
        ping_interval_s: float,
        ping_timeout_s: float,
        write_limit_bytes: int,
    ) -> None:
        config = uvicorn.Config(
            app,
            http="httptools",
            ws=_websocket_protocol(write_limit_bytes),
            ws_max_size=max_frame_bytes,
            ws_ping_interval=ping_interval_s,
            ws_ping_timeout=ping_timeout_s,
            ws_per_message_deflate=False,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            # The gateway reads no client address: X-Forwarded-* need no rewriting.
            proxy_headers=False,
        )
        config.load()
        self._server = uvicorn.Server(config)
        self._server.lifespan = config.lifespan_class(config)
        self._host, self._port = host, port
        self._ticker: asyncio.Task[None] | None = None
        self.port: int | None = None

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host or "0.0.0.0", self._port))
        sock.setblocking(False)
        await self._server.startup(sockets=[sock])
        self.port = int(sock.getsockname()[1])
        self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        # uvicorn refreshes its Date header from its main loop's tick.
        counter = 0
        while True:
            await self._server.on_tick(counter)
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.1)

    async def stop(self, grace_s: float) -> None:
        """Stops accepting, closes WebSockets with 1012 and waits up to
        ``grace_s`` for requests in flight, then cancels what remains."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self._server.config.timeout_graceful_shutdown = max(math.ceil(grace_s), 0)
        await self._server.shutdown()
