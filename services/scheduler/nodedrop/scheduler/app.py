"""Composition root of the scheduler service."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from nodedrop.common.auth import Authenticator
from nodedrop.common.client import open_channel
from nodedrop.common.logging import get_logger
from nodedrop.common.metrics import get_metrics
from nodedrop.queue.v1 import scheduler_service_pb2, scheduler_service_pb2_grpc
from nodedrop.runtime.plugins import build_registry
from nodedrop.scheduler.convert import now_ms
from nodedrop.scheduler.firing import Firing
from nodedrop.scheduler.maintenance import Maintenance
from nodedrop.scheduler.runs import ApiRunStarter
from nodedrop.scheduler.schedules import ScheduleStore, StoredSchedules
from nodedrop.scheduler.servicer import SchedulerServicer
from nodedrop.scheduler.settings import SchedulerSettings
from nodedrop.store import Store
from nodedrop.store.config import StoreConfig
from nodedrop.store.factory import open_store
from nodedrop.store.keys import Keys

__all__ = ["SchedulerService", "create_service"]

log = get_logger("nodedrop.scheduler")


def store_config(settings: SchedulerSettings) -> StoreConfig:
    return StoreConfig(
        keys=Keys(settings.redis.prefix, settings.redis.partitions),
        lanes=settings.queue.lanes,
        state_ttl_s=settings.execution.state_ttl_s,
        completion_ttl_s=settings.execution.completion_ttl_s,
        tenant_max_active=settings.execution.tenant_max_active,
    )


class SchedulerService:
    name = "scheduler"

    def __init__(self, settings: SchedulerSettings, *, dev: bool = False) -> None:
        self._settings = settings
        # `nodedrop dev` passes dev=True: without Redis it runs on the in-memory store.
        self._dev = dev
        self._store: Store | None = None
        self._schedules: ScheduleStore | None = None
        self._maintenance: Maintenance | None = None
        self._firing: Firing | None = None
        self._api_channel: grpc.aio.Channel | None = None
        self._registry = build_registry(settings.queue.plugins)

    @property
    def authenticator(self) -> Authenticator | None:
        # No tenant calls: every method is internal, for nodedrop services
        # only (the server's service verifier), which name the tenant.
        return None

    @property
    def store(self) -> Store | None:
        """The store in use once started (in `nodedrop dev`, maybe the shared in-memory one)."""
        return self._store

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        if self._store is None or self._schedules is None or self._firing is None:
            raise RuntimeError("SchedulerService.start() must run before register()")
        scheduler_service_pb2_grpc.add_SchedulerServiceServicer_to_server(
            SchedulerServicer(
                self._store, self._store, self._schedules, self._registry, self._firing
            ),
            server,
        )
        return [scheduler_service_pb2.DESCRIPTOR.services_by_name["SchedulerService"].full_name]

    async def start(self) -> None:
        s = self._settings
        config = store_config(s)
        self._store = await open_store(s.redis.url, config, dev=self._dev, url_set=s.redis.url_set)
        self._schedules = StoredSchedules(self._store)
        q = s.queue
        # Cron runs are committed by the API, as every execution is.
        self._api_channel = open_channel(
            s.addresses.api,
            max_message_bytes=s.server.grpc_max_message_bytes,
            tls=s.security.tls,
        )
        self._firing = Firing(
            self._schedules,
            self._store,
            ApiRunStarter(self._api_channel, s.security.metadata()),
            late_ms=int(q.schedule_late_s * 1000),
            clock=now_ms,
        )
        self._maintenance = Maintenance(
            self._store,
            self._firing,
            lease_s=q.lease_s,
            max_reclaims=q.max_reclaims,
            mover_interval_s=q.mover_interval_s,
            reclaim_interval_s=q.reclaim_interval_s,
            cron_interval_s=q.cron_interval_s,
            sample_interval_s=q.sample_interval_s,
            metrics=get_metrics(),
        )
        self._maintenance.start()
        log.info("scheduler started", store=type(self._store).__name__)

    async def stop(self) -> None:
        if self._maintenance is not None:
            await self._maintenance.stop()
        if self._store is not None:
            await self._store.close()
        if self._api_channel is not None:
            await self._api_channel.close()


def create_service(settings: SchedulerSettings, *, dev: bool = False) -> SchedulerService:
    return SchedulerService(settings, dev=dev)
