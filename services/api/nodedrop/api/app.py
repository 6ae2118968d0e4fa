"""Composition root of the API service: builds its servicers and resources."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from nodedrop.api.settings import ApiSettings
from nodedrop.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from nodedrop.common.auth import Authenticator
from nodedrop.execution.v1 import execution_service_pb2, execution_service_pb2_grpc
from nodedrop.workflow.v1 import workflow_service_pb2, workflow_service_pb2_grpc

__all__ = ["ApiService", "create_service"]


class ApiService:
    name = "api"

    def __init__(self, settings: ApiSettings, *, dev: bool = False) -> None:
        self._settings = settings
        # `nodedrop dev` passes dev=True: the hook for the in-memory/embedded
        # adapters and the development API key.
        self._dev = dev

    @property
    def authenticator(self) -> Authenticator | None:
        # Until the key table is wired in, calls are not authenticated here.
        return None

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        # The generated base classes answer UNIMPLEMENTED for every RPC until
        # the real servicers replace them.
        execution_service_pb2_grpc.add_ExecutionServiceServicer_to_server(
            # The generated base class is abstract to mypy only.
            execution_service_pb2_grpc.ExecutionServiceServicer(),  # type: ignore[abstract]
            server,
        )
        workflow_service_pb2_grpc.add_WorkflowServiceServicer_to_server(
            # The generated base class is abstract to mypy only.
            workflow_service_pb2_grpc.WorkflowServiceServicer(),  # type: ignore[abstract]
            server,
        )
        auth_service_pb2_grpc.add_AuthServiceServicer_to_server(
            # The generated base class is abstract to mypy only.
            auth_service_pb2_grpc.AuthServiceServicer(),  # type: ignore[abstract]
            server,
        )
        return [
            execution_service_pb2.DESCRIPTOR.services_by_name["ExecutionService"].full_name,
            workflow_service_pb2.DESCRIPTOR.services_by_name["WorkflowService"].full_name,
            auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
        ]

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def create_service(settings: ApiSettings, *, dev: bool = False) -> ApiService:
    return ApiService(settings, dev=dev)
