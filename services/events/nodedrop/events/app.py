"""Composition root of the events service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import grpc

from nodedrop.common.auth import Authenticator, RemoteAuthenticator
from nodedrop.common.client import open_channel
from nodedrop.common.logging import get_logger
from nodedrop.common.metrics import get_metrics
from nodedrop.common.server import HealthReporter
from nodedrop.events.batching import DEFAULT_MAX_BATCH_BYTES
from nodedrop.events.feed import LiveFeed
from nodedrop.events.history import ApiHistory
from nodedrop.events.hub import FanoutHub
from nodedrop.events.servicer import SERVICE_NAME, EventServicer, add_to_server
from nodedrop.events.settings import EventsSettings
from nodedrop.events.subscription import Subscriptions
from nodedrop.store import Keys, Store
from nodedrop.store.config import StoreConfig
from nodedrop.store.factory import open_store

__all__ = ["EventsService", "create_service"]

log = get_logger("nodedrop.events")


class EventsService:
    name = "events"

    def __init__(self, settings: EventsSettings, *, dev: bool = False) -> None:
        self._settings = settings
        # `nodedrop dev` passes dev=True: without Redis, the shared in-memory store.
        self._dev = dev
        self._api_channel: grpc.aio.Channel | None = None
        self._authenticator: RemoteAuthenticator | None = None
        self._store: Store | None = None
        self._feed_task: asyncio.Task[None] | None = None
        self.hub = FanoutHub(settings.subscriber_buffer, get_metrics())
        self._servicer: EventServicer | None = None
        self._health: HealthReporter | None = None

    @property
    def authenticator(self) -> Authenticator | None:
        # Credentials are checked by the API's AuthService (cached briefly).
        return self._authenticator

    def bind_health(self, reporter: HealthReporter) -> None:
        self._health = reporter

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        # GrpcServer calls start() (which builds the servicer) before register().
        if self._servicer is None:
            raise RuntimeError("register() called before start()")
        add_to_server(self._servicer, server)
        return [SERVICE_NAME]

    async def start(self) -> None:
        security = self._settings.security
        self._api_channel = open_channel(
            self._settings.addresses.api,
            max_message_bytes=self._settings.server.grpc_max_message_bytes,
            tls=security.tls,
        )
        self._authenticator = RemoteAuthenticator(
            self._api_channel,
            ttl_s=self._settings.auth_cache_ttl_s,
            metadata=security.metadata(),
        )
        redis = self._settings.redis
        config = StoreConfig(keys=Keys(prefix=redis.prefix, partitions=redis.partitions))
        self._store = await open_store(redis.url, config, dev=self._dev, url_set=redis.url_set)
        # Ready means the live feed reads: a subscription waits for it to pin
        # its start, and a feed that fails serves nothing new.
        health = self._health
        if health is not None:
            await health.set_ready(False)
        feed = LiveFeed(self._store, self.hub, health=health.set_ready if health else None)
        self._feed_task = asyncio.create_task(feed.run(), name="events-feed")
        subscriptions = Subscriptions(
            self.hub, self._store, feed.ready, history=ApiHistory(self._api_channel)
        )
        self._servicer = EventServicer(
            subscriptions,
            self._authenticator,
            recheck_s=self._settings.auth_cache_ttl_s / 2,
            # Half the configured limit leaves room for a client that set the same one.
            max_batch_bytes=min(
                DEFAULT_MAX_BATCH_BYTES, self._settings.server.grpc_max_message_bytes // 2
            ),
        )

    async def stop(self) -> None:
        task, self._feed_task = self._feed_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        store, self._store = self._store, None
        if store is not None:
            await store.close()
        channel, self._api_channel = self._api_channel, None
        if channel is not None:
            await channel.close()


def create_service(settings: EventsSettings, *, dev: bool = False) -> EventsService:
    return EventsService(settings, dev=dev)
