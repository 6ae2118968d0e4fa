"""Settings read from the environment, once, at start.

Each service composes its own frozen settings class (in
``nodedrop/<svc>/settings.py``) from the pieces below, each built by a
``from_env(env)`` classmethod. Nothing else in the code base reads
``os.environ``: a bad value must stop the process before it serves anything,
with a message that names the variable and the value.

The readers take the environment as a mapping so tests pass a plain dict.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypedDict
from urllib.parse import urlsplit

from nodedrop.common.redaction import MASK, Redactor, is_secret_name, known_secrets

__all__ = [
    "Address",
    "Addresses",
    "Env",
    "ExecutionSettings",
    "LimitSettings",
    "LogSettings",
    "MetricsSettings",
    "PostgresSettings",
    "RedisSettings",
    "ServerSettings",
    "ServiceBasics",
    "SettingsError",
    "TelemetrySettings",
    "auth_cache_ttl",
    "env_addr",
    "env_bool",
    "env_duration",
    "env_float",
    "env_int",
    "env_str",
    "env_url",
    "process_env",
    "service_basics",
]

Env = Mapping[str, str]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class SettingsError(ValueError):
    """A variable holds a value the service cannot start with.

    The message shows the value so the operator sees what is wrong, with its
    secrets masked: a secret-named variable's value entirely, a URL's password.
    """

    def __init__(self, name: str, value: str, expected: str) -> None:
        shown = MASK if is_secret_name(name) else Redactor().text(value)
        super().__init__(f"invalid value for {name}: {shown!r} (expected {expected})")
        self.name = name
        self.value = shown
        self.expected = expected


def process_env() -> Env:
    """A snapshot of the process environment; the one sanctioned reader."""
    return dict(os.environ)


def _raw(env: Env, name: str) -> str | None:
    # An empty variable counts as unset, the way shells and compose files
    # produce it for "declared but not given".
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(env: Env, name: str, default: str, *, choices: tuple[str, ...] = ()) -> str:
    value = _raw(env, name)
    if value is None:
        return default
    if choices and value.lower() not in choices:
        raise SettingsError(name, value, "one of " + ", ".join(choices))
    return value.lower() if choices else value


def env_int(
    env: Env, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    value = _raw(env, name)
    if value is None:
        return default
    try:
        number = int(value, 10)
    except ValueError:
        raise SettingsError(name, value, "an integer") from None
    _check_range(name, value, number, minimum, maximum)
    return number


def env_float(
    env: Env,
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    value = _raw(env, name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(name, value, "a number") from None
    if not math.isfinite(number):
        raise SettingsError(name, value, "a finite number")
    _check_range(name, value, number, minimum, maximum)
    return number


def env_bool(env: Env, name: str, default: bool) -> bool:
    value = _raw(env, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(name, value, "true/false, 1/0, yes/no or on/off")


def env_duration(
    env: Env, name: str, default: float, *, minimum: float = 0.0, maximum: float | None = None
) -> float:
    """Seconds; accepts a bare number of seconds or a unit: 500ms, 30s, 5m, 1h."""
    value = _raw(env, name)
    if value is None:
        return default
    match = _DURATION.match(value.lower())
    if match is None:
        raise SettingsError(name, value, "a duration such as 30, 30s, 500ms, 5m or 1h")
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    _check_range(name, value, seconds, minimum, maximum)
    return seconds


@dataclass(frozen=True, slots=True)
class Address:
    """A host:port pair. An empty host means every interface when binding."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        host, sep, port_text = text.strip().rpartition(":")
        if not sep or not port_text.isdigit():
            raise ValueError(f"not a host:port address: {text!r}")
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise ValueError(f"port out of range: {text!r}")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return cls(host, port)

    @property
    def bind(self) -> str:
        """The form grpc's add_insecure_port and socket servers take."""
        host = self.host or "0.0.0.0"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @property
    def target(self) -> str:
        """The form a client dials; an unspecified host dials loopback."""
        host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def __str__(self) -> str:
        return self.target


