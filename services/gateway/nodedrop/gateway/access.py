"""Who may open a WebSocket: the Origin allow-list and the credential, checked
before the upgrade so a refused browser never gets a socket."""

from __future__ import annotations

from urllib.parse import urlsplit

from nodedrop.gateway.http import Request


def origin_allowed(request: Request, allowed: frozenset[str]) -> bool:
    """Browsers always send Origin; non-browser clients may omit it.

    The gateway's own pages (Origin host equal to the Host header) are always
    allowed, so the live view works on whatever name the gateway is reached
    by; `*` allows any origin; otherwise the exact scheme://host[:port] must
    be listed.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if "*" in allowed or origin in allowed:
        return True
    host = request.headers.get("host")
    return host is not None and urlsplit(origin).netloc == host


def bearer(request: Request) -> str | None:
    """The value of `Authorization: Bearer <value>`, or None."""
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def credential_of(request: Request) -> str | None:
    """`Authorization: Bearer <key or ticket>`, else `?ticket=` (browsers cannot set headers)."""
    if request.headers.get("authorization"):
        return bearer(request)
    for name in ("ticket", "api_key"):
        value = request.query_value(name)
        if value and value.strip():
            return value.strip()
    return None
