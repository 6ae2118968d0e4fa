"""A tiny EventService used to test the server bootstrap through the real
production path (interceptors, health, reflection, run_service, signals).

In-process tests host ``StreamTestService`` with ``GrpcServer``; the
subprocess tests run this module (``python -m tests.common.stream_app``),
listening on NODEDROP_TEST_PORT.

StreamExecutionEvents:
- empty ``execution_id``: InvalidArgument with a field violation;
- ``execution_id == "boom"``: an unexpected exception (must not leak);
- ``execution_id == "whoami"``: one event whose workflow_id is the caller's tenant;
- otherwise: STREAM_EVENTS events, STREAM_INTERVAL_S apart.

WorkerService (unary RPCs through the same path):
- DrainWorker with a negative grace: InvalidArgument on ``grace``;
- GetWorkerStatus: an unexpected exception.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from nodedrop.common.auth import Authenticator, Principal, current_principal
from nodedrop.common.errors import InvalidArgument, Unauthenticated
from nodedrop.common.logging import configure_logging
from nodedrop.common.security import SecuritySettings
from nodedrop.common.server import GrpcServer, run_service
from nodedrop.common.settings import Address, LogSettings, ServerSettings, env_int, process_env
from nodedrop.event.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc
from nodedrop.queue.v1 import worker_service_pb2, worker_service_pb2_grpc

STREAM_EVENTS = 5
STREAM_INTERVAL_S = 0.3
API_KEY = "test-key"


class StaticAuthenticator:
    """Accepts one key; what the API's key table does, reduced to a constant."""

    async def authenticate(self, credential: str) -> Principal:
        if credential != API_KEY:
            raise Unauthenticated("invalid api key")
        return Principal(tenant_id="tenant-1", scopes=frozenset({"read"}), key_id="k1")


class StreamTestServicer(event_service_pb2_grpc.EventServiceServicer):
    async def StreamExecutionEvents(
        self, request: event_service_pb2.StreamExecutionEventsRequest, context: Any
    ) -> AsyncIterator[event_service_pb2.StreamExecutionEventsResponse]:
        if not request.execution_id:
            raise InvalidArgument.field("execution_id", "must not be empty")
        if request.execution_id == "boom":
            raise RuntimeError("secret internal detail")
        if request.execution_id == "whoami":
            tenant = current_principal().tenant_id
            yield _response(request.execution_id, 1, workflow_id=tenant)
            return
        for sequence in range(1, STREAM_EVENTS + 1):
            yield _response(request.execution_id, sequence)
            if sequence < STREAM_EVENTS:
                await asyncio.sleep(STREAM_INTERVAL_S)

    async def StreamEvents(
        self, request: event_service_pb2.StreamEventsRequest, context: Any
    ) -> AsyncIterator[event_service_pb2.StreamEventsResponse]:
        # Not used by the tests: an unfiltered subscription with no events.
        for _ in ():
            yield event_service_pb2.StreamEventsResponse()


class WorkerTestServicer(worker_service_pb2_grpc.WorkerServiceServicer):
    async def DrainWorker(
        self, request: worker_service_pb2.DrainWorkerRequest, context: Any
    ) -> worker_service_pb2.DrainWorkerResponse:
        if request.HasField("grace") and request.grace.ToTimedelta().total_seconds() < 0:
            raise InvalidArgument.field("grace", "must not be negative")
        return worker_service_pb2.DrainWorkerResponse(active_jobs=0)

    async def GetWorkerStatus(
        self, request: worker_service_pb2.GetWorkerStatusRequest, context: Any
    ) -> worker_service_pb2.GetWorkerStatusResponse:
        raise RuntimeError("secret internal detail")


def _response(
    execution_id: str, sequence: int, workflow_id: str = ""
) -> event_service_pb2.StreamExecutionEventsResponse:
    return event_service_pb2.StreamExecutionEventsResponse(
        events=[
            event_pb2.ExecutionEvent(
                execution_id=execution_id, sequence=sequence, workflow_id=workflow_id
            )
        ]
    )


class StreamTestService:
    name = "stream-test"

    def __init__(self, authenticator: Authenticator | None = None) -> None:
        self._authenticator = authenticator
        self.started = False
        self.stopped = False

    @property
    def authenticator(self) -> Authenticator | None:
        return self._authenticator

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        event_service_pb2_grpc.add_EventServiceServicer_to_server(StreamTestServicer(), server)
        worker_service_pb2_grpc.add_WorkerServiceServicer_to_server(WorkerTestServicer(), server)
        return [
            event_service_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,
            worker_service_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name,
        ]

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True


def main() -> int:
    env = process_env()
    port = env_int(env, "NODEDROP_TEST_PORT", 0, minimum=1, maximum=65535)
    settings = ServerSettings.from_env(env, Address("127.0.0.1", port))
    configure_logging(LogSettings.from_env(env))
    # WorkerService is internal: the credential start_service passes opens it.
    server = GrpcServer(StreamTestService(), settings, security=SecuritySettings.from_env(env))
    return run_service([server], settings.shutdown_grace_s)


if __name__ == "__main__":
    sys.exit(main())