def env_addr(env: Env, name: str, default: str) -> Address:
    value = _raw(env, name)
    try:
        return Address.parse(default if value is None else value)
    except ValueError:
        raise SettingsError(name, value or default, "host:port, e.g. 127.0.0.1:50051") from None


def env_url(env: Env, name: str, default: str, *, schemes: tuple[str, ...]) -> str:
    """A URL with one of ``schemes`` whose host and port parse; the error
    shows it with its password masked."""
    url = env_str(env, name, default)
    expected = "a " + ", ".join(f"{s}://" for s in schemes) + " URL"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise SettingsError(name, url, expected + " with a numeric port") from None
    if parts.scheme not in schemes:
        raise SettingsError(name, url, expected)
    if parts.scheme != "unix" and not parts.hostname and not parts.path:
        raise SettingsError(name, url, expected + " with a host")
    return url


def _check_range(
    name: str, raw: str, number: float, minimum: float | None, maximum: float | None
) -> None:
    if minimum is not None and number < minimum:
        raise SettingsError(name, raw, f"a value >= {minimum:g}")
    if maximum is not None and number > maximum:
        raise SettingsError(name, raw, f"a value <= {maximum:g}")


# -- shared pieces ----------------------------------------------------------

DEFAULT_API_ADDR = "127.0.0.1:50051"
DEFAULT_SCHEDULER_ADDR = "127.0.0.1:50052"
DEFAULT_EVENTS_ADDR = "127.0.0.1:50053"
DEFAULT_WORKER_ADDR = "127.0.0.1:50054"
DEFAULT_GATEWAY_ADDR = "127.0.0.1:8080"


@dataclass(frozen=True, slots=True)
class Addresses:
    """Where every service listens; a service binds its own and dials the others."""

    api: Address
    scheduler: Address
    events: Address
    worker: Address
    gateway: Address

    @classmethod
    def from_env(cls, env: Env) -> Addresses:
        return cls(
            api=env_addr(env, "NODEDROP_API_ADDR", DEFAULT_API_ADDR),
            scheduler=env_addr(env, "NODEDROP_SCHEDULER_ADDR", DEFAULT_SCHEDULER_ADDR),
            events=env_addr(env, "NODEDROP_EVENTS_ADDR", DEFAULT_EVENTS_ADDR),
            worker=env_addr(env, "NODEDROP_WORKER_ADDR", DEFAULT_WORKER_ADDR),
            gateway=env_addr(env, "NODEDROP_GATEWAY_ADDR", DEFAULT_GATEWAY_ADDR),
        )


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """How one service listens and stops."""

    addr: Address
    # In-flight RPCs (streams included) get this long to finish after SIGTERM.
    shutdown_grace_s: float
    grpc_max_message_bytes: int

    @classmethod
    def from_env(cls, env: Env, addr: Address) -> ServerSettings:
        return cls(
            addr=addr,
            shutdown_grace_s=env_duration(env, "NODEDROP_SHUTDOWN_GRACE_S", 10.0, maximum=3600),
            grpc_max_message_bytes=env_int(
                env, "NODEDROP_GRPC_MAX_MESSAGE_BYTES", 16 * 1024 * 1024, minimum=1024
            ),
        )


