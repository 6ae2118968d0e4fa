"""The gateway's HTTP vocabulary over ASGI: a request read from a scope and a
response sent in one piece; the one place that speaks ASGI's message dicts
for plain HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    """The request body is larger than the route accepts (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


class ClientGone(Exception):
    """The client disconnected before its request body was complete."""


class Request:
    """One HTTP request (or WebSocket handshake): method, path, headers, query, body."""

    def __init__(self, scope: Scope, receive: Receive | None = None) -> None:
        self.scope = scope
        self._receive = receive
        self.method: str = scope.get("method", "GET")
        self.path: str = scope["path"]
        self.raw_query: bytes = scope.get("query_string", b"")
        # Last value wins for repeated headers except where a caller asks for all.
        self.header_list: list[tuple[str, str]] = [
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]
        ]
        self.headers: dict[str, str] = dict(self.header_list)

    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(self.raw_query.decode("latin-1"), keep_blank_values=True)

    def query_value(self, name: str) -> str | None:
        for key, value in self.query():
            if key == name:
                return value
        return None

    async def body(self, limit: int) -> bytes:
        """The whole body (``read_body``)."""
        if self._receive is None:
            return b""
        return await read_body(self._receive, self.headers, limit)


async def read_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    """A request's whole body; raises BodyTooLarge as soon as it passes
    ``limit`` (a declared Content-Length above it is refused before reading),
    and ClientGone when the client leaves before its end: a truncated body
    must not start anything."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


_SAFE_HEADERS = (("cache-control", "no-store"), ("x-content-type-options", "nosniff"))


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        typed = [("content-type", self.content_type)] if self.content_type else []
        headers = [
            *typed,
            ("content-length", str(len(self.body))),
            *_SAFE_HEADERS,
            *self.headers,
        ]
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]

    async def send(self, send: Send, *, websocket: bool = False) -> None:
        # A refused WebSocket handshake answers through the denial response
        # extension: the same response with prefixed message types.
        prefix = "websocket.http." if websocket else "http."
        await send(
            {
                "type": prefix + "response.start",
                "status": self.status,
                "headers": self.raw_headers(),
            }
        )
        await send({"type": prefix + "response.body", "body": self.body})


def json_response(
    status: int, body: object, headers: list[tuple[str, str]] | None = None
) -> Response:
    return Response(status, orjson.dumps(body), "application/json", headers or [])


def error_response(
    status: HTTPStatus, message: str, headers: list[tuple[str, str]] | None = None
) -> Response:
    return json_response(status, {"error": {"code": status.name, "message": message}}, headers)


def text_response(status: int, text: str) -> Response:
    return Response(status, text.encode(), "text/plain; charset=utf-8")
