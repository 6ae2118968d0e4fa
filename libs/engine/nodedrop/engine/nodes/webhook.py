"""The webhook nodes: ``webhook_trigger`` (its parameters describe the HTTP
route the API registers on activation) and ``respond_to_webhook`` (the HTTP
answer of a ``when_finished`` webhook).

The engine only checks the parameters' shapes; routing, authentication and
the response are the API's and the gateway's (docs/webhooks.md).
"""

from __future__ import annotations

import re
from typing import Any

from nodedrop.engine.context import NodeContext
from nodedrop.engine.expressions import Template, render_nested
from nodedrop.engine.model import Items, Node, NodeOutputs
from nodedrop.engine.nodes.transform import main_items
from nodedrop.engine.nodes.triggers import plain_trigger_factory
from nodedrop.engine.registry import (
    CompileContext,
    NodeType,
    ParamSpec,
    Prepared,
    Reporter,
    choice,
    string_map_templates,
    templated_json,
)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
AUTH_TYPES = ("none", "header", "basic", "hmac")
HMAC_FORMATS = ("plain", "stripe")
MAX_WAIT_S = 300.0
_PATH = re.compile(r"^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$")
# The keys each authentication type takes, and which of them are required.
_AUTH_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "none": ((), ()),
    "header": (("name", "value"), ("name", "value")),
    "basic": (("username", "password"), ("username", "password")),
    "hmac": (
        ("secret", "header", "prefix", "format", "tolerance_s"),
        ("secret", "header"),
    ),
}


def _path(value: Any, path: str, reporter: Reporter) -> str | None:
    if not isinstance(value, str) or not _PATH.match(value.strip("/")) or len(value) > 200:
        reporter.add(
            path,
            "invalid_parameter",
            "a path of segments made of letters, digits and . _ ~ - (at most 200 characters)",
        )
        return None
    return value.strip("/")


def _methods(value: Any, path: str, reporter: Reporter) -> tuple[str, ...] | None:
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(m, str) and m.upper() in METHODS for m in value)
    ):
        reporter.add(path, "invalid_parameter", f"a list of HTTP methods among {METHODS}")
        return None
    return tuple(dict.fromkeys(m.upper() for m in value))


def _authentication(value: Any, path: str, reporter: Reporter) -> dict[str, Any] | None:
    if not isinstance(value, dict) or value.get("type") not in AUTH_TYPES:
        reporter.add(
            f"{path}.type", "invalid_parameter", f"type must be one of {', '.join(AUTH_TYPES)}"
        )
        return None
    allowed, required = _AUTH_FIELDS[value["type"]]
    ok = True
    for key, field_value in value.items():
        if key == "type":
            continue
        if key not in allowed:
            reporter.add(f"{path}.{key}", "unknown_parameter", f"{value['type']} takes no {key!r}")
            ok = False
        elif key == "tolerance_s":
            if (
                not isinstance(field_value, int | float)
                or isinstance(field_value, bool)
                or not (0 < field_value <= 86400)
            ):
                reporter.add(f"{path}.{key}", "invalid_parameter", "seconds, 0 < s <= 86400")
                ok = False
        elif key == "format":
            if field_value not in HMAC_FORMATS:
                reporter.add(f"{path}.{key}", "invalid_parameter", f"one of {HMAC_FORMATS}")
                ok = False
        elif not isinstance(field_value, str) or (key in required and not field_value):
            reporter.add(f"{path}.{key}", "invalid_parameter", "a non-empty string")
            ok = False
    for key in required:
        if key not in value:
            reporter.add(f"{path}.{key}", "missing_parameter", f"{value['type']} needs {key!r}")
            ok = False
    return dict(value) if ok else None


def _wait_s(value: Any, path: str, reporter: Reporter) -> float | None:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not 0.1 <= value <= MAX_WAIT_S
    ):
        reporter.add(path, "invalid_parameter", f"seconds, 0.1 to {MAX_WAIT_S:g}")
        return None
    return float(value)


WEBHOOK_TRIGGER = NodeType(
    "webhook_trigger",
    params=(
        ParamSpec("path", "string (URL path below the tenant)", _path, default=""),
        ParamSpec("methods", "array of HTTP methods", _methods, default=["POST"]),
        ParamSpec(
            "authentication",
            "object: {type: none|header|basic|hmac, ...}",
            _authentication,
            default={"type": "none"},
        ),
        ParamSpec(
            "response_mode",
            "'immediately' | 'when_finished'",
            choice("immediately", "when_finished"),
            default="immediately",
        ),
        ParamSpec("wait_s", "number (seconds, when_finished, at most 300)", _wait_s, default=30.0),
    ),
    factory=plain_trigger_factory,
    inputs=(),
    trigger=True,
    description=(
        "Emits the HTTP request (method, path, headers, query, body) as one item; "
        "its parameters are the route the API registers on activation."
    ),
)


def _status(value: Any, path: str, reporter: Reporter) -> int | Template | None:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    if isinstance(value, str):
        return Template(value, path)
    reporter.add(path, "invalid_parameter", "an HTTP status 100..599 or a template")
    return None


def _respond_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    status, headers, body = values["status"], values["headers"] or {}, values["body"]

    def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
        items = main_items(inputs)
        env = ctx.env(items)
        item = items[0] if items else {}
        code = status.render(env, item, 0) if isinstance(status, Template) else status
        return {
            "main": [
                {
                    "status": code,
                    "headers": render_nested(headers, env, item, 0),
                    "body": render_nested(body, env, item, 0),
                }
            ]
        }

    return Prepared(run, is_async=False)


RESPOND_TO_WEBHOOK = NodeType(
    "respond_to_webhook",
    params=(
        ParamSpec("status", "integer 100..599 or template", _status, default=200),
        ParamSpec("headers", "object of name -> template", string_map_templates, default={}),
        ParamSpec("body", "JSON with templates", templated_json, default=None),
    ),
    factory=_respond_factory,
    description=(
        "The answer of a when_finished webhook: one item {status, headers, body} "
        "rendered from its first input item."
    ),
)

__all__ = ["RESPOND_TO_WEBHOOK", "WEBHOOK_TRIGGER"]
