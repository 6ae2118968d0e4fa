"""The few ASGI types and request/response helpers the HTTP API needs (no framework)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import grpc

from nodedrop.gateway.http import (
    ASGIApp,
    BodyTooLarge,
    ClientGone,
    Message,
    Receive,
    Scope,
    Send,
    read_body,
)
from nodedrop.gateway.httpapi.errors import ApiError

# The gateway's ASGI vocabulary (nodedrop.gateway.http), for this package's modules.
__all__ = [
    "ASGIApp",
    "ClientGone",
    "Message",
    "Receive",
    "Request",
    "Scope",
    "Send",
    "respond",
    "respond_error",
    "respond_json",
]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    receive: Receive
    max_body_bytes: int
    path_params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_scope(cls, scope: Scope, receive: Receive, max_body_bytes: int) -> Request:
        raw_query = scope.get("query_string", b"").decode("latin-1")
        headers: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        # Mounted under a prefix, the routes are relative to it (ASGI's root_path).
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        return cls(
            method=scope["method"],
            path=path,
            query=parse_qs(raw_query, keep_blank_values=True),
            headers=headers,
            receive=receive,
            max_body_bytes=max_body_bytes,
        )

    def media_type(self) -> str:
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    async def body(self) -> bytes:
        """The whole body; 413 as soon as it is known to exceed the limit."""
        try:
            return await read_body(self.receive, self.headers, self.max_body_bytes)
        except BodyTooLarge:
            raise ApiError.too_large(self.max_body_bytes) from None

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The caller's credential, forwarded as is: the API decides, never the edge."""
        value = self.headers.get("authorization")
        if value is None or not value.isascii() or not value.isprintable():
            return ()
        return (("authorization", value),)

    def timeout(self, ceiling_s: float) -> float:
        """Connect-Timeout-Ms when the client gives a shorter one."""
        raw = self.headers.get("connect-timeout-ms")
        if raw is None:
            return ceiling_s
        if not raw.isdigit() or len(raw) > 10:
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT, "Connect-Timeout-Ms must be a positive integer"
            )
        return min(ceiling_s, max(int(raw), 1) / 1000)


async def respond(
    send: Send, status: int, body: bytes, content_type: str, headers: Iterable[tuple[str, str]] = ()
) -> None:
    raw_headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def respond_json(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()
) -> None:
    await respond(send, status, body, "application/json", headers)


async def respond_error(send: Send, error: ApiError) -> None:
    await respond_json(send, error.http_status, error.to_json(), error.headers)
