"""Composition root of the worker service."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence

import grpc

from nodedrop.common.auth import Authenticator
from nodedrop.common.logging import get_logger
from nodedrop.common.metrics import get_metrics
from nodedrop.common.server import HealthReporter
from nodedrop.queue.v1 import worker_service_pb2, worker_service_pb2_grpc
from nodedrop.runtime.consumer import Consumer, ConsumerConfig
from nodedrop.runtime.engine_runner import EngineRunner, build_config
from nodedrop.store import Store
from nodedrop.store.config import StoreConfig
from nodedrop.store.factory import open_store
from nodedrop.store.keys import Keys
from nodedrop.worker.servicer import WorkerServicer
from nodedrop.worker.settings import WorkerSettings

__all__ = ["WorkerService", "create_service", "store_config"]

log = get_logger("nodedrop.worker")

# How often readiness follows the consumer: a probe sees a Redis outage or a
# drain within about this long.
_READINESS_POLL_S = 0.25


def store_config(settings: WorkerSettings) -> StoreConfig:
    return StoreConfig(
        keys=Keys(settings.redis.prefix, settings.redis.partitions),
        lanes=settings.consumer.lanes,
        state_ttl_s=settings.execution.state_ttl_s,
        completion_ttl_s=settings.execution.completion_ttl_s,
        tenant_max_active=settings.execution.tenant_max_active,
    )


class WorkerService:
    name = "worker"

    def __init__(self, settings: WorkerSettings, *, dev: bool = False) -> None:
        self._settings = settings
        # `nodedrop dev` passes dev=True: without Redis it runs on the in-memory store.
        self._dev = dev
        self._store: Store | None = None
        self._consumer: Consumer | None = None
        self._drain_task: asyncio.Task[None] | None = None
        # DrainWorker's grace, when it asked for one (see _grace).
        self._requested_grace_s: float | None = None
        self._health: HealthReporter | None = None
        self._readiness_task: asyncio.Task[None] | None = None

    @property
    def authenticator(self) -> Authenticator | None:
        # No tenant calls: the admin methods are internal, for nodedrop
        # services and operators holding the service credential.
        return None

    @property
    def consumer(self) -> Consumer | None:
        return self._consumer

    def bind_health(self, reporter: HealthReporter) -> None:
        self._health = reporter

    async def _follow_readiness(self, consumer: Consumer, reporter: HealthReporter) -> None:
        # Ready means consuming: not while Redis is unreachable, not once draining.
        while True:
            counters = consumer.counters()
            await reporter.set_ready(counters.consuming and not counters.draining)
            await asyncio.sleep(_READINESS_POLL_S)

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        c = self._settings.consumer
        servicer = WorkerServicer(
            lambda: self._consumer,
            c.worker_id,
            self._settings.execution.worker_concurrency,
            self._drain,
        )
        worker_service_pb2_grpc.add_WorkerServiceServicer_to_server(servicer, server)
        return [worker_service_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name]

    async def start(self) -> None:
        s = self._settings
        # Plugins load first: a bad NODEDROP_PLUGINS stops the start with its error.
        runner = EngineRunner(build_config(s.consumer.plugins, s.engine))
        config = store_config(s)
        self._store = await open_store(s.redis.url, config, dev=self._dev, url_set=s.redis.url_set)
        self._consumer = Consumer(
            self._store,
            runner,
            ConsumerConfig(
                worker_id=s.consumer.worker_id,
                concurrency=s.execution.worker_concurrency,
                lease_s=s.consumer.lease_s,
                heartbeat_s=s.consumer.heartbeat_s,
                read_block_s=s.consumer.read_block_s,
                read_batch=s.read_batch,
            ),
            metrics=get_metrics(),
        )
        await self._consumer.start()
        if self._health is not None:
            self._readiness_task = asyncio.create_task(
                self._follow_readiness(self._consumer, self._health), name="readiness"
            )
        log.info(
            "worker consuming",
            worker_id=s.consumer.worker_id,
            concurrency=s.execution.worker_concurrency,
            store=type(self._store).__name__,
        )

    def _grace(self) -> float:
        """The configured grace, or DrainWorker's if it asked for less: the process
        lifecycle stops the service within the configured one, so a longer drain
        than that would be cut short anyway."""
        configured = self._settings.server.shutdown_grace_s
        if self._requested_grace_s is None:
            return configured
        return min(configured, self._requested_grace_s)

    def _drain(self, grace_s: float | None) -> None:
        if self._consumer is None:
            return
        self._requested_grace_s = grace_s
        self._consumer.begin_drain()
        if self._dev:
            # One process hosts every service: drain the consumer, leave the rest up.
            if self._drain_task is None:
                self._drain_task = asyncio.create_task(self._consumer.stop(self._grace()))
            return
        # As SIGTERM does: the process lifecycle drains and exits 0.
        os.kill(os.getpid(), signal.SIGTERM)

    async def stop(self) -> None:
        if self._readiness_task is not None:
            self._readiness_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._readiness_task
        if self._consumer is not None:
            await self._consumer.stop(self._grace())
        if self._store is not None:
            await self._store.close()


def create_service(settings: WorkerSettings, *, dev: bool = False) -> WorkerService:
    return WorkerService(settings, dev=dev)
