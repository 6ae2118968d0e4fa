"""Settings of the gateway service, read once at start."""

from __future__ import annotations

from dataclasses import dataclass

from nodedrop.common.security import SecuritySettings
from nodedrop.common.settings import (
    Addresses,
    Env,
    LogSettings,
    ServerSettings,
    SettingsError,
    TelemetrySettings,
    auth_cache_ttl,
    env_float,
    env_int,
    env_str,
    process_env,
    service_basics,
)
from nodedrop.gateway.httpapi.settings import HttpApiSettings

_DEFAULT_ORIGINS = "http://127.0.0.1:8080,http://localhost:8080"


def _origins(env: Env) -> frozenset[str]:
    raw = env_str(env, "NODEDROP_GATEWAY_ORIGINS", _DEFAULT_ORIGINS)
    origins = frozenset(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise SettingsError(
                "NODEDROP_GATEWAY_ORIGINS", raw, "comma-separated http(s)://host[:port] or *"
            )
    return origins


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    server: ServerSettings
    addresses: Addresses
    log: LogSettings
    telemetry: TelemetrySettings
    # The service credential and mutual TLS, for its server and its channels.
    security: SecuritySettings
    # Origins a browser may open a WebSocket from (exact scheme://host[:port], or *).
    allowed_origins: frozenset[str]
    # Largest frame a client may send; a bigger one closes the connection (1009).
    max_frame_bytes: int
    # WebSocket pings: keep idle connections open through proxies, find dead peers.
    ping_interval_s: float
    ping_timeout_s: float
    # Frames queued for one client before it counts as too slow (close 1013).
    outbox_size: int
    # Bytes the WebSocket layer buffers for a client before a send waits for the
    # socket (websockets' write_limit); past it, frames queue in the outbox.
    write_limit_bytes: int
    max_subscriptions: int
    # How long a credential check is trusted (RemoteAuthenticator's cache);
    # sessions re-check theirs on half this period.
    auth_cache_ttl_s: float
    # Largest webhook request body; a bigger one is refused with 413.
    webhook_max_body_bytes: int
    # The HTTP/JSON API served under /api/ and the Connect paths (docs/api.md).
    http_api: HttpApiSettings

    @classmethod
    def from_env(cls, env: Env | None = None) -> GatewaySettings:
        """Raises SettingsError naming the first bad variable."""
        env = process_env() if env is None else env
        return cls(
            **service_basics(env, "gateway"),
            security=SecuritySettings.from_env(env),
            allowed_origins=_origins(env),
            max_frame_bytes=env_int(
                env, "NODEDROP_GATEWAY_MAX_FRAME_BYTES", 64 * 1024, minimum=256, maximum=16 << 20
            ),
            ping_interval_s=env_float(
                env, "NODEDROP_GATEWAY_PING_INTERVAL", 20.0, minimum=1.0, maximum=3600.0
            ),
            ping_timeout_s=env_float(
                env, "NODEDROP_GATEWAY_PING_TIMEOUT", 20.0, minimum=1.0, maximum=3600.0
            ),
            outbox_size=env_int(
                env, "NODEDROP_GATEWAY_OUTBOX", 4096, minimum=16, maximum=1_000_000
            ),
            write_limit_bytes=env_int(
                env, "NODEDROP_GATEWAY_WRITE_LIMIT", 32 * 1024, minimum=1024, maximum=64 << 20
            ),
            max_subscriptions=env_int(
                env, "NODEDROP_GATEWAY_MAX_SUBSCRIPTIONS", 32, minimum=1, maximum=10_000
            ),
            auth_cache_ttl_s=auth_cache_ttl(env),
            webhook_max_body_bytes=env_int(
                env,
                "NODEDROP_GATEWAY_WEBHOOK_MAX_BODY_BYTES",
                1 << 20,
                minimum=1024,
                maximum=64 << 20,
            ),
            http_api=HttpApiSettings.from_env(env),
        )
