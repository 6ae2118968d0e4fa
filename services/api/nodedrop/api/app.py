"""Composition root of the API service: builds its servicers and resources.

Production: PostgreSQL (migrated at start), the scheduler over gRPC for
queue mode, the store (Redis) for enqueues, direct runs, history and the
result cache. `nodedrop dev` with DATABASE_URL
unset and no PostgreSQL on the default port uses the embedded SQLite store,
and registers (or creates and prints) the development API key.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from urllib.parse import urlparse

import asyncpg
import grpc
import orjson

from nodedrop.admin.v1 import queue_admin_service_pb2, queue_admin_service_pb2_grpc
from nodedrop.api import migrations
from nodedrop.api.activation import Activations, SchedulerSchedules
from nodedrop.api.auth_servicer import AuthServicer
from nodedrop.api.authenticator import KeyAuthenticator
from nodedrop.api.batching import InsertBatcher
from nodedrop.api.direct import DirectRunner
from nodedrop.api.errors import StoreUnavailableError
from nodedrop.api.execution_servicer import ExecutionLimits, ExecutionServicer
from nodedrop.api.executions import ExecutionManager
from nodedrop.api.failed_rebuild import FailedQueueRebuild
from nodedrop.api.inline_definitions import InlineDefinitions
from nodedrop.api.limits import TokenBuckets
from nodedrop.api.model import Status
from nodedrop.api.provisioning import dev_key_file, ensure_dev_key
from nodedrop.api.queue_admin_servicer import QueueAdminServicer
from nodedrop.api.queueing import QueuePort, SchedulerQueue
from nodedrop.api.recorder import HistoryRecorder
from nodedrop.api.recovery import OrphanRecovery
from nodedrop.api.repository import ExecutionRepository
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.api.repository_sqlite import SqliteRepository
from nodedrop.api.result_cache import ResultCache
from nodedrop.api.schedule_run_servicer import ScheduleRunServicer
from nodedrop.api.settings import ApiSettings
from nodedrop.api.store_queue import StoreQueue
from nodedrop.api.subworkflows import SubworkflowPins
from nodedrop.api.validation import Rules
from nodedrop.api.webhook_servicer import WebhookServicer
from nodedrop.api.workflow_cache import WorkflowCache
from nodedrop.api.workflow_servicer import WorkflowServicer
from nodedrop.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from nodedrop.common.auth import Authenticator
from nodedrop.common.client import open_channel
from nodedrop.common.logging import get_logger
from nodedrop.common.startup import DependencyUnavailable
from nodedrop.execution.v1 import execution_service_pb2, execution_service_pb2_grpc
from nodedrop.queue.v1 import scheduler_service_pb2, scheduler_service_pb2_grpc
from nodedrop.runtime.engine_runner import build_config
from nodedrop.store import BlobCache, FailedQueueStore, Keys, Store
from nodedrop.store.config import StoreConfig
from nodedrop.store.factory import open_store
from nodedrop.webhook.v1 import webhook_service_pb2, webhook_service_pb2_grpc
from nodedrop.workflow.v1 import workflow_service_pb2, workflow_service_pb2_grpc

__all__ = ["ApiService", "create_service"]

log = get_logger("nodedrop.api")


def _listening(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or default_port
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


class ApiService:
    name = "api"

    def __init__(
        self,
        settings: ApiSettings,
        *,
        dev: bool = False,
        repository: ExecutionRepository | None = None,
        queue: QueuePort | None = None,
    ) -> None:
        """`repository` and `queue` given here are used as they are (tests)."""
        self._settings = settings
        self._dev = dev
        # Plugins load first: a bad NODEDROP_PLUGINS stops the start with its error.
        self._engine_config = build_config(settings.plugins, settings.engine)
        self._repo = repository
        self._owns_repo = repository is None
        self._queue = queue
        self._channel: grpc.aio.Channel | None = None
        self._authenticator: KeyAuthenticator | None = None
        self._batcher: InsertBatcher | None = None
        self._recorder: HistoryRecorder | None = None
        self._store: Store | None = None
        self._direct: DirectRunner | None = None
        self._manager: ExecutionManager | None = None
        self._store_queue: StoreQueue | None = None
        self._recovery: OrphanRecovery | None = None
        self.dev_key: str | None = None

    @property
    def authenticator(self) -> Authenticator | None:
        return self._authenticator

    @property
    def recovery(self) -> OrphanRecovery:
        if self._recovery is None:
            raise RuntimeError("the API service is not started")
        return self._recovery

    @property
    def repository(self) -> ExecutionRepository:
        if self._repo is None:
            raise RuntimeError("the API service is not started")
        return self._repo

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        repo = self.repository
        s = self._settings
        assert self._authenticator is not None and self._batcher is not None
        cache = (
            ResultCache(self._store, self._store, ttl_s=s.api.result_cache_ttl_s)
            if isinstance(self._store, BlobCache) and s.api.result_cache_ttl_s > 0
            else None
        )
        manager = self._manager
        assert manager is not None
        limits = ExecutionLimits(
            max_request_bytes=s.limits.max_payload_bytes,
            max_trigger_bytes=s.api.max_trigger_bytes,
            max_nodes=s.limits.max_nodes,
            rate=(
                TokenBuckets(s.api.rate_per_s, s.api.rate_burst) if s.api.rate_per_s > 0 else None
            ),
            default_mode=s.api.default_mode,
            engine=self._engine_config,
        )
        workflows = WorkflowCache(repo)
        pins = SubworkflowPins(workflows, self._engine_config, max_bytes=s.limits.max_payload_bytes)
        execution_service_pb2_grpc.add_ExecutionServiceServicer_to_server(
            ExecutionServicer(
                repo, manager, self._queue, cache, limits, workflows=workflows, pins=pins
            ),
            server,
        )
        schedules = (
            SchedulerSchedules(self._channel, s.security.metadata())
            if self._channel is not None
            else None
        )
        activations = Activations(workflows, repo, schedules, pins)
        workflow_service_pb2_grpc.add_WorkflowServiceServicer_to_server(
            WorkflowServicer(
                repo,
                max_nodes=s.limits.max_nodes,
                cache=workflows,
                engine=self._engine_config,
                activations=activations,
            ),
            server,
        )
        auth_service_pb2_grpc.add_AuthServiceServicer_to_server(
            AuthServicer(
                repo,
                self._authenticator,
                ticket_ttl_s=s.api.ticket_ttl_s,
                max_ticket_ttl_s=s.api.max_ticket_ttl_s,
            ),
            server,
        )
        store = self._store
        assert store is not None
        webhook_service_pb2_grpc.add_WebhookServiceServicer_to_server(
            WebhookServicer(
                repo,
                workflows,
                manager,
                self._authenticator,
                pins,
                events=store,
                # The same buckets as ExecuteWorkflow: a webhook is no way around the limit.
                rate=limits.rate,
                max_trigger_bytes=s.api.max_trigger_bytes,
                default_mode=s.api.default_mode,
                max_message_bytes=s.server.grpc_max_message_bytes,
            ),
            server,
        )
        queue_admin_service_pb2_grpc.add_QueueAdminServiceServicer_to_server(
            QueueAdminServicer(self._channel, s.security.metadata(), repo, workflows, pins),
            server,
        )
        scheduler_service_pb2_grpc.add_ScheduleRunServiceServicer_to_server(
            ScheduleRunServicer(
                manager,
                InlineDefinitions(Rules(max_nodes=s.limits.max_nodes, engine=self._engine_config)),
            ),
            server,
        )
        return [
            execution_service_pb2.DESCRIPTOR.services_by_name["ExecutionService"].full_name,
            workflow_service_pb2.DESCRIPTOR.services_by_name["WorkflowService"].full_name,
            auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
            queue_admin_service_pb2.DESCRIPTOR.services_by_name["QueueAdminService"].full_name,
            scheduler_service_pb2.DESCRIPTOR.services_by_name["ScheduleRunService"].full_name,
            webhook_service_pb2.DESCRIPTOR.services_by_name["WebhookService"].full_name,
        ]

    async def _open_repository(self) -> ExecutionRepository:
        s = self._settings
        embedded = self._dev and not s.api.database_url_set and not _listening(s.postgres.url, 5432)
        if embedded:
            log.warning(
                "DATABASE_URL is not set and nothing answers at the default address: "
                "using the embedded store",
                path=s.api.sqlite_path,
            )
            return await SqliteRepository.open(s.api.sqlite_path)
        try:
            if s.api.run_migrations:
                applied = await migrations.apply(
                    s.postgres.url, statement_cache_size=s.postgres.statement_cache_size
                )
                if applied:
                    log.info("migrations applied", versions=applied)
            return await PostgresRepository.connect(
                s.postgres.url,
                min_size=s.postgres.pool_min_size,
                max_size=s.postgres.pool_max_size,
                command_timeout=s.postgres.command_timeout_s,
                statement_cache_size=s.postgres.statement_cache_size,
            )
        except (OSError, TimeoutError, ValueError, asyncpg.PostgresError) as exc:
            # Refused, unreachable, wrong password, no such database, or a
            # URL the driver cannot parse: the operator fixes DATABASE_URL.
            raise DependencyUnavailable("PostgreSQL", "DATABASE_URL", exc) from None
        except StoreUnavailableError as exc:
            raise DependencyUnavailable("PostgreSQL", "DATABASE_URL", exc.reason) from None

    async def start(self) -> None:
        s = self._settings
        if self._repo is None:
            self._repo = await self._open_repository()
        config = StoreConfig(
            keys=Keys(prefix=s.redis.prefix, partitions=s.redis.partitions),
            state_ttl_s=s.execution.state_ttl_s,
            completion_ttl_s=s.execution.completion_ttl_s,
            tenant_max_active=s.execution.tenant_max_active,
        )
        # In `nodedrop dev`, as its scheduler, workers and events service decide:
        # Redis when it answers, else the shared in-memory store.
        self._store = await open_store(s.redis.url, config, dev=self._dev, url_set=s.redis.url_set)
        self._authenticator = KeyAuthenticator(self._repo)
        self._batcher = InsertBatcher(self._repo, linger_s=s.api.batch_linger_s)
        self._batcher.start()
        if self._queue is None:
            self._channel = open_channel(
                s.addresses.scheduler,
                max_message_bytes=s.server.grpc_max_message_bytes,
                tls=s.security.tls,
            )
            self._queue = SchedulerQueue(self._channel, metadata=s.security.metadata())
            if s.api.enqueue_via == "store":
                self._store_queue = StoreQueue(self._store, self._queue)
                self._store_queue.start()
                self._queue = self._store_queue
                self._batcher.handoff = self._store_queue
        self._direct = DirectRunner(
            self._store,
            self._store.config,
            engine=self._engine_config,
            on_failure=self._direct_failed,
        )
        self._recorder = HistoryRecorder(
            self._store,
            self._repo,
            consumer=f"api-{socket.gethostname()}-{os.getpid()}",
            claim_idle_s=s.api.history_claim_idle_s,
        )
        self._recorder.start()
        self._manager = ExecutionManager(
            self._repo, self._batcher, self._queue, direct=self._direct
        )
        self._recovery = OrphanRecovery(
            self._repo,
            self._queue,
            self._manager,
            interval_s=s.api.recovery_interval_s,
            min_age_s=s.api.recovery_min_age_s,
            events=self._store,
            failed_rebuild=(
                FailedQueueRebuild(self._repo, self._store, window_s=self._store.config.state_ttl_s)
                if isinstance(self._store, FailedQueueStore) and self._queue is not None
                else None
            ),
        )
        self._recovery.start()
        if self._dev:
            # `nodedrop dev` prints it once every service serves.
            self.dev_key = await ensure_dev_key(
                self._repo, s.api.dev_api_key or None, dev_key_file(s.api.sqlite_path)
            )

    async def _direct_failed(self, execution_id: str, reason: str) -> None:
        error = orjson.dumps({"message": reason, "code": "unavailable", "retryable": True})
        try:
            await self.repository.set_status(execution_id, Status.FAILED, error.decode())
        except StoreUnavailableError as exc:
            # PostgreSQL is away too: orphan recovery fails it later.
            log.warning("could not record a failed direct run", error=str(exc))

    async def stop(self) -> None:
        if self._recovery is not None:
            await self._recovery.stop()
        if self._direct is not None:
            await self._direct.stop()
        if self._recorder is not None:
            await self._recorder.stop()
        # The INSERT flush in flight hands its jobs on to the store queue: stop
        # it first, so they are enqueued rather than failed.
        if self._batcher is not None:
            await self._batcher.stop()
        if self._store_queue is not None:
            await self._store_queue.stop()
            self._store_queue = None
        if self._store is not None:
            await self._store.close()
        self._store = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        if self._repo is not None and self._owns_repo:
            await self._repo.close()
            self._repo = None


def create_service(settings: ApiSettings, *, dev: bool = False) -> ApiService:
    return ApiService(settings, dev=dev)
