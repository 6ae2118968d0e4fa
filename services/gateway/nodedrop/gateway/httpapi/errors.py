"""gRPC status -> Connect error JSON (the HTTP status is
``nodedrop.common.http_status``'s, the Connect protocol's mapping); the body is a Connect
error, ``{"code", "message", "details"}``, whose details carry the status
details the API sent in ``grpc-status-details-bin`` (for INVALID_ARGUMENT a
``google.rpc.BadRequest`` with one field violation per problem), each as
``{"type", "value" (base64 of the message), "debug" (the message as JSON)}``.
"""

from __future__ import annotations

import base64
from typing import Any

import grpc
import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from nodedrop.common.errors import STATUS_DETAILS_KEY
from nodedrop.common.http_status import HTTP_STATUS

__all__ = ["CONNECT_CODES", "ApiError"]

# The well-known detail types must be in the default pool for `debug` to decode.
_DETAIL_TYPES = error_details_pb2.DESCRIPTOR

# gRPC status -> Connect code; the HTTP status is nodedrop.common.http_status's.
# Connect's words are the codes' names in lower case, but for its American "canceled".
CONNECT_CODES: dict[grpc.StatusCode, str] = {
    code: "canceled" if code is grpc.StatusCode.CANCELLED else code.name.lower()
    for code in HTTP_STATUS
}

# Codes whose upstream message may describe internals: the caller gets a generic one.
_OPAQUE = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS})


class ApiError(Exception):
    """An error answered to the HTTP client; ``http_status`` overrides the table
    where HTTP has a more precise status than the code (413, 404/405 routing, 415)."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        details: tuple[dict[str, Any], ...] = (),
        http_status: int | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.http_status = HTTP_STATUS[code] if http_status is None else http_status
        self.headers = headers

    @classmethod
    def too_large(cls, limit: int) -> ApiError:
        return cls(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"request body exceeds {limit} bytes",
            http_status=413,
        )

    @classmethod
    def no_route(cls, method: str, path: str) -> ApiError:
        # Connect answers an unknown procedure with 404 and `unimplemented`.
        return cls(grpc.StatusCode.UNIMPLEMENTED, f"no route {method} {path}", http_status=404)

    @classmethod
    def bad_method(cls, method: str, path: str, allowed: list[str]) -> ApiError:
        return cls(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{path} does not answer {method}; allowed: {', '.join(allowed)}",
            http_status=405,
            headers=(("allow", ", ".join(allowed)),),
        )

    @classmethod
    def from_rpc(cls, exc: grpc.aio.AioRpcError) -> ApiError:
        code = exc.code()
        if code not in CONNECT_CODES or code in _OPAQUE:
            return cls(grpc.StatusCode.INTERNAL, "upstream service failed")
        details = _details(exc.trailing_metadata() or ())
        return cls(code, exc.details() or code.name.lower(), details=details)

    def connect_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": CONNECT_CODES[self.code], "message": self.message}
        if self.details:
            body["details"] = list(self.details)
        return body

    def to_json(self) -> bytes:
        return orjson.dumps(self.connect_json())


def _details(trailing_metadata: Any) -> tuple[dict[str, Any], ...]:
    details: list[dict[str, Any]] = []
    for key, value in trailing_metadata:
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:  # a malformed trailer only loses the details
            continue
        for any_detail in status.details:
            detail: dict[str, Any] = {
                "type": any_detail.type_url.rpartition("/")[2],
                "value": base64.b64encode(any_detail.value).decode().rstrip("="),
            }
            try:
                debug = json_format.MessageToDict(any_detail)
            except (TypeError, KeyError, json_format.Error):
                pass  # a type this edge does not know: the value still carries it
            else:
                debug.pop("@type", None)
                detail["debug"] = debug
            details.append(detail)
    return tuple(details)
