"""http_request: one request per item, refusing addresses that are not public.

The host is resolved here, every address is checked, and the connection goes to
the checked address with the original Host header (and TLS server name), so a
second, different DNS answer cannot be used. Redirects are followed by hand so
that every hop is checked the same way, and a hop to another origin carries
no credentials (Authorization, Cookie) and no body.

One deadline bounds the whole request (DNS, connection, redirects, the body),
not each read, and the body is read in chunks up to the policy's
max_response_bytes, so neither a slow nor a large response holds a process.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from typing import Any

import httpx
import orjson

from nodedrop.engine.context import NodeContext
from nodedrop.engine.errors import LimitExceededError, NodeError
from nodedrop.engine.expressions import Template, render_nested
from nodedrop.engine.http_policy import (
    HttpPolicy,
    IPAddress,
    parse_literal_address,
    refusal_reason,
)
from nodedrop.engine.model import Item, Items, Node, NodeOutputs
from nodedrop.engine.nodes.transform import main_items
from nodedrop.engine.registry import (
    CompileContext,
    NodeType,
    ParamSpec,
    Prepared,
    Reporter,
    boolean,
    choice,
    number,
    string_map_templates,
    template,
    templated_json,
)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_REDIRECTS = {301, 302, 303, 307, 308}
# Request headers that carry the caller's identity: never sent to another origin.
_CREDENTIALS = frozenset({"authorization", "proxy-authorization", "cookie"})


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs milliseconds; do it once per process.
    return httpx.create_ssl_context()


def _refused(message: str) -> NodeError:
    return NodeError(message, code="address_refused", retryable=False)


async def resolve_checked(url: httpx.URL, policy: HttpPolicy) -> IPAddress:
    """The address to connect to for ``url``, after checking every address its host has."""
    host = url.host
    if not host:
        raise NodeError(f"URL {url} has no host", code="invalid_url", retryable=False)
    port = url.port or (443 if url.scheme == "https" else 80)
    literal = parse_literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NodeError(f"cannot resolve {host!r}: {exc.strerror}", code="dns_error") from None
        addresses = []
        for info in infos:
            addr = parse_literal_address(str(info[4][0]).split("%")[0])
            if addr is not None and addr not in addresses:
                addresses.append(addr)
        if not addresses:
            raise NodeError(f"{host!r} resolves to no address", code="dns_error")
    for addr in addresses:
        if policy.is_allowed(host, addr, port):
            continue
        reason = refusal_reason(addr)
        if reason is not None:
            shown = host if str(addr) == host else f"{host} ({addr})"
            raise _refused(
                f"refusing to connect to {shown}: it {reason}; "
                "add it to the HTTP allow-list to permit it"
            )
    return addresses[0]


def _pinned(url: httpx.URL, address: IPAddress) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
    ip = f"[{address}]" if address.version == 6 else str(address)
    default_port = 443 if url.scheme == "https" else 80
    host_header = url.host if url.port in (None, default_port) else f"{url.host}:{url.port}"
    if ":" in url.host:
        host_header = f"[{url.host}]" + (
            f":{url.port}" if url.port not in (None, default_port) else ""
        )
    extensions: dict[str, Any] = {}
    if url.scheme == "https":
        extensions["sni_hostname"] = url.host
    return url.copy_with(host=ip.strip("[]")), {"Host": host_header}, extensions


def _response_item(resp: httpx.Response, content: bytes, method: str) -> Item:
    headers: dict[str, str] = {}
    for raw_key, v in resp.headers.multi_items():
        k = raw_key.lower()
        headers[k] = f"{headers[k]}, {v}" if k in headers else v
    body: Any = None
    if method != "HEAD" and content:
        text = content.decode(resp.encoding or "utf-8", errors="replace")
        if "json" in resp.headers.get("content-type", ""):
            try:
                body = orjson.loads(content)
            except orjson.JSONDecodeError:
                body = text
        else:
            body = text
    return {"status": resp.status_code, "headers": headers, "body": body}


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


async def _read_capped(resp: httpx.Response, limit: int, what: str) -> bytes:
    """The body, decoded (gzip and the like), refused past ``limit`` bytes."""
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(what, f"declares {int(declared):,} bytes", limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _too_large(what, f"is over {limit:,} bytes", limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(what: str, detail: str, limit: int) -> LimitExceededError:
    return LimitExceededError(
        f"the response of {what} {detail}; the limit (max_response_bytes, "
        f"NODEDROP_HTTP_MAX_RESPONSE_BYTES) is {limit:,} bytes"
    )


async def send_checked(  # noqa: PLR0917 - one call site, the request parts
    client: httpx.AsyncClient,
    policy: HttpPolicy,
    method: str,
    url_text: str,
    headers: dict[str, str],
    query: dict[str, Any],
    body: Any,
    timeout_s: float,
) -> tuple[httpx.Response, bytes]:
    """The final response of ``method url`` and its body; ``timeout_s`` bounds it all."""
    try:
        async with asyncio.timeout(timeout_s):
            return await _send(client, policy, method, url_text, headers, query, body)
    except TimeoutError:
        raise NodeError(
            f"{method} {url_text} timed out after {timeout_s:g}s", code="http_timeout"
        ) from None


async def _send(  # noqa: PLR0917 - one call site, the request parts
    client: httpx.AsyncClient,
    policy: HttpPolicy,
    method: str,
    url_text: str,
    headers: dict[str, str],
    query: dict[str, Any],
    body: Any,
) -> tuple[httpx.Response, bytes]:
    try:
        url = httpx.URL(url_text)
    except (httpx.InvalidURL, TypeError) as exc:
        raise NodeError(
            f"invalid URL {url_text!r}: {exc}", code="invalid_url", retryable=False
        ) from None
    if url.scheme not in ("http", "https"):
        raise NodeError(
            f"URL {url_text!r} must use http or https", code="invalid_url", retryable=False
        )
    if query:
        url = url.copy_merge_params({k: str(v) for k, v in query.items()})
    for _ in range(policy.max_redirects + 1):
        address = await resolve_checked(url, policy)
        target, extra_headers, extensions = _pinned(url, address)
        kwargs: dict[str, Any] = {}
        if body is not None and method not in ("GET", "HEAD"):
            if isinstance(body, str):
                kwargs["content"] = body.encode()
            else:
                kwargs["content"] = orjson.dumps(body)
                extra_headers.setdefault("Content-Type", "application/json")
        request = client.build_request(
            method,
            target,
            headers={**headers, **extra_headers},
            # The caller's deadline bounds the whole request; no per-read timeout.
            timeout=None,
            extensions=extensions,
            **kwargs,
        )
        try:
            resp = await client.send(request, follow_redirects=False, stream=True)
            try:
                location = resp.headers.get("location")
                if resp.status_code not in _REDIRECTS or not location:
                    content = await _read_capped(resp, policy.max_response_bytes, f"{method} {url}")
                    return resp, content
            finally:
                await resp.aclose()
        except httpx.HTTPError as exc:
            raise NodeError(f"{method} {url} failed: {exc}", code="http_error") from None
        previous = url
        url = url.join(location)
        if url.scheme not in ("http", "https"):
            raise NodeError(
                f"redirect to unsupported URL {url}", code="invalid_url", retryable=False
            )
        if resp.status_code == 303 or (resp.status_code in (301, 302) and method == "POST"):
            method, body = "GET", None
        if _origin(url) != _origin(previous):
            headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIALS}
            if body is not None and method not in ("GET", "HEAD"):
                # A 307/308 asks for the same body again: it is not sent to
                # another origin, and dropping it would change the request.
                raise NodeError(
                    f"{method} {previous} redirects ({resp.status_code}) to another origin, "
                    f"{url}; the request body is not sent there",
                    code="redirect_refused",
                    retryable=False,
                )
    raise NodeError(
        f"more than {policy.max_redirects} redirects from {url_text}",
        code="too_many_redirects",
        retryable=False,
    )


def _http_factory(
    node: Node, values: dict[str, Any], base: str, reporter: Reporter, cctx: CompileContext
) -> Prepared:
    method: str = values["method"]
    url: Template = values["url"]
    headers_t: dict[str, Any] = values["headers"] or {}
    query_t: dict[str, Any] = values["query"] or {}
    body_t: Any = values["body"]
    timeout_param: float | None = values["timeout_s"]
    ignore_errors: bool = values["ignore_http_errors"]

    async def run(inputs: dict[str, Items], ctx: NodeContext) -> NodeOutputs:
        items = main_items(inputs)
        env = ctx.env(items)
        policy = ctx.config.http
        timeout_s = timeout_param or policy.default_timeout_s
        out: Items = []
        async with httpx.AsyncClient(verify=_ssl_context(), trust_env=False) as client:
            for i, item in enumerate(items):
                url_text = url.render(env, item, i)
                if not isinstance(url_text, str):
                    raise NodeError(
                        f"url must render to a string, got {url_text!r}",
                        code="invalid_url",
                        retryable=False,
                    )
                headers = {k: str(render_nested(v, env, item, i)) for k, v in headers_t.items()}
                query = {k: render_nested(v, env, item, i) for k, v in query_t.items()}
                body = render_nested(body_t, env, item, i)
                resp, content = await send_checked(
                    client, policy, method, url_text, headers, query, body, timeout_s
                )
                if resp.status_code >= 400 and not ignore_errors:
                    raise NodeError(
                        f"{method} {url_text} returned HTTP {resp.status_code}",
                        code="http_status",
                        # Server errors and throttling may pass; client errors will not.
                        retryable=resp.status_code >= 500 or resp.status_code == 429,
                    )
                out.append(_response_item(resp, content, method))
        return {"main": out}

    return Prepared(run, is_async=True)


HTTP_REQUEST = NodeType(
    "http_request",
    params=(
        ParamSpec("method", "HTTP method", choice(*METHODS), default="GET"),
        ParamSpec("url", "template", template, required=True),
        ParamSpec("headers", "object of templates", string_map_templates, default={}),
        ParamSpec("query", "object of templates", string_map_templates, default={}),
        ParamSpec("body", "JSON (templates inside strings)", templated_json, default=None),
        ParamSpec("timeout_s", "number > 0", number(0.001), default=None),
        ParamSpec("ignore_http_errors", "boolean", boolean, default=False),
    ),
    factory=_http_factory,
    description="One request per item; emits {status, headers, body}.",
)
