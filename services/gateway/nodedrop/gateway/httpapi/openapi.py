"""The OpenAPI 3.1 document of the HTTP API, generated from the same
descriptors and route table the API serves, so the two cannot drift.

Schemas follow the proto3 JSON mapping as this API writes it: lowerCamelCase
names, every field present (defaults included), 64-bit integers as strings,
enums by name, Timestamp as RFC 3339 and Duration as ``"1.5s"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from nodedrop.gateway.httpapi.catalog import Method
from nodedrop.gateway.httpapi.connect import STREAM_MEDIA_TYPE
from nodedrop.gateway.httpapi.errors import CONNECT_CODES
from nodedrop.gateway.httpapi.query import query_fields
from nodedrop.gateway.httpapi.routes import Body, Kind, Route

__all__ = ["build_document"]

Schema = dict[str, Any]

_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
_INT32 = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_SFIXED32,
}
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Any": {"type": "object", "required": ["@type"]},
}
_ERROR_REF = {"$ref": "#/components/responses/Error"}


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Schema] = {}

    def ref(self, descriptor: Descriptor) -> Schema:
        if descriptor.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[descriptor.full_name])
        name = descriptor.full_name
        if name not in self.components:
            self.components[name] = {}  # placed first: a message may contain itself
            self.components[name] = self._message(descriptor)
        return {"$ref": f"#/components/schemas/{name}"}

    def _message(self, descriptor: Descriptor) -> Schema:
        return {
            "type": "object",
            "properties": {f.json_name: self.field(f) for f in descriptor.fields},
            "additionalProperties": False,
        }

    def field(self, field: FieldDescriptor) -> Schema:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            return {
                "type": "object",
                "additionalProperties": self._single(message.fields_by_name["value"]),
            }
        if field.is_repeated:
            return {"type": "array", "items": self._single(field)}
        return self._single(field)

    def _single(self, field: FieldDescriptor) -> Schema:
        if field.message_type is not None:
            return self.ref(field.message_type)
        if field.enum_type is not None:
            return {"type": "string", "enum": [v.name for v in field.enum_type.values]}
        kind = field.type
        if kind in _INT64:
            return {"type": ["string", "integer"], "format": "int64"}
        if kind in _INT32:
            return {"type": "integer", "format": "int32"}
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return {"type": "number"}
        if kind == FieldDescriptor.TYPE_BOOL:
            return {"type": "boolean"}
        if kind == FieldDescriptor.TYPE_BYTES:
            return {"type": "string", "contentEncoding": "base64"}
        return {"type": "string"}


def _content(media_type: str, schema: Schema) -> dict[str, Any]:
    return {media_type: {"schema": schema}}


def _connect_operation(method: Method, schemas: _Schemas) -> dict[str, Any]:
    service = method.descriptor.containing_service
    media = STREAM_MEDIA_TYPE if method.server_streaming else "application/json"
    kind = "server stream of Connect envelopes" if method.server_streaming else "unary"
    operation: dict[str, Any] = {
        "operationId": f"{service.name}.{method.descriptor.name}",
        "tags": [service.full_name],
        "summary": f"{service.name}.{method.descriptor.name} (Connect, {kind})",
        "parameters": [
            {
                "name": "Connect-Timeout-Ms",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": "^[0-9]{1,10}$"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": _content(media, schemas.ref(method.descriptor.input_type)),
        },
        "responses": {
            "200": {
                "description": method.descriptor.output_type.full_name,
                "content": _content(media, schemas.ref(method.descriptor.output_type)),
            },
            "default": _ERROR_REF,
        },
    }
    if method.public:
        operation["security"] = []
    return operation


def _route_operation(route: Route, method: Method | None, schemas: _Schemas) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.template.strip("/").replace("/", ".").replace("{", "").replace("}", "")
        + "."
        + route.method.lower(),
        "tags": ["plain routes"],
        "summary": route.summary,
        "responses": {"default": _ERROR_REF},
    }
    if method is None:  # the document itself
        operation["security"] = []
        operation["responses"]["200"] = {
            "description": "OpenAPI 3.1 document",
            "content": _content("application/json", {"type": "object"}),
        }
        return operation
    request = method.descriptor.input_type
    params: list[dict[str, Any]] = [
        {
            "name": p,
            "in": "path",
            "required": True,
            "schema": schemas.field(request.fields_by_name[p]),
        }
        for p in route.params
    ]
    if route.body is not Body.MESSAGE:
        for field in query_fields(request, frozenset(route.params)):
            params.append(
                {
                    "name": field.name,
                    "in": "query",
                    "required": False,
                    "schema": schemas.field(field),
                    **({"explode": True} if field.is_repeated else {}),
                }
            )
    if route.body is Body.MESSAGE:
        operation["requestBody"] = {
            "required": False,
            "content": _content("application/json", schemas.ref(request)),
        }
    reply = schemas.ref(method.descriptor.output_type)
    if route.kind is Kind.EXECUTE:
        params.append(
            {
                "name": "wait",
                "in": "query",
                "required": False,
                "description": "seconds to wait for the end; 200 with the execution if it ends",
                "schema": {"type": "number", "minimum": 0},
            }
        )
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
            }
        )
        operation["requestBody"] = {
            "required": False,
            "description": "the trigger input, any JSON value",
            "content": _content("application/json", {}),
        }
        operation["responses"]["202"] = {
            "description": "the execution was committed",
            "content": _content("application/json", reply),
        }
        operation["responses"]["200"] = {
            "description": "with `wait`: the execution ended within it",
            "content": _content(
                "application/json",
                {"$ref": "#/components/schemas/nodedrop.execution.v1.GetExecutionResponse"},
            ),
        }
    elif route.kind is Kind.EVENTS:
        params.append(
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "description": "resume after this sequence (overrides after_sequence)",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        )
        operation["responses"]["200"] = {
            "description": "`id: <sequence>`, `event: <type>`, `data: <ExecutionEvent JSON>` "
            "per event; a last `event: end` or `event: error`",
            "content": _content("text/event-stream", {"type": "string"}),
        }
    else:
        operation["responses"][str(route.status)] = {
            "description": method.descriptor.output_type.full_name,
            "content": _content("application/json", reply),
        }
        if route.kind is Kind.HEALTH:
            operation["responses"]["503"] = {
                "description": "not healthy",
                "content": _content("application/json", reply),
            }
    if route.kind is Kind.HEALTH:
        operation["security"] = []
    if params:
        operation["parameters"] = params
    return operation


def build_document(methods: Iterable[Method], routes: Iterable[Route]) -> dict[str, Any]:
    schemas = _Schemas()
    by_path = {m.path: m for m in methods}
    # Referenced by the execute route's 200 whether or not a Connect method names it.
    schemas.ref(
        by_path["/nodedrop.execution.v1.ExecutionService/GetExecution"].descriptor.output_type
    )
    paths: dict[str, dict[str, Any]] = {}
    for method in by_path.values():
        paths[method.path] = {"post": _connect_operation(method, schemas)}
    for route in routes:
        operation = _route_operation(route, by_path.get(route.rpc), schemas)
        paths.setdefault(route.template, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "nodedrop-exec HTTP API",
            "version": "v1",
            "description": "Connect (JSON) for every public RPC, and plain /api routes. "
            "See docs/api.md.",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API key"}
            },
            "responses": {
                "Error": {
                    "description": "a Connect error; the HTTP status follows its code",
                    "content": _content("application/json", {"$ref": "#/components/schemas/Error"}),
                }
            },
            "schemas": {"Error": _error_schema(), **dict(sorted(schemas.components.items()))},
        },
    }


def _error_schema() -> Schema:
    return {
        "type": "object",
        "required": ["code", "message"],
        "additionalProperties": False,
        "properties": {
            "code": {"type": "string", "enum": sorted(set(CONNECT_CODES.values()))},
            "message": {"type": "string"},
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["type", "value"],
                    "properties": {
                        "type": {"type": "string"},
                        "value": {"type": "string", "contentEncoding": "base64"},
                        "debug": {"type": "object"},
                    },
                },
            },
        },
    }
