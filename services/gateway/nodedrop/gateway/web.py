"""Plain HTTP answers of the gateway: the live view's files and its small JSON routes."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    content_type: str
    text: str


def load_static() -> dict[str, StaticFile]:
    """URL path -> file, read once at start (the files ship inside the package)."""
    root = resources.files("nodedrop.gateway") / "static"
    files: dict[str, StaticFile] = {}
    for entry in root.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if suffix in _TYPES:
            files[f"/static/{entry.name}"] = StaticFile(_TYPES[suffix], entry.read_text("utf-8"))
    files["/"] = files["/static/index.html"]
    return files


def _typed(response: Response, content_type: str) -> Response:
    # respond() sets Content-Length for the body; only the type changes here.
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = content_type
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def file_response(connection: ServerConnection, file: StaticFile) -> Response:
    response = connection.respond(HTTPStatus.OK, file.text)
    if file.content_type.startswith("text/html"):
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:"
        )
    return _typed(response, file.content_type)


def json_response(connection: ServerConnection, status: HTTPStatus, body: object) -> Response:
    return _typed(connection.respond(status, orjson.dumps(body).decode()), "application/json")


def error_response(connection: ServerConnection, status: HTTPStatus, message: str) -> Response:
    return json_response(connection, status, {"error": {"code": status.name, "message": message}})
