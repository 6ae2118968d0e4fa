"""Query-string and path parameters onto a request message's top-level fields,
as gRPC-JSON transcoding maps them (repeated fields repeat the parameter)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from nodedrop.gateway.httpapi.errors import ApiError

__all__ = ["query_fields", "request_dict"]

# Message types a query parameter can carry as their JSON string form.
_STRING_MESSAGES = frozenset({"google.protobuf.Timestamp", "google.protobuf.Duration"})


def query_fields(descriptor: Descriptor, exclude: frozenset[str]) -> list[FieldDescriptor]:
    """The fields a query parameter can set: scalars, enums and their repeated forms."""
    return [
        f
        for f in descriptor.fields
        if f.name not in exclude
        and not (f.message_type is not None and f.message_type.GetOptions().map_entry)
        and (f.message_type is None or f.message_type.full_name in _STRING_MESSAGES)
    ]


def request_dict(
    descriptor: Descriptor,
    query: dict[str, list[str]],
    path_params: dict[str, str],
    ignore: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    fields = {f.name: f for f in query_fields(descriptor, frozenset(path_params))}
    fields.update({f.json_name: f for f in fields.values()})
    data: dict[str, Any] = dict(path_params)
    for name, values in query.items():
        if name in ignore:
            continue
        field = fields.get(name)
        if field is None:
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown query parameter {name!r}; known: {', '.join(sorted(_names(fields)))}",
            )
        converted = [_scalar(field, v) for v in values]
        data[field.name] = converted if _repeated(field) else converted[-1]
    return data


def _names(fields: dict[str, FieldDescriptor]) -> set[str]:
    return {f.name for f in fields.values()}


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _scalar(field: FieldDescriptor, value: str) -> Any:
    if field.type == FieldDescriptor.TYPE_BOOL:
        lowered = value.lower()
        if lowered in ("true", "1", ""):
            return True
        if lowered in ("false", "0"):
            return False
        raise ApiError(
            grpc.StatusCode.INVALID_ARGUMENT, f"{field.name}: expected true or false, got {value!r}"
        )
    if field.enum_type is not None:
        return _enum_name(field, value)
    return value


def _enum_name(field: FieldDescriptor, value: str) -> str:
    """Full names (EXECUTION_STATUS_COMPLETED) or their last part (completed)."""
    enum = field.enum_type
    assert enum is not None
    names = [v.name for v in enum.values]
    upper = value.upper()
    if upper in names:
        return upper
    matches = [n for n in names if n.endswith("_" + upper) and not n.endswith("_UNSPECIFIED")]
    if len(matches) == 1:
        return matches[0]
    short = sorted(n.removeprefix(_common_prefix(names)).lower() for n in names[1:])
    raise ApiError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{field.name}: unknown value {value!r}; one of {', '.join(short)}",
    )


def _common_prefix(names: list[str]) -> str:
    first = names[0]
    return first[: first.rfind("_") + 1] if first.endswith("_UNSPECIFIED") else ""
