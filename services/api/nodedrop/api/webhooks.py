"""Webhook calls: the route's configuration from its ``webhook_trigger`` node,
the caller's authentication, the trigger item, and the HTTP answer.

Pure functions over bytes and mappings; ``webhook_servicer`` does the I/O.
Secrets (tokens, passwords, HMAC keys) are compared in constant time and
never logged; the headers that carry them are left out of the trigger item,
so they reach neither the execution's row nor its events.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "Answer",
    "AuthFailure",
    "WebhookConfig",
    "check_auth",
    "config_of",
    "find_by_path",
    "finished_answer",
    "retry_after",
    "trigger_item",
]

DEFAULT_TOLERANCE_S = 300.0
_JSON = "application/json"


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    node_id: str
    path: str
    methods: tuple[str, ...]
    auth: Mapping[str, Any]
    response_mode: str
    wait_s: float


@dataclass(frozen=True, slots=True)
class Answer:
    """The HTTP response the gateway sends."""

    status: int
    body: bytes = b""
    headers: Sequence[tuple[str, str]] = field(default=())

    @classmethod
    def json(cls, status: int, value: object, headers: Sequence[tuple[str, str]] = ()) -> Answer:
        return cls(status, orjson.dumps(value), (("content-type", _JSON), *headers))

    @classmethod
    def error(
        cls, status: int, code: str, message: str, headers: Sequence[tuple[str, str]] = ()
    ) -> Answer:
        return cls.json(status, {"error": {"code": code, "message": message}}, headers)


def _config(node: Mapping[str, Any]) -> WebhookConfig:
    p = node.get("parameters") or {}
    methods = p.get("methods") or ["POST"]
    if isinstance(methods, str):
        methods = [methods]
    return WebhookConfig(
        node_id=str(node.get("id")),
        path=str(p.get("path") or "").strip("/"),
        methods=tuple(str(m).upper() for m in methods),
        auth=p.get("authentication") or {"type": "none"},
        response_mode=str(p.get("response_mode") or "immediately"),
        # The engine checked it (0.1 to 300 s) when the version was stored.
        wait_s=float(p.get("wait_s") or 30.0),
    )


def _webhook_nodes(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    nodes = document.get("nodes")
    return [
        n
        for n in (nodes if isinstance(nodes, list) else [])
        if isinstance(n, dict) and n.get("type") == "webhook_trigger" and not n.get("disabled")
    ]


def config_of(document: Mapping[str, Any], node_id: str) -> WebhookConfig | None:
    for node in _webhook_nodes(document):
        if node.get("id") == node_id:
            return _config(node)
    return None


def find_by_path(document: Mapping[str, Any], path: str) -> WebhookConfig | None:
    """The webhook of a draft (test URL) whose path is ``path``."""
    for node in _webhook_nodes(document):
        config = _config(node)
        if config.path == path:
            return config
    return None


class AuthFailure(Exception):
    """The caller did not authenticate as the webhook requires (401)."""

    def __init__(self, message: str, challenge: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.challenge = challenge


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _basic(auth: Mapping[str, Any], headers: Mapping[str, str]) -> None:
    scheme, _, encoded = headers.get("authorization", "").strip().partition(" ")
    challenge = 'Basic realm="webhook"'
    if scheme.lower() != "basic":
        raise AuthFailure("basic authentication required", challenge)
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthFailure("malformed basic credentials", challenge) from None
    ok_user = _equal(user, str(auth["username"]))
    ok_password = _equal(password, str(auth["password"]))
    if not (sep and ok_user and ok_password):
        raise AuthFailure("wrong username or password", challenge)


def _digest(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def _hmac(auth: Mapping[str, Any], headers: Mapping[str, str], body: bytes, now: float) -> None:
    header = str(auth["header"]).lower()
    value = headers.get(header)
    if not value:
        raise AuthFailure(f"signature header {auth['header']!r} missing")
    secret = str(auth["secret"])
    if auth.get("format", "plain") == "stripe":
        # Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...] over "<t>.<body>".
        parts = [p.partition("=") for p in value.split(",")]
        stamps = [v for k, _, v in parts if k.strip() == "t"]
        signatures = [v.strip() for k, _, v in parts if k.strip() == "v1"]
        if len(stamps) != 1 or not stamps[0].strip().isdigit() or not signatures:
            raise AuthFailure("malformed signature header: expected t=<seconds>,v1=<hex>")
        stamp = int(stamps[0])
        tolerance = float(auth.get("tolerance_s", DEFAULT_TOLERANCE_S))
        if abs(now - stamp) > tolerance:
            raise AuthFailure(f"signature timestamp outside the tolerance of {tolerance:g} s")
        expected = _digest(secret, f"{stamp}.".encode() + body)
        if not any(_equal(s, expected) for s in signatures):
            raise AuthFailure("signature does not match")
        return
    # GitHub style: X-Hub-Signature-256: sha256=<hex of HMAC-SHA256(body)>.
    prefix = str(auth.get("prefix", ""))
    if not value.startswith(prefix):
        raise AuthFailure(f"signature must start with {prefix!r}")
    if not _equal(value[len(prefix) :].strip().lower(), _digest(secret, body)):
        raise AuthFailure("signature does not match")


def check_auth(
    auth: Mapping[str, Any], headers: Mapping[str, str], body: bytes, now: float
) -> None:
    """Raises AuthFailure unless the request carries what ``auth`` requires.

    ``headers`` has lower-case names; ``now`` is Unix seconds."""
    kind = auth.get("type", "none")
    if kind == "none":
        return
    if kind == "header":
        given = headers.get(str(auth["name"]).lower())
        if given is None or not _equal(given, str(auth["value"])):
            raise AuthFailure(f"header {auth['name']!r} missing or wrong")
        return
    if kind == "basic":
        _basic(auth, headers)
        return
    if kind == "hmac":
        _hmac(auth, headers, body, now)
        return
    raise AuthFailure(f"unknown authentication type {kind!r}")


def _secret_headers(auth: Mapping[str, Any]) -> set[str]:
    kind = auth.get("type")
    if kind == "header":
        return {str(auth["name"]).lower()}
    if kind == "basic":
        return {"authorization"}
    return set()


# Hop-by-hop and credential headers never enter the trigger item.
_DROPPED = {"authorization", "cookie", "proxy-authorization", "x-nodedrop-api-key"}


def trigger_item(
    *,
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]],
    query: str,
    body: bytes,
    auth: Mapping[str, Any],
) -> dict[str, Any]:
    """The trigger's one item: method, path, headers, query and body (JSON
    parsed, a form as an object, text as a string, anything else base64)."""
    dropped = _DROPPED | _secret_headers(auth)
    kept = {k: v for k, v in headers if k not in dropped}
    content_type = kept.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    item: dict[str, Any] = {
        "method": method,
        "path": path,
        "headers": kept,
        "query": dict(parse_qsl(query, keep_blank_values=True)),
    }
    if not body:
        item["body"] = None
        return item
    if media == _JSON or media.endswith("+json"):
        try:
            item["body"] = orjson.loads(body)
            return item
        except orjson.JSONDecodeError:
            pass
    elif media == "application/x-www-form-urlencoded":
        try:
            item["body"] = dict(parse_qsl(body.decode(), keep_blank_values=True))
            return item
        except UnicodeDecodeError:
            pass
    elif media.startswith("text/") or media in ("application/xml", ""):
        try:
            item["body"] = body.decode()
            return item
        except UnicodeDecodeError:
            pass
    item["body"] = base64.b64encode(body).decode()
    item["body_encoding"] = "base64"
    item["content_type"] = content_type or "application/octet-stream"
    return item


def retry_after(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))


def _respond_item(items: Any) -> Answer | None:
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        return None
    item = items[0]
    status = item.get("status", 200)
    if not isinstance(status, int) or not 100 <= status <= 599:
        status = 500
    headers = item.get("headers") or {}
    body = item.get("body")
    pairs = (
        [(str(k).lower(), str(v)) for k, v in headers.items()] if isinstance(headers, dict) else []
    )
    if isinstance(body, str):
        data = body.encode()
        default_type = "text/plain; charset=utf-8"
    elif body is None:
        data, default_type = b"", ""
    else:
        data, default_type = orjson.dumps(body), _JSON
    if default_type and not any(k == "content-type" for k, _ in pairs):
        pairs.append(("content-type", default_type))
    return Answer(status, data, tuple(pairs))


def _main(outputs_json: str | None) -> Any:
    if not outputs_json:
        return None
    outputs = orjson.loads(outputs_json)
    return outputs.get("main") if isinstance(outputs, dict) else outputs


def finished_answer(
    *,
    status: str,
    result_json: str | None,
    error_json: str | None,
    respond_outputs_json: str | None,
    last_node_id: str | None,
) -> Answer:
    """The answer of a ``when_finished`` webhook whose execution ended: the
    respond_to_webhook node's response when one ran, else the last node's items."""
    if respond_outputs_json is not None:
        answer = _respond_item(_main(respond_outputs_json))
        if answer is not None:
            return answer
    if status != "completed":
        error = orjson.loads(error_json) if error_json else {}
        message = error.get("message", status) if isinstance(error, dict) else status
        return Answer.error(500, "EXECUTION_" + status.upper(), str(message))
    outputs = orjson.loads(result_json) if result_json else {}
    if not isinstance(outputs, dict) or not outputs:
        return Answer.json(200, [])
    node = last_node_id if last_node_id in outputs else list(outputs)[-1]
    return Answer.json(200, outputs[node])
