"""Request field checks shared by the servicers: each adds a FieldViolation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from nodedrop.common.errors import FieldViolation, InvalidArgument
from nodedrop.engine.budget import data_depth
from nodedrop.engine.limits import DEFAULT_LIMITS
from nodedrop.store.validation import ID_PATTERN, is_valid_id

__all__ = ["Violations"]

MAX_PAGE_SIZE = 1000
# The engine's limit, so what the API accepts a worker can run.
MAX_DATA_DEPTH = DEFAULT_LIMITS.max_data_depth


class Violations:
    """Collects every problem of one request, raised at once."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.items:
            first = self.items[0]
            more = f" (+{len(self.items) - 1} more)" if len(self.items) > 1 else ""
            raise InvalidArgument(f"{first.field}: {first.description}{more}", self.items)

    def uuid(self, field: str, value: str, *, required: bool = True) -> None:
        if not value:
            if required:
                self.add(field, "required")
            return
        try:
            uuid.UUID(value)
        except ValueError:
            self.add(field, "must be a UUID")

    def execution_id(self, field: str, value: str) -> None:
        """Any id the system gives an execution: the API's UUIDs, the scheduler's cron run ids."""
        if not value:
            self.add(field, "required")
        elif not is_valid_id(value):
            self.add(field, f"must match {ID_PATTERN}")

    def page_size(self, field: str, value: int) -> int:
        if value < 0 or value > MAX_PAGE_SIZE:
            self.add(field, f"must be 0..{MAX_PAGE_SIZE}")
        return value or 50

    def json_items(
        self, field: str, text: str, *, allow_object: bool, max_depth: int = MAX_DATA_DEPTH
    ) -> object:
        """Empty, a JSON object (when allowed) or a JSON array of objects."""
        if not text.strip():
            return None
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self.add(field, f"not valid JSON: {exc}")
            return None
        if data_depth(value, max_depth + 1) > max_depth:
            self.add(field, f"nests deeper than {max_depth} levels")
            return None
        if isinstance(value, dict) and allow_object:
            return value
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            return value
        expected = (
            "a JSON object or an array of objects" if allow_object else "a JSON array of objects"
        )
        self.add(field, f"must be {expected}")
        return None

    def timestamp(self, field: str, value: Timestamp) -> datetime | None:
        """The UTC datetime of ``value``; a violation when no datetime can hold it."""
        try:
            return value.ToDatetime(UTC)
        except (ValueError, OverflowError):
            self.add(field, "must be a time from year 1 to 9999")
            return None

    def text_fields(self, message: Message, prefix: str = "") -> None:
        """A violation for every string field of ``message`` (nested ones too) that
        holds a NUL character: no store keeps one in text."""
        for fd, value in message.ListFields():
            path = f"{prefix}{fd.name}"
            if fd.type == fd.TYPE_STRING:
                if fd.is_repeated:
                    for i, text in enumerate(value):
                        if "\x00" in text:
                            self.add(f"{path}[{i}]", "must not contain NUL characters")
                elif "\x00" in value:
                    self.add(path, "must not contain NUL characters")
            elif fd.type == fd.TYPE_MESSAGE:
                entry = fd.message_type
                if entry is not None and entry.GetOptions().map_entry:
                    for key, item in value.items():
                        if isinstance(item, str):
                            if "\x00" in item or "\x00" in str(key):
                                self.add(f"{path}[{key}]", "must not contain NUL characters")
                        elif isinstance(item, Message):
                            self.text_fields(item, f"{path}[{key}].")
                elif fd.is_repeated:
                    for i, item in enumerate(value):
                        self.text_fields(item, f"{path}[{i}].")
                else:
                    self.text_fields(value, f"{path}.")


def reject_nul(message: Message) -> None:
    """INVALID_ARGUMENT naming every string field of ``message`` with a NUL in it."""
    v = Violations()
    v.text_fields(message)
    v.raise_if_any()
