"""Settings of the worker service, read once at start."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from nodedrop.common.engine_settings import EngineSettings
from nodedrop.common.security import SecuritySettings
from nodedrop.common.settings import (
    Addresses,
    Env,
    ExecutionSettings,
    LimitSettings,
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
class ConsumerSettings:
    """How the worker consumes the queue."""

    # Consumer name in the group; unique per process.
    worker_id: str
    # A job whose worker stays silent this long is reclaimed by the scheduler.
    lease_s: float
    heartbeat_s: float
    # Longest blocking read; also bounds how fast an idle worker notices a drain.
    read_block_s: float
    # Modules imported at start to register extra node types (NODEDROP_PLUGINS).
    plugins: tuple[str, ...]
    # Priority lanes, highest first (NODEDROP_LANES, comma-separated integers).
    lanes: tuple[int, ...]

    @classmethod
    def from_env(cls, env: Env) -> ConsumerSettings:
        lease = env_duration(env, "NODEDROP_LEASE_S", 30.0, minimum=0.2, maximum=3600)
        heartbeat = env_duration(
            env, "NODEDROP_HEARTBEAT_S", lease / 3, minimum=0.05, maximum=lease
        )
        if heartbeat >= lease:
            raise SettingsError("NODEDROP_HEARTBEAT_S", str(heartbeat), "less than the lease")
        default_id = f"{socket.gethostname()}-{os.getpid()}"
        return cls(
            worker_id=env_str(env, "NODEDROP_WORKER_ID", default_id),
            lease_s=lease,
            heartbeat_s=heartbeat,
            read_block_s=env_duration(env, "NODEDROP_READ_BLOCK_S", 1.0, minimum=0.01, maximum=60),
            plugins=plugin_modules(env),
            lanes=parse_lanes(env),
        )


def parse_lanes(env: Env) -> tuple[int, ...]:
    raw = env_str(env, "NODEDROP_LANES", "0")
    try:
        lanes = tuple(sorted({int(x) for x in raw.split(",") if x.strip()}, reverse=True))
    except ValueError:
        raise SettingsError("NODEDROP_LANES", raw, "comma-separated integers") from None
    if not lanes:
        raise SettingsError("NODEDROP_LANES", raw, "at least one lane")
    return lanes


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    server: ServerSettings
    addresses: Addresses
    log: LogSettings
    telemetry: TelemetrySettings
    # The service credential and mutual TLS, for its server and its channels.
    security: SecuritySettings
    redis: RedisSettings
    execution: ExecutionSettings
    limits: LimitSettings
    consumer: ConsumerSettings
    engine: EngineSettings
    # Largest batch one read takes (bounded by the free slots too).
    read_batch: int

    @classmethod
    def from_env(cls, env: Env | None = None) -> WorkerSettings:
        """Raises SettingsError naming the first bad variable."""
        env = process_env() if env is None else env
        return cls(
            **service_basics(env, "worker"),
            security=SecuritySettings.from_env(env),
            redis=RedisSettings.from_env(env),
            execution=ExecutionSettings.from_env(env),
            limits=LimitSettings.from_env(env),
            consumer=ConsumerSettings.from_env(env),
            engine=EngineSettings.from_env(env),
            read_batch=env_int(env, "NODEDROP_READ_BATCH", 1000, minimum=1, maximum=100_000),
        )
