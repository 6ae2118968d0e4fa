"""The server bootstrap and lifecycle every service uses.

A gRPC service implements ``Service``: it registers its servicers on the
server it is given and owns its resources (pools) through ``start``/``stop``.
``GrpcServer`` hosts one ``Service`` on one address, adding health,
reflection, interceptors, message-size limits and keepalive. Anything that is
not gRPC (the HTTP/WebSocket gateway) implements ``Runnable`` itself.

``serve`` runs one or several runnables in one process (``nodedrop dev``
hosts them all) until SIGTERM/SIGINT, then shuts down in order:

1. every runnable reports NOT_SERVING, so load balancers stop routing to it;
2. servers stop accepting calls and give in-flight ones (streams included)
   the grace period to finish;
3. services close their pools.

The process-wide pieces live here too, so no service wires them itself:
``run_service`` serves ``/metrics`` on NODEDROP_METRICS_ADDR (one endpoint
per process, whatever it hosts), when spans are exported instruments the
Redis and asyncpg clients, and once the services started freezes the
start-up heap and makes the garbage collector's young collections rarer.
A service whose readiness depends on more than its port being open (the
worker: consuming or not) implements
``ReportsReadiness`` and reports through the ``HealthReporter`` it is given.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import REGISTRY, CollectorRegistry

from nodedrop.common.auth import Authenticator
from nodedrop.common.interceptors import DEFAULT_PUBLIC_METHODS, ServerCallInterceptor
from nodedrop.common.logging import get_logger
from nodedrop.common.metrics import DEFAULT_METRICS_ADDRS, MetricsServer
from nodedrop.common.security import NO_SECURITY, SecuritySettings
from nodedrop.common.settings import (
    Env,
    MetricsSettings,
    ServerSettings,
    SettingsError,
    process_env,
)
from nodedrop.common.telemetry import instrument_clients

__all__ = [
    "GrpcServer",
    "HealthReporter",
    "ReportsReadiness",
    "Runnable",
    "Service",
    "Supervisor",
    "grpc_options",
    "metrics_settings",
    "run_loop",
    "run_service",
    "serve",
]

log = get_logger("nodedrop.server")

T = TypeVar("T")

# Whole-server health uses the empty service name, per the health protocol.
OVERALL = ""
# Time a service gets to close its pools beyond the grace period.
STOP_MARGIN_S = 5.0


class Service(Protocol):
    """A gRPC service's domain side: its servicers and the resources they use."""

    @property
    def name(self) -> str: ...

    @property
    def authenticator(self) -> Authenticator | None:
        """Tenant credentials; None: no tenant calls here (the internal
        methods are checked by the server's service verifier instead)."""
        ...

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        """Adds the servicers; returns their full names (``nodedrop.queue.v1.WorkerService``)."""
        ...

    async def start(self) -> None:
        """Opens pools and starts background tasks; called before the port opens."""
        ...

    async def stop(self) -> None:
        """Stops background tasks and closes pools; called after the server stopped."""
        ...


class HealthReporter:
    """A service's own say in its server's health status.

    The port being open is not always enough: a worker that cannot reach
    Redis or is draining runs no jobs, and its readiness probe must say so.
    ``set_ready`` flips every service name of the server between SERVING and
    NOT_SERVING; once shutdown began (``set_not_serving``) it has no effect,
    so a service cannot report itself back into rotation while it stops.
    """

    def __init__(self, servicer: health.aio.HealthServicer) -> None:
        self._servicer = servicer
        self._names: tuple[str, ...] = ()
        self._ready = True
        # Statuses are published only once the server is up; until then the
        # reporter remembers what the service said.
        self._live = False
        self._lock = asyncio.Lock()

    @property
    def ready(self) -> bool:
        return self._ready

    async def set_ready(self, ready: bool) -> None:
        if ready == self._ready:
            return
        self._ready = ready
        if self._live:
            await self._publish()
            log.info("readiness changed", ready=ready)

    async def _go_live(self, names: Sequence[str]) -> None:
        self._names = tuple(names)
        self._live = True
        await self._publish()

    async def _publish(self) -> None:
        # Serialised: two quick flips must leave the last one's status.
        async with self._lock:
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if self._ready
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for name in self._names:
                await self._servicer.set(name, status)


