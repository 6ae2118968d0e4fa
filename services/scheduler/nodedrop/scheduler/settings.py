"""Settings of the scheduler service, read once at start."""

from __future__ import annotations

from dataclasses import dataclass

from nodedrop.common.security import SecuritySettings
from nodedrop.common.settings import (
    Addresses,
    Env,
    ExecutionSettings,
    LogSettings,
    RedisSettings,
    ServerSettings,
    SettingsError,
    TelemetrySettings,
    env_duration,
    env_int,
    env_str,
    process_env,
    service_basics,
)
from nodedrop.runtime.plugins import plugin_modules


@dataclass(frozen=True, slots=True)
class QueueSettings:
    # Must match the workers': an entry idle this long belongs to a dead worker.
    lease_s: float
    # A job reclaimed more often than this goes to the failed queue.
    max_reclaims: int
    mover_interval_s: float
    reclaim_interval_s: float
    cron_interval_s: float
    # How late a tick may still start with catch-up "skip" (a slow pass, a
    # replica taking over); later ticks count as missed.
    schedule_late_s: float
    # How often the queue gauges (/metrics) are refreshed.
    sample_interval_s: float
    # Priority lanes (NODEDROP_LANES), shared with the workers.
    lanes: tuple[int, ...]
    # Node type plugins, so validation knows the types the workers run.
    plugins: tuple[str, ...]

    @classmethod
    def from_env(cls, env: Env) -> QueueSettings:
        lease = env_duration(env, "NODEDROP_LEASE_S", 30.0, minimum=0.2, maximum=3600)
        raw = env_str(env, "NODEDROP_LANES", "0")
        try:
            lanes = tuple(sorted({int(x) for x in raw.split(",") if x.strip()}, reverse=True))
        except ValueError:
            raise SettingsError("NODEDROP_LANES", raw, "comma-separated integers") from None
        if not lanes:
            raise SettingsError("NODEDROP_LANES", raw, "at least one lane")
        return cls(
            lease_s=lease,
            max_reclaims=env_int(env, "NODEDROP_MAX_RECLAIMS", 3, minimum=0, maximum=1000),
            mover_interval_s=env_duration(
                env, "NODEDROP_MOVER_INTERVAL_S", 0.1, minimum=0.005, maximum=60
            ),
            reclaim_interval_s=env_duration(
                env, "NODEDROP_RECLAIM_INTERVAL_S", min(5.0, lease / 2), minimum=0.01, maximum=600
            ),
            cron_interval_s=env_duration(
                env, "NODEDROP_CRON_INTERVAL_S", 1.0, minimum=0.05, maximum=60
            ),
            schedule_late_s=env_duration(
                env, "NODEDROP_SCHEDULE_LATE_S", 60.0, minimum=1.0, maximum=3600
            ),
            sample_interval_s=env_duration(
                env, "NODEDROP_QUEUE_SAMPLE_S", 5.0, minimum=0.05, maximum=300
            ),
            lanes=lanes,
            plugins=plugin_modules(env),
        )


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    server: ServerSettings
    addresses: Addresses
    log: LogSettings
    telemetry: TelemetrySettings
    # The service credential and mutual TLS, for its server and its channels.
    security: SecuritySettings
    redis: RedisSettings
    execution: ExecutionSettings
    queue: QueueSettings

    @classmethod
    def from_env(cls, env: Env | None = None) -> SchedulerSettings:
        """Raises SettingsError naming the first bad variable."""
        env = process_env() if env is None else env
        return cls(
            **service_basics(env, "scheduler"),
            security=SecuritySettings.from_env(env),
            redis=RedisSettings.from_env(env),
            execution=ExecutionSettings.from_env(env),
            queue=QueueSettings.from_env(env),
        )
