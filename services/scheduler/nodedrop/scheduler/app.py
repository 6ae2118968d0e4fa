"""Composition root of the scheduler service."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from nodedrop.common.auth import Authenticator
from nodedrop.queue.v1 import scheduler_service_pb2, scheduler_service_pb2_grpc
from nodedrop.scheduler.settings import SchedulerSettings

__all__ = ["SchedulerService", "create_service"]


class SchedulerService:
    name = "scheduler"

    def __init__(self, settings: SchedulerSettings, *, dev: bool = False) -> None:
        self._settings = settings
        # `nodedrop dev` passes dev=True: the hook for the in-memory adapters.
        self._dev = dev

    @property
    def authenticator(self) -> Authenticator | None:
        # Internal service: the API authenticated the caller already.
        return None

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        # The generated base class answers UNIMPLEMENTED until replaced.
        scheduler_service_pb2_grpc.add_SchedulerServiceServicer_to_server(
            # The generated base class is abstract to mypy only.
            scheduler_service_pb2_grpc.SchedulerServiceServicer(),  # type: ignore[abstract]
            server,
        )
        return [scheduler_service_pb2.DESCRIPTOR.services_by_name["SchedulerService"].full_name]

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def create_service(settings: SchedulerSettings, *, dev: bool = False) -> SchedulerService:
    return SchedulerService(settings, dev=dev)
