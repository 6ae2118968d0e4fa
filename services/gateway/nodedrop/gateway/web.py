"""The console's files (docs/console.md), read once at start from the package."""

from __future__ import annotations

from importlib import resources

from nodedrop.gateway.http import Response

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
_CSP = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:"


def load_static() -> dict[str, Response]:
    """URL path -> its response (the files ship inside the package)."""
    root = resources.files("nodedrop.gateway") / "static"
    files: dict[str, Response] = {}
    for entry in root.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if suffix in _TYPES:
            content_type = _TYPES[suffix]
            headers = [("content-security-policy", _CSP)] if suffix == ".html" else []
            files[f"/static/{entry.name}"] = Response(
                200, entry.read_bytes(), content_type, headers
            )
    files["/"] = files["/static/index.html"]
    return files
