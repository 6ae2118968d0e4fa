"""Request field checks shared by the servicers: each adds a FieldViolation."""

from __future__ import annotations

import uuid

import orjson

from nodedrop.common.errors import FieldViolation, InvalidArgument

__all__ = ["Violations"]

MAX_PAGE_SIZE = 1000


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

    def page_size(self, field: str, value: int) -> int:
        if value < 0 or value > MAX_PAGE_SIZE:
            self.add(field, f"must be 0..{MAX_PAGE_SIZE}")
        return value or 50

    def json_items(self, field: str, text: str, *, allow_object: bool) -> object:
        """Empty, a JSON object (when allowed) or a JSON array of objects."""
        if not text.strip():
            return None
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self.add(field, f"not valid JSON: {exc}")
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
