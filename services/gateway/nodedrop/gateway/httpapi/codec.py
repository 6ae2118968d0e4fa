"""JSON <-> protobuf with the proto3 JSON mapping, and precise 400s for bad input."""

from __future__ import annotations

from typing import Any

import grpc
import orjson
from google.protobuf import json_format
from google.protobuf.message import Message

from nodedrop.gateway.httpapi.errors import ApiError

__all__ = ["message_from_json", "message_to_dict", "message_to_json", "parse_json"]


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"request body is not valid JSON: {exc.msg} "
            f"at line {exc.lineno} column {exc.colno} (byte {exc.pos})",
        ) from None


def message_from_dict(data: Any, cls: type[Message]) -> Message:
    if not isinstance(data, dict):
        raise ApiError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"request body must be a JSON object ({cls.DESCRIPTOR.full_name})",
        )
    try:
        return json_format.ParseDict(data, cls())
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, str(exc) or "malformed request") from None


def message_from_json(body: bytes, cls: type[Message]) -> Message:
    # An empty body is the empty message, as for a Connect GET.
    return message_from_dict(parse_json(body) if body.strip() else {}, cls)


def message_to_dict(message: Message) -> dict[str, Any]:
    # Fields at their default are printed too: a client reads `status` or
    # `healthy` without knowing proto3 omits zero values.
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def message_to_json(message: Message) -> bytes:
    return orjson.dumps(message_to_dict(message))
