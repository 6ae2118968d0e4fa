"""Settings of the scheduler service, read once at start."""

from __future__ import annotations

from dataclasses import dataclass

from nodedrop.common.settings import (
    Addresses,
    Env,
    ExecutionSettings,
    LogSettings,
    RedisSettings,
    ServerSettings,
    TelemetrySettings,
    process_env,
)


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    server: ServerSettings
    addresses: Addresses
    log: LogSettings
    telemetry: TelemetrySettings
    redis: RedisSettings
    execution: ExecutionSettings

    @classmethod
    def from_env(cls, env: Env | None = None) -> SchedulerSettings:
        """Raises SettingsError naming the first bad variable."""
        env = process_env() if env is None else env
        addresses = Addresses.from_env(env)
        return cls(
            server=ServerSettings.from_env(env, addresses.scheduler),
            addresses=addresses,
            log=LogSettings.from_env(env),
            telemetry=TelemetrySettings.from_env(env, "nodedrop-scheduler"),
            redis=RedisSettings.from_env(env),
            execution=ExecutionSettings.from_env(env),
        )
