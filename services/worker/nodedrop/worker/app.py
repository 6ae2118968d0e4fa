"""Composition root of the worker service."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from nodedrop.common.auth import Authenticator
from nodedrop.queue.v1 import worker_service_pb2, worker_service_pb2_grpc
from nodedrop.worker.settings import WorkerSettings

__all__ = ["WorkerService", "create_service"]


class WorkerService:
    name = "worker"

    def __init__(self, settings: WorkerSettings, *, dev: bool = False) -> None:
        self._settings = settings
        # `nodedrop dev` passes dev=True: the hook for the in-memory adapters.
        self._dev = dev

    @property
    def authenticator(self) -> Authenticator | None:
        # Admin endpoint on the internal network only.
        return None

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        # The generated base class answers UNIMPLEMENTED until replaced.
        worker_service_pb2_grpc.add_WorkerServiceServicer_to_server(
            # The generated base class is abstract to mypy only.
            worker_service_pb2_grpc.WorkerServiceServicer(),  # type: ignore[abstract]
            server,
        )
        return [worker_service_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name]

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def create_service(settings: WorkerSettings, *, dev: bool = False) -> WorkerService:
    return WorkerService(settings, dev=dev)