@runtime_checkable
class ReportsReadiness(Protocol):
    """Implemented by a ``Service`` that reports its own readiness."""

    def bind_health(self, reporter: HealthReporter) -> None:
        """Called once, before ``start``; keep the reporter and call ``set_ready``."""
        ...


@runtime_checkable
class Supervisor(Protocol):
    """A ``Runnable`` over other processes (``ProcessGroup``): it can stop the
    process on its own, and its ``/metrics`` are its children's."""

    metrics_registry: CollectorRegistry

    def bind_stop(self, stop: asyncio.Event) -> None:
        """Called once, before ``start``; set ``stop`` to shut the process down."""
        ...


@runtime_checkable
class Runnable(Protocol):
    """Something ``serve`` can run: listens on start, drains on stop."""

    @property
    def name(self) -> str: ...

    async def start(self) -> None: ...

    async def set_not_serving(self) -> None:
        """Called first on shutdown: health checks start failing, work continues."""
        ...

    async def stop(self, grace_s: float) -> None:
        """Lets in-flight work finish within ``grace_s``, then releases everything."""
        ...


def grpc_options(max_message_bytes: int, *, keepalive_ms: int = 30_000) -> list[tuple[str, int]]:
    """Channel arguments shared by servers and clients."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        # Pings keep idle streams (event subscriptions) alive through NATs and
        # proxies, and detect dead peers within a minute.
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # Clients ping every keepalive_ms; allow that without tripping "too_many_pings".
        ("grpc.http2.min_ping_interval_without_data_ms", keepalive_ms // 3),
    ]


class GrpcServer:
    """Hosts one ``Service`` on its address with the standard equipment.

    ``security``: with mutual TLS the port requires client certificates; the
    service credential (or a service's certificate) opens the internal
    methods, which nothing opens without it.
    """

    def __init__(
        self,
        service: Service,
        settings: ServerSettings,
        *,
        security: SecuritySettings = NO_SECURITY,
        public_methods: frozenset[str] = DEFAULT_PUBLIC_METHODS,
    ) -> None:
        self._service = service
        self._settings = settings
        self._security = security
        self._public_methods = public_methods
        self._health = health.aio.HealthServicer()
        self._reporter = HealthReporter(self._health)
        if isinstance(service, ReportsReadiness):
            service.bind_health(self._reporter)
        self._server: grpc.aio.Server | None = None
        self._service_names: tuple[str, ...] = ()
        self.port: int | None = None

    @property
    def name(self) -> str:
        return self._service.name

    async def start(self) -> None:
        # The service's resources (pools, its authenticator's channel) come up
        # before the port opens, so the first call finds them ready.
        await self._service.start()
        try:
            server = self._build()
            tls = self._security.tls
            if tls is None:
                self.port = server.add_insecure_port(self._settings.addr.bind)
            else:
                self.port = server.add_secure_port(
                    self._settings.addr.bind, tls.server_credentials()
                )
            await server.start()
        except BaseException:
            await self._stop_service(self._settings.shutdown_grace_s)
            raise
        self._server = server
        await self._reporter._go_live((OVERALL, *self._service_names))
        log.info("serving", service=self.name, addr=f"{self._settings.addr.host}:{self.port}")

    def _build(self) -> grpc.aio.Server:
        # One interceptor for the span, latency, log line, errors and auth:
        # a chain of them cost every call an await and new handlers per layer.
        verifier = self._security.verifier() if self._security.configured else None
        interceptors = [
            ServerCallInterceptor(
                self._service.authenticator, self._public_methods, verifier=verifier
            )
        ]
        server = grpc.aio.server(
            interceptors=interceptors,
            # SO_REUSEPORT (gRPC's default on Linux, made explicit): the
            # processes of a ProcessGroup listen on one port.
            options=[
                *grpc_options(self._settings.grpc_max_message_bytes),
                ("grpc.so_reuseport", 1),
            ],
        )
        self._service_names = tuple(self._service.register(server))
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        return server

    async def set_not_serving(self) -> None:
        # Permanent: every service name reports NOT_SERVING from now on, and
        # Watch subscribers are told at once.
        await self._health.enter_graceful_shutdown()

    async def stop(self, grace_s: float) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        # Health Watch streams never end on their own; like any stream still
        # open when the grace period runs out, they are cancelled then.
        await server.stop(grace_s)
        try:
            await self._stop_service(grace_s)
        finally:
            log.info("stopped", service=self.name)

    async def _stop_service(self, grace_s: float) -> None:
        # Bounded: a service whose stop hangs must not keep the process (and,
        # under `nodedrop dev`, every other service in it) from exiting.
        try:
            await asyncio.wait_for(self._service.stop(), grace_s + STOP_MARGIN_S)
        except TimeoutError:
            log.error("service did not stop in time", service=self.name, grace_s=grace_s)


def metrics_settings(runnables: Sequence[Runnable], env: Env) -> MetricsSettings:
    """Where this process serves ``/metrics``: NODEDROP_METRICS_ADDR, else the
    default of the first service it hosts (``nodedrop dev``: the api's)."""
    name = runnables[0].name if runnables else ""
    return MetricsSettings.from_env(env, DEFAULT_METRICS_ADDRS.get(name, "127.0.0.1:0"))


async def serve(
    runnables: Sequence[Runnable],
    grace_s: float,
    *,
    stop_event: asyncio.Event | None = None,
    metrics: MetricsSettings | None = None,
) -> None:
    """Runs until SIGTERM/SIGINT (or ``stop_event``), then shuts everything down.

    With ``metrics``, ``/metrics`` is served from before the first service
    starts until after the last one stopped, so a scrape sees the shutdown.
    """
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    registry = REGISTRY
    for runnable in runnables:
        if isinstance(runnable, Supervisor):
            runnable.bind_stop(stop)
            registry = runnable.metrics_registry
    # Only when spans go somewhere: instrumented clients cost on every call.
    instrument_clients()
    exporter = await _start_metrics(metrics, registry)
    started: list[Runnable] = []
    try:
        for runnable in runnables:
            await runnable.start()
            started.append(runnable)
        _settle_heap()
        await stop.wait()
        log.info("shutting down", grace_s=grace_s)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        try:
            await _shutdown(started, grace_s)
        finally:
            if exporter is not None:
                await exporter.stop()


# Python's default (700 net allocations) runs a young collection every call
# or two in the API, and the older generations scan start-up's objects again
# each time (its cost under load: docs/benchmarks.md, API). What a call
# allocates nearly all dies by reference counting, so collections can be rarer.
GC_THRESHOLDS = (10_000, 10, 10)


def _settle_heap() -> None:
    """Puts what start-up allocated (modules, descriptors, pools) out of the
    collector's sight, and makes young collections rarer."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _start_metrics(
    settings: MetricsSettings | None, registry: CollectorRegistry
) -> MetricsServer | None:
    if settings is None or settings.addr is None:
        return None
    server = MetricsServer(settings.addr.bind, registry)
    try:
        await server.start()
    except OSError as exc:
        # A taken port costs the scrape, not the service: its work goes on
        # and the scrape target's `up` alert says what is missing.
        log.error("metrics endpoint not served", addr=str(settings.addr), error=str(exc))
        return None
    log.info("metrics served", addr=server.address)
    return server


async def _shutdown(runnables: Sequence[Runnable], grace_s: float) -> None:
    for runnable in runnables:
        await runnable.set_not_serving()
    results = await asyncio.gather(
        *(r.stop(grace_s) for r in reversed(runnables)), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    for error in errors:
        log.error("stop failed", error=repr(error))
    if errors:
        raise errors[0]


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine on uvloop where it exists (not on Windows)."""
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:  # pragma: no cover - platform without uvloop
        return asyncio.run(main)
    return uvloop.run(main)


def run_service(runnables: Sequence[Runnable], grace_s: float, *, env: Env | None = None) -> int:
    """Process entry point: serves until a signal and returns the exit status.

    Exits with 2 and a message naming the variable when NODEDROP_METRICS_ADDR
    is not an address, before anything starts.
    """
    try:
        metrics = metrics_settings(runnables, process_env() if env is None else env)
    except SettingsError as exc:
        print(f"nodedrop: {exc}", file=sys.stderr)
        return 2
    try:
        run_loop(serve(runnables, grace_s, metrics=metrics))
    except KeyboardInterrupt:
        return 130
    return 0
