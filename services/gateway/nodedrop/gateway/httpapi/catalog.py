"""The RPCs the HTTP API exposes, read from the services' descriptors.

Every method of the public services is exposed, so an RPC added to one of
their protos is served (and documented) without code here; the internal ones
(``DEFAULT_INTERNAL_METHODS``: the scheduler's and workers' services,
AuthService.Authenticate) never are, whatever a channel could reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from nodedrop.admin.v1 import queue_admin_service_pb2
from nodedrop.auth.v1 import auth_service_pb2
from nodedrop.common.interceptors import DEFAULT_INTERNAL_METHODS, DEFAULT_PUBLIC_METHODS
from nodedrop.event.v1 import event_service_pb2
from nodedrop.execution.v1 import execution_service_pb2
from nodedrop.workflow.v1 import workflow_service_pb2

__all__ = ["Method", "Upstream", "public_methods"]


class Upstream(Enum):
    API = "api"
    EVENTS = "events"


_SERVICES: tuple[tuple[ServiceDescriptor, Upstream], ...] = (
    (execution_service_pb2.DESCRIPTOR.services_by_name["ExecutionService"], Upstream.API),
    (workflow_service_pb2.DESCRIPTOR.services_by_name["WorkflowService"], Upstream.API),
    (auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"], Upstream.API),
    (queue_admin_service_pb2.DESCRIPTOR.services_by_name["QueueAdminService"], Upstream.API),
    (event_service_pb2.DESCRIPTOR.services_by_name["EventService"], Upstream.EVENTS),
)


@dataclass(frozen=True, slots=True)
class Method:
    path: str  # /package.Service/Method, as gRPC and Connect both name it
    descriptor: MethodDescriptor
    request: type[Message]
    response: type[Message]
    server_streaming: bool
    upstream: Upstream
    # Callable without a key (the API's own public list says which).
    public: bool


def _listed(path: str, names: frozenset[str]) -> bool:
    return any(path == n or (n.endswith("/") and path.startswith(n)) for n in names)


def public_methods() -> tuple[Method, ...]:
    methods: list[Method] = []
    for service, upstream in _SERVICES:
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            if _listed(path, DEFAULT_INTERNAL_METHODS) or method.client_streaming:
                continue
            methods.append(
                Method(
                    path=path,
                    descriptor=method,
                    request=message_factory.GetMessageClass(method.input_type),
                    response=message_factory.GetMessageClass(method.output_type),
                    server_streaming=method.server_streaming,
                    upstream=upstream,
                    public=_listed(path, DEFAULT_PUBLIC_METHODS),
                )
            )
    return tuple(methods)
