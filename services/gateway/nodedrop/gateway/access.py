"""Who may open a WebSocket: the Origin allow-list and the credential, checked
before the upgrade so a refused browser never gets a socket."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from websockets.http11 import Request


def origin_allowed(request: Request, allowed: frozenset[str]) -> bool:
    """Browsers always send Origin; non-browser clients may omit it.

    The gateway's own pages (Origin host equal to the Host header) are always
    allowed, so the live view works on whatever name the gateway is reached
    by; `*` allows any origin; otherwise the exact scheme://host[:port] must
    be listed.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if "*" in allowed or origin in allowed:
        return True
    host = request.headers.get("Host")
    return host is not None and urlsplit(origin).netloc == host


def credential_of(request: Request) -> str | None:
    """`Authorization: Bearer <key or ticket>`, else `?ticket=` (browsers cannot set headers)."""
    header = request.headers.get("Authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    query = parse_qs(urlsplit(request.path).query)
    for name in ("ticket", "api_key"):
        values = query.get(name)
        if values and values[0].strip():
            return values[0].strip()
    return None


def path_of(request: Request) -> str:
    return urlsplit(request.path).path
