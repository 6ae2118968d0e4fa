"""Composition root of the events service."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from nodedrop.common.auth import Authenticator, RemoteAuthenticator
from nodedrop.common.client import open_channel
from nodedrop.event.v1 import event_service_pb2, event_service_pb2_grpc
from nodedrop.events.settings import EventsSettings

__all__ = ["EventsService", "create_service"]


class EventsService:
    name = "events"

    def __init__(self, settings: EventsSettings, *, dev: bool = False) -> None:
        self._settings = settings
        # `nodedrop dev` passes dev=True: the hook for the in-memory adapters.
        self._dev = dev
        self._api_channel: grpc.aio.Channel | None = None
        self._authenticator: RemoteAuthenticator | None = None

    @property
    def authenticator(self) -> Authenticator | None:
        # Credentials are checked by the API's AuthService (cached briefly).
        return self._authenticator

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        # The generated base class answers UNIMPLEMENTED until replaced.
        event_service_pb2_grpc.add_EventServiceServicer_to_server(
            # The generated base class is abstract to mypy only.
            event_service_pb2_grpc.EventServiceServicer(),  # type: ignore[abstract]
            server,
        )
        return [event_service_pb2.DESCRIPTOR.services_by_name["EventService"].full_name]

    async def start(self) -> None:
        self._api_channel = open_channel(
            self._settings.addresses.api,
            max_message_bytes=self._settings.server.grpc_max_message_bytes,
        )
        self._authenticator = RemoteAuthenticator(self._api_channel)

    async def stop(self) -> None:
        channel, self._api_channel = self._api_channel, None
        if channel is not None:
            await channel.close()


def create_service(settings: EventsSettings, *, dev: bool = False) -> EventsService:
    return EventsService(settings, dev=dev)
