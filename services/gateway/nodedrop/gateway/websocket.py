"""A WebSocket accepted over ASGI, with the surface a Session uses: iterate
the incoming messages, send text, close with a code and reason."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from nodedrop.gateway.http import Receive, Send


class ConnectionClosed(Exception):
    """The peer went away or the socket was closed."""


class WebSocket:
    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._closed = False

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str | bytes]:
        while True:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                self._closed = True
                raise ConnectionClosed(message.get("code", 1005))
            text = message.get("text")
            yield text if text is not None else message.get("bytes") or b""

    async def send(self, text: str) -> None:
        if self._closed:
            raise ConnectionClosed("closed")
        try:
            await self._send({"type": "websocket.send", "text": text})
        except (OSError, RuntimeError) as exc:
            # uvicorn raises ClientDisconnected (an OSError) once the peer is gone.
            self._closed = True
            raise ConnectionClosed(str(exc)) from exc

    async def close(self, code: int, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError, RuntimeError):
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
