"""``nodedrop api|scheduler|worker|events|gateway`` and ``nodedrop dev``.

Each service command reads its settings once, configures logging and tracing,
and runs until SIGTERM/SIGINT. A failed start prints one line naming what
failed and the variable to fix, and exits with the status
``nodedrop.common.startup`` documents (2: a bad setting, 3: a dependency). A
service run on its own needs the service credential (NODEDROP_SERVICE_TOKEN or
mutual TLS): without one it exits with status 2 and one line naming the
variable. ``dev`` hosts every service in one process on the default addresses,
with a token of its own unless one is given; each service's
``create_service(settings, dev=True)`` picks its development adapters.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nodedrop.common.logging import configure_logging, get_logger
from nodedrop.common.process_group import ProcessGroup, die_with_supervisor
from nodedrop.common.redaction import known_secrets
from nodedrop.common.security import require_service_identity
from nodedrop.common.server import GrpcServer, Runnable, run_service
from nodedrop.common.service_auth import TOKEN_FILE_VAR, TOKEN_VAR
from nodedrop.common.settings import Env, LogSettings, SettingsError, TelemetrySettings, process_env
from nodedrop.common.startup import DependencyUnavailable, describe_failure
from nodedrop.common.telemetry import configure_tracing, shutdown_tracing
from nodedrop.common.tls import CERT_VAR

__all__ = ["SERVICES", "register"]

log = get_logger("nodedrop.cli")


@dataclass(frozen=True, slots=True)
class Hosted:
    """One service ready to run, with the settings the process needs around it."""

    runnable: Runnable
    log: LogSettings
    telemetry: TelemetrySettings
    grace_s: float
    # What `nodedrop dev` tells its user of this service once every service
    # serves (read then: the API makes its key when it starts).
    banner: Callable[[], str | None] | None = None


class DevBanner:
    """Started after every service of `nodedrop dev`: prints their banners once,
    together, so the console URL and the key are not lost among the logs."""

    name = "banner"

    def __init__(self, hosted: list[Hosted]) -> None:
        self._hosted = hosted

    async def start(self) -> None:
        lines = [line for h in self._hosted if h.banner is not None and (line := h.banner())]
        if lines:
            print("\n".join(f"nodedrop dev: {line}" for line in lines), flush=True)

    async def set_not_serving(self) -> None:
        return None

    async def stop(self, grace_s: float) -> None:
        return None


# Service modules are imported inside the builders: a command runs only the
# services it names, and the client commands import none of them. Settings
# come first, so a bad value is reported before any heavier import.


def _api(env: Env, dev: bool) -> Hosted:
    from nodedrop.api.settings import PROCESSES_VAR, ApiSettings  # noqa: PLC0415

    s = ApiSettings.from_env(env)
    require_service_identity(s.security, "api")
    if s.api.processes > 1 and not dev:
        group = ProcessGroup(
            "api",
            [sys.executable, "-m", "nodedrop.cli.main", "api"],
            env,
            s.api.processes,
            single_var=PROCESSES_VAR,
        )
        return Hosted(group, s.log, s.telemetry, s.server.shutdown_grace_s)
    from nodedrop.api.app import create_service  # noqa: PLC0415
    from nodedrop.api.provisioning import DEV_TENANT  # noqa: PLC0415

    service = create_service(s, dev=dev)
    server = GrpcServer(service, s.server, security=s.security)

    def banner() -> str | None:
        if s.api.dev_api_key:
            # Given by the user: not echoed to a terminal that may be recorded.
            return f"API key for tenant {DEV_TENANT!r}: NODEDROP_API_KEY as set"
        if service.dev_key is None:
            return None
        return f"API key for tenant {DEV_TENANT!r} (export NODEDROP_API_KEY={service.dev_key})"

    return Hosted(server, s.log, s.telemetry, s.server.shutdown_grace_s, banner)


def _scheduler(env: Env, dev: bool) -> Hosted:
    from nodedrop.scheduler.settings import SchedulerSettings  # noqa: PLC0415

    s = SchedulerSettings.from_env(env)
    require_service_identity(s.security, "scheduler")
    from nodedrop.scheduler.app import create_service  # noqa: PLC0415

    server = GrpcServer(create_service(s, dev=dev), s.server, security=s.security)
    return Hosted(server, s.log, s.telemetry, s.server.shutdown_grace_s)


def _worker(env: Env, dev: bool) -> Hosted:
    from nodedrop.worker.settings import WorkerSettings  # noqa: PLC0415

    s = WorkerSettings.from_env(env)
    require_service_identity(s.security, "worker")
    from nodedrop.worker.app import create_service  # noqa: PLC0415

    server = GrpcServer(create_service(s, dev=dev), s.server, security=s.security)
    return Hosted(server, s.log, s.telemetry, s.server.shutdown_grace_s)


def _events(env: Env, dev: bool) -> Hosted:
    from nodedrop.events.settings import EventsSettings  # noqa: PLC0415

    s = EventsSettings.from_env(env)
    require_service_identity(s.security, "events")
    from nodedrop.events.app import create_service  # noqa: PLC0415

    server = GrpcServer(create_service(s, dev=dev), s.server, security=s.security)
    return Hosted(server, s.log, s.telemetry, s.server.shutdown_grace_s)


def _gateway(env: Env, dev: bool) -> Hosted:
    from nodedrop.gateway.settings import GatewaySettings  # noqa: PLC0415

    s = GatewaySettings.from_env(env)
    require_service_identity(s.security, "gateway")
    from nodedrop.gateway.app import create_service  # noqa: PLC0415

    console = f"console http://{s.addresses.gateway.target}/"
    return Hosted(
        create_service(s, dev=dev), s.log, s.telemetry, s.server.shutdown_grace_s, lambda: console
    )


def dev_env(env: Env) -> Env:
    """`nodedrop dev`'s environment: its services talk to each other with a
    token made for this run, unless one is given (to call them from outside)."""
    if any(env.get(var, "").strip() for var in _IDENTITY_VARS):
        return env
    return {**env, TOKEN_VAR: secrets.token_urlsafe(32)}


_IDENTITY_VARS = (TOKEN_VAR, TOKEN_FILE_VAR, CERT_VAR)


SERVICES: dict[str, tuple[Callable[[Env, bool], Hosted], str]] = {
    "api": (_api, "ExecutionService, WorkflowService and AuthService (gRPC)"),
    "scheduler": (_scheduler, "SchedulerService: queue, retries, cron (gRPC)"),
    "worker": (_worker, "job consumer running the engine (gRPC health and admin)"),
    "events": (_events, "EventService: live and replayed execution events (gRPC)"),
    "gateway": (_gateway, "HTTP edge: webhooks, WebSocket bridge and live view"),
}


def register(subparsers: Any) -> None:
    for name, (_, help_text) in SERVICES.items():
        parser = subparsers.add_parser(name, help=f"run the {name} service: {help_text}")
        parser.set_defaults(func=_run_one, service=name)
    dev = subparsers.add_parser("dev", help="run every service in one process")
    dev.set_defaults(func=_run_dev)


def _run_one(args: argparse.Namespace) -> int:
    build, _ = SERVICES[args.service]
    return _run([build], dev=False, what=f"nodedrop {args.service}")


def _run_dev(args: argparse.Namespace) -> int:
    return _run([build for build, _ in SERVICES.values()], dev=True, what="nodedrop dev")


def _run(builders: list[Callable[[Env, bool], Hosted]], *, dev: bool, what: str) -> int:
    env = process_env()
    if dev:
        env = dev_env(env)
    known = known_secrets(env)
    die_with_supervisor(env)
    # Until the settings are read, whatever is logged (a library warning
    # while a builder imports) is already redacted and locals-free.
    configure_logging(LogSettings(level="info", format="auto", secrets=known))
    try:
        hosted = [build(env, dev) for build in builders]
    except SettingsError as exc:
        return _failed(what, exc, known)
    # One process, one logging and tracing setup: the services read the same
    # environment, so the first one's pieces hold for all.
    configure_logging(hosted[0].log)
    configure_tracing(hosted[0].telemetry)
    runnables = [h.runnable for h in hosted]
    if dev:
        runnables.append(DevBanner(hosted))
    try:
        return run_service(runnables, grace_s=max(h.grace_s for h in hosted))
    except Exception as exc:
        return _failed(what, exc, known)
    finally:
        shutdown_tracing()


def _failed(what: str, exc: BaseException, secrets: tuple[str, ...]) -> int:
    """One line naming what failed and what to fix, then the documented status."""
    from nodedrop.store.errors import Misconfigured  # noqa: PLC0415

    if isinstance(exc, Misconfigured):
        # The Redis REDIS_URL names is not one to run on (a cluster node behind
        # redis://, another partition count), or `nodedrop dev` refused it
        # (nodedrop.store.factory).
        exc = DependencyUnavailable("Redis", "REDIS_URL", str(exc))
    failure = describe_failure(what, exc, secrets)
    if failure.unexpected:
        # Nobody foresaw this one: the traceback (redacted, no locals) helps.
        log.error("service failed", exc_info=exc)
    print(failure.line, file=sys.stderr, flush=True)
    return failure.status
