"""Opaque page tokens: base64url of a small JSON array, checked on the way in."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

import orjson

from nodedrop.common.errors import InvalidArgument

__all__ = ["decode", "decode_time_cursor", "encode", "encode_time_cursor"]


def encode(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode(token: str, field: str, arity: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        values = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise InvalidArgument.field(field, "not a page token returned by this API") from None
    if not isinstance(values, list) or len(values) != arity:
        raise InvalidArgument.field(field, "not a page token returned by this API")
    return values


def encode_time_cursor(time: datetime, ident: str) -> str:
    return encode([time.isoformat(), ident])


def decode_time_cursor(token: str, field: str) -> tuple[datetime, str]:
    when, ident = decode(token, field, 2)
    try:
        return datetime.fromisoformat(str(when)), str(ident)
    except ValueError:
        raise InvalidArgument.field(field, "not a page token returned by this API") from None
