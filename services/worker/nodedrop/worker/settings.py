"""Settings of the worker service, read once at start."""

from __future__ import annotations

from dataclasses import dataclass

from nodedrop.common.settings import (
    Addresses,
    Env,
    ExecutionSettings,
    LimitSettings,
    LogSettings,
    RedisSettings,
    ServerSettings,
    TelemetrySettings,
    process_env,
)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    server: ServerSettings
    addresses: Addresses
    log: LogSettings
    telemetry: TelemetrySettings
    redis: RedisSettings
    execution: ExecutionSettings
    limits: LimitSettings

    @classmethod
    def from_env(cls, env: Env | None = None) -> WorkerSettings:
        """Raises SettingsError naming the first bad variable."""
        env = process_env() if env is None else env
        addresses = Addresses.from_env(env)
        return cls(
            server=ServerSettings.from_env(env, addresses.worker),
            addresses=addresses,
            log=LogSettings.from_env(env),
            telemetry=TelemetrySettings.from_env(env, "nodedrop-worker"),
            redis=RedisSettings.from_env(env),
            execution=ExecutionSettings.from_env(env),
            limits=LimitSettings.from_env(env),
        )
