"""Settings of the events service, read once at start."""

from __future__ import annotations

from dataclasses import dataclass

from nodedrop.common.security import SecuritySettings
from nodedrop.common.settings import (
    Addresses,
    Env,
    LogSettings,
    RedisSettings,
    ServerSettings,
    TelemetrySettings,
    auth_cache_ttl,
    env_int,
    process_env,
    service_basics,
)


@dataclass(frozen=True, slots=True)
class EventsSettings:
    server: ServerSettings
    addresses: Addresses
    log: LogSettings
    telemetry: TelemetrySettings
    # The service credential and mutual TLS, for its server and its channels.
    security: SecuritySettings
    redis: RedisSettings
    # Events a subscriber may fall behind before its stream ends with
    # RESOURCE_EXHAUSTED (it then resumes from its last sequence).
    subscriber_buffer: int
    # How long a credential check is trusted (RemoteAuthenticator's cache).
    auth_cache_ttl_s: float

    @classmethod
    def from_env(cls, env: Env | None = None) -> EventsSettings:
        """Raises SettingsError naming the first bad variable."""
        env = process_env() if env is None else env
        return cls(
            **service_basics(env, "events"),
            security=SecuritySettings.from_env(env),
            redis=RedisSettings.from_env(env),
            subscriber_buffer=env_int(
                env, "NODEDROP_EVENTS_SUBSCRIBER_BUFFER", 4096, minimum=16, maximum=1_000_000
            ),
            auth_cache_ttl_s=auth_cache_ttl(env),
        )
