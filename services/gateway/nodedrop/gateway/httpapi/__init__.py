"""The HTTP/JSON API: Connect unary and server-streaming JSON for every public
RPC, driven by the protobuf descriptors, plus plain ``/api/...`` routes and
their OpenAPI document. One ASGI application, mounted by the gateway."""

from nodedrop.gateway.httpapi.app import create_http_api
from nodedrop.gateway.httpapi.settings import HttpApiSettings

__all__ = ["HttpApiSettings", "create_http_api"]
