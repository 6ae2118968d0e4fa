"""The Connect protocol over JSON for every exposed RPC.

Unary: ``POST /<package.Service>/<Method>`` with ``application/json``; the
reply is the response message as JSON, an error is a Connect error JSON with
the HTTP status of ``nodedrop.common.http_status``. Server streaming: the request and
each response are Connect envelopes (one flag byte, a 4-byte big-endian
length, the JSON) in ``application/connect+json``; the last envelope has flag
0x02 and holds ``{}`` or ``{"error": {...}}``.
"""

from __future__ import annotations

import struct

import grpc
import orjson
from google.protobuf.message import Message

from nodedrop.gateway.httpapi.asgi import Request, Send, respond_json
from nodedrop.gateway.httpapi.calls import Calls
from nodedrop.gateway.httpapi.catalog import Method
from nodedrop.gateway.httpapi.codec import message_from_json, message_to_json
from nodedrop.gateway.httpapi.errors import ApiError
from nodedrop.gateway.httpapi.streaming import relay

__all__ = ["STREAM_MEDIA_TYPE", "serve_connect"]

UNARY_MEDIA_TYPE = "application/json"
STREAM_MEDIA_TYPE = "application/connect+json"
_HEADER = struct.Struct(">BI")
_END_STREAM = 0x02
_COMPRESSED = 0x01


async def serve_connect(
    method: Method, request: Request, send: Send, calls: Calls, call_timeout_s: float
) -> None:
    expected = STREAM_MEDIA_TYPE if method.server_streaming else UNARY_MEDIA_TYPE
    if request.media_type() != expected:
        raise ApiError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{method.path} takes Content-Type {expected}",
            http_status=415,
        )
    body = await request.body()
    if not method.server_streaming:
        message = message_from_json(body, method.request)
        timeout_s = request.timeout(call_timeout_s)
        reply = await calls.unary(method.path, message, request.metadata(), timeout_s)
        await respond_json(send, 200, message_to_json(reply))
        return
    message = message_from_json(_unenvelope(body), method.request)
    call = calls.stream(method.path, message, request.metadata())
    await relay(
        call, request.receive, send, STREAM_MEDIA_TYPE, encode=_envelope_message, end=_end_stream
    )


def _unenvelope(body: bytes) -> bytes:
    if len(body) < _HEADER.size:
        raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, "streaming request must be one envelope")
    flags, length = _HEADER.unpack_from(body)
    if flags & _COMPRESSED:
        raise ApiError(grpc.StatusCode.UNIMPLEMENTED, "compressed envelopes are not supported")
    if flags != 0 or length != len(body) - _HEADER.size:
        raise ApiError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "streaming request must be exactly one uncompressed envelope",
        )
    return body[_HEADER.size :]


def _envelope(flags: int, payload: bytes) -> bytes:
    return _HEADER.pack(flags, len(payload)) + payload


def _envelope_message(message: Message) -> bytes:
    return _envelope(0, message_to_json(message))


def _end_stream(error: ApiError | None) -> bytes:
    body = {} if error is None else {"error": error.connect_json()}
    return _envelope(_END_STREAM, orjson.dumps(body))
