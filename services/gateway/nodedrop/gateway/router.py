"""The gateway's one router: exact paths, path prefixes, and mounted ASGI sub-apps.

A route is an async function from Request to Response; a mount hands the
ASGI call unchanged to another application for every path under its prefix
(``router.mount("/api/v1/", app)``), so another sub-app joins the gateway in
one line in ``app.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

from nodedrop.gateway.http import ASGIApp, Request, Response, error_response

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class _Route:
    handler: Handler
    methods: frozenset[str]


class Router:
    def __init__(self) -> None:
        self._exact: dict[str, _Route] = {}
        self._prefixes: list[tuple[str, _Route]] = []
        self._mounts: list[tuple[str, ASGIApp]] = []

    def route(self, path: str, handler: Handler, methods: tuple[str, ...] = ("GET",)) -> None:
        self._exact[path] = _Route(handler, frozenset(methods))

    def prefix(self, prefix: str, handler: Handler, methods: tuple[str, ...]) -> None:
        self._prefixes.append((prefix, _Route(handler, frozenset(methods))))

    def mount(self, prefix: str, app: ASGIApp) -> None:
        """Hands every path under ``prefix`` but the exact routes to ``app``
        (a later mount of the same prefix replaces the earlier one)."""
        self._mounts = [(p, a) for p, a in self._mounts if p != prefix]
        self._mounts.append((prefix, app))

    def mounted(self, path: str) -> ASGIApp | None:
        if path in self._exact:
            return None
        for prefix, app in self._mounts:
            if path.startswith(prefix):
                return app
        return None

    async def dispatch(self, request: Request) -> Response:
        route = self._exact.get(request.path)
        if route is None:
            route = next((r for p, r in self._prefixes if request.path.startswith(p)), None)
        if route is None:
            return error_response(HTTPStatus.NOT_FOUND, "not found")
        if request.method not in route.methods:
            allow = ", ".join(sorted(route.methods))
            return error_response(
                HTTPStatus.METHOD_NOT_ALLOWED, f"allowed: {allow}", [("allow", allow)]
            )
        return await route.handler(request)
