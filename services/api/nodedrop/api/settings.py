"""Settings of the api service, read once at start."""

from __future__ import annotations

from dataclasses import dataclass

from nodedrop.common.settings import (
    Addresses,
    Env,
    ExecutionSettings,
    LimitSettings,
    LogSettings,
    PostgresSettings,
    RedisSettings,
    ServerSettings,
    TelemetrySettings,
    process_env,
)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    server: ServerSettings
    addresses: Addresses
    log: LogSettings
    telemetry: TelemetrySettings
    redis: RedisSettings
    postgres: PostgresSettings
    execution: ExecutionSettings
    limits: LimitSettings

    @classmethod
    def from_env(cls, env: Env | None = None) -> ApiSettings:
        """Raises SettingsError naming the first bad variable."""
        env = process_env() if env is None else env
        addresses = Addresses.from_env(env)
        return cls(
            server=ServerSettings.from_env(env, addresses.api),
            addresses=addresses,
            log=LogSettings.from_env(env),
            telemetry=TelemetrySettings.from_env(env, "nodedrop-api"),
            redis=RedisSettings.from_env(env),
            postgres=PostgresSettings.from_env(env),
            execution=ExecutionSettings.from_env(env),
            limits=LimitSettings.from_env(env),
        )
