"""Settings of the gateway service, read once at start."""

from __future__ import annotations

from dataclasses import dataclass

from nodedrop.common.settings import (
    Addresses,
    Env,
    LogSettings,
    ServerSettings,
    TelemetrySettings,
    process_env,
)


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    server: ServerSettings
    addresses: Addresses
    log: LogSettings
    telemetry: TelemetrySettings

    @classmethod
    def from_env(cls, env: Env | None = None) -> GatewaySettings:
        """Raises SettingsError naming the first bad variable."""
        env = process_env() if env is None else env
        addresses = Addresses.from_env(env)
        return cls(
            server=ServerSettings.from_env(env, addresses.gateway),
            addresses=addresses,
            log=LogSettings.from_env(env),
            telemetry=TelemetrySettings.from_env(env, "nodedrop-gateway"),
        )
