"""An API message as JSON for scripts, in the CLI's one spelling of enums.

Every field is there, with the proto's field names; enum values are the
words every other command prints (``cancelled``, ``webhook``), not the
proto's constant names (``EXECUTION_STATUS_CANCELLED``) that the canonical
proto JSON mapping gives.
"""

from __future__ import annotations

import re
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

__all__ = ["message_json"]


def message_json(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = MessageToDict(message, preserving_proto_field_name=True)
    # upb's descriptor type is not the one the stubs name; the API is the same.
    _spell(cast(Descriptor, message.DESCRIPTOR), out)
    return out


def _spell(descriptor: Descriptor, value: dict[str, Any]) -> None:
    for field in descriptor.fields:
        if field.name not in value:
            continue
        if field.enum_type is not None:
            value[field.name] = _each(field, value[field.name], _word_of(field.enum_type))
        elif field.message_type is not None and not _well_known(field.message_type):
            if field.message_type.GetOptions().map_entry:
                _spell_map(field.message_type, value[field.name])
            else:
                _each(field, value[field.name], lambda v, d=field.message_type: _spelt(d, v))


def _spell_map(entry: Descriptor, value: dict[str, Any]) -> None:
    of = entry.fields_by_name["value"]
    for key, item in value.items():
        if of.enum_type is not None:
            value[key] = _word_of(of.enum_type)(item)
        elif of.message_type is not None and not _well_known(of.message_type):
            _spell(of.message_type, item)


def _each(field: FieldDescriptor, value: Any, fn: Any) -> Any:
    if field.is_repeated:
        return [fn(v) for v in value]
    return fn(value)


def _spelt(descriptor: Descriptor, value: dict[str, Any]) -> dict[str, Any]:
    _spell(descriptor, value)
    return value


def _word_of(enum: EnumDescriptor) -> Any:
    # buf's ENUM_VALUE_PREFIX: every value starts with the enum's name in
    # upper snake case (ExecutionStatus -> EXECUTION_STATUS_).
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"

    def word(value: Any) -> Any:
        # An enum number the CLI does not know yet stays a number.
        return value.removeprefix(prefix).lower() if isinstance(value, str) else value

    return word


def _well_known(descriptor: Descriptor) -> bool:
    # Timestamps, durations, structs: already plain JSON in MessageToDict's output.
    return descriptor.full_name.startswith("google.protobuf.")