DEFAULT_LOG_MAX_LINE_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str
    # "auto" picks console output on a TTY and JSON otherwise.
    format: Literal["auto", "json", "console"]
    # A longer line is cut and says so (``truncated``): one record of a huge
    # payload must not fill a disk or a log pipeline.
    max_line_bytes: int = DEFAULT_LOG_MAX_LINE_BYTES
    # Literal secrets of this environment (secret-named variables, URL
    # passwords), masked wherever they appear in a line; never shown.
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls, env: Env) -> LogSettings:
        level = env_str(
            env, "LOG_LEVEL", "info", choices=("debug", "info", "warning", "error", "critical")
        )
        fmt = env_str(env, "LOG_FORMAT", "auto", choices=("auto", "json", "console"))
        return cls(
            level=level,
            format=fmt,  # type: ignore[arg-type]
            max_line_bytes=env_int(
                env,
                "NODEDROP_LOG_MAX_LINE_BYTES",
                DEFAULT_LOG_MAX_LINE_BYTES,
                minimum=1024,
                maximum=16 << 20,
            ),
            secrets=known_secrets(env),
        )


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    service_name: str
    # None means no exporter: spans are still created (for log correlation)
    # but go nowhere.
    otlp_endpoint: str | None
    # Literal secrets of this environment, masked in every exported span as in
    # log lines (see LoggingSettings.secrets).
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls, env: Env, default_service_name: str) -> TelemetrySettings:
        endpoint = env_str(env, "OTEL_EXPORTER_OTLP_ENDPOINT", "")
        return cls(
            service_name=env_str(env, "OTEL_SERVICE_NAME", default_service_name),
            otlp_endpoint=endpoint or None,
            secrets=known_secrets(env),
        )


_METRICS_OFF = frozenset({"off", "none", "disabled"})


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """Where the process serves Prometheus ``/metrics``; None: not at all."""

    addr: Address | None

    @classmethod
    def from_env(cls, env: Env, default: str) -> MetricsSettings:
        value = _raw(env, "NODEDROP_METRICS_ADDR")
        if value is not None and value.lower() in _METRICS_OFF:
            return cls(addr=None)
        return cls(addr=env_addr(env, "NODEDROP_METRICS_ADDR", default))


# A Redis Cluster: redis+cluster://[user:password@]host:port,host:port,... (any
# of its nodes as seeds; docs/operations.md, "Redis Cluster").
REDIS_CLUSTER_SCHEME = "redis+cluster"


def _check_cluster_url(url: str) -> None:
    expected = f"{REDIS_CLUSTER_SCHEME}://host:port,host:port,... (database 0 only)"
    parts = urlsplit(url)
    seeds = parts.netloc.rpartition("@")[2].split(",")
    for seed in seeds:
        host, sep, port = seed.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError("REDIS_URL", url, expected)
    if parts.path not in ("", "/", "/0"):
        raise SettingsError("REDIS_URL", url, expected)


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str
    # Every key starts with this; tests give each test its own.
    prefix: str
    # Fixed for a deployment: changing it moves executions between partitions.
    partitions: int
    # Whether REDIS_URL was given: `nodedrop dev` falls back to its in-memory
    # store only when it was not and nothing answers on the default address.
    url_set: bool

    @classmethod
    def from_env(cls, env: Env) -> RedisSettings:
        url = env_str(env, "REDIS_URL", "redis://127.0.0.1:6379/0")
        if url.startswith(f"{REDIS_CLUSTER_SCHEME}://"):
            _check_cluster_url(url)
        else:
            url = env_url(
                env, "REDIS_URL", "redis://127.0.0.1:6379/0", schemes=("redis", "rediss", "unix")
            )
        prefix = env_str(env, "NODEDROP_REDIS_PREFIX", "nd")
        if any(c in prefix for c in "{}: \t"):
            raise SettingsError("NODEDROP_REDIS_PREFIX", prefix, "no braces, colons or whitespace")
        return cls(
            url=url,
            prefix=prefix,
            partitions=env_int(env, "NODEDROP_PARTITIONS", 16, minimum=1, maximum=1024),
            url_set=_raw(env, "REDIS_URL") is not None,
        )


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    url: str
    pool_min_size: int
    pool_max_size: int
    command_timeout_s: float
    # asyncpg's prepared-statement cache per connection; 0 behind a
    # transaction-pooling PgBouncer, whose server connections change between
    # transactions and so never hold a statement a client prepared earlier.
    statement_cache_size: int

    @classmethod
    def from_env(cls, env: Env) -> PostgresSettings:
        url = env_url(
            env,
            "DATABASE_URL",
            "postgresql://postgres@127.0.0.1:5432/postgres",
            schemes=("postgresql", "postgres"),
        )
        min_size = env_int(env, "NODEDROP_PG_POOL_MIN", 1, minimum=0, maximum=1000)
        max_size = env_int(env, "NODEDROP_PG_POOL_MAX", 10, minimum=1, maximum=1000)
        if max_size < min_size:
            raise SettingsError(
                "NODEDROP_PG_POOL_MAX",
                str(max_size),
                f"a value >= NODEDROP_PG_POOL_MIN ({min_size})",
            )
        return cls(
            url=url,
            pool_min_size=min_size,
            pool_max_size=max_size,
            command_timeout_s=env_duration(env, "NODEDROP_PG_COMMAND_TIMEOUT_S", 30.0, minimum=0.1),
            statement_cache_size=env_int(
                env, "NODEDROP_PG_STATEMENT_CACHE_SIZE", 100, minimum=0, maximum=10_000
            ),
        )


@dataclass(frozen=True, slots=True)
class ExecutionSettings:
    """The original n8n queue-mode names and defaults."""

    worker_concurrency: int
    # Seconds an execution's state lives in Redis while it runs ...
    state_ttl_s: int
    # ... and after it ends, cut short so finished work does not pile up.
    completion_ttl_s: int
    # Fairness: executions of one tenant in the job streams at once (waiting or
    # running); the rest waits parked.  0 = no limit.  Every service that
    # touches the queue must use the same value.
    tenant_max_active: int

    @classmethod
    def from_env(cls, env: Env) -> ExecutionSettings:
        return cls(
            worker_concurrency=env_int(
                env, "EXECUTION_WORKER_CONCURRENCY", 5, minimum=1, maximum=10_000
            ),
            state_ttl_s=env_int(env, "EXECUTION_STATE_TTL", 86400, minimum=1),
            completion_ttl_s=env_int(env, "EXECUTION_COMPLETION_TTL", 3600, minimum=1),
            tenant_max_active=env_int(
                env, "NODEDROP_TENANT_MAX_ACTIVE", 64, minimum=0, maximum=1_000_000
            ),
        )


@dataclass(frozen=True, slots=True)
class LimitSettings:
    max_nodes: int
    max_payload_bytes: int

    @classmethod
    def from_env(cls, env: Env) -> LimitSettings:
        return cls(
            max_nodes=env_int(env, "NODEDROP_MAX_NODES", 1000, minimum=1),
            max_payload_bytes=env_int(
                env, "NODEDROP_MAX_PAYLOAD_BYTES", 4 * 1024 * 1024, minimum=1024
            ),
        )


DEFAULT_AUTH_CACHE_TTL_S = 10.0


def auth_cache_ttl(env: Env) -> float:
    """Seconds the events service and the gateway trust a credential check;
    open streams re-check on half this period, so a revoked key's streams end
    within 1.5 times it (docs/operations.md)."""
    return env_duration(
        env, "NODEDROP_AUTH_CACHE_TTL", DEFAULT_AUTH_CACHE_TTL_S, minimum=0.2, maximum=3600
    )


ServiceName = Literal["api", "scheduler", "events", "worker", "gateway"]


class ServiceBasics(TypedDict):
    """What every service's settings begin with (unpacked into them with ``**``)."""

    server: ServerSettings
    addresses: Addresses
    log: LogSettings
    telemetry: TelemetrySettings


def service_basics(env: Env, service: ServiceName) -> ServiceBasics:
    """The service's server (on its own address), every address, logging, telemetry."""
    addresses = Addresses.from_env(env)
    return ServiceBasics(
        server=ServerSettings.from_env(env, getattr(addresses, service)),
        addresses=addresses,
        log=LogSettings.from_env(env),
        telemetry=TelemetrySettings.from_env(env, f"nodedrop-{service}"),
    )
