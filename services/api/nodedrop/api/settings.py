"""Settings of the api service, read once at start."""

from __future__ import annotations

from dataclasses import dataclass

from nodedrop.common.engine_settings import EngineSettings
from nodedrop.common.security import SecuritySettings
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
    env_bool,
    env_duration,
    env_float,
    env_int,
    env_str,
    process_env,
    service_basics,
)
from nodedrop.runtime.plugins import plugin_modules

PROCESSES_VAR = "NODEDROP_API_PROCESSES"


@dataclass(frozen=True, slots=True)
class ApiOptions:
    """The API's own knobs."""

    default_mode: str
    # Per-tenant ExecuteWorkflow rate (token bucket) per API process; 0 = off.
    rate_per_s: float
    rate_burst: float
    max_trigger_bytes: int
    result_cache_ttl_s: int
    # Orphan recovery: how often, and how old an unfinished execution must be.
    recovery_interval_s: float
    recovery_min_age_s: float
    # History recorder: entries of the consumer group read and not acknowledged
    # for this long (their API process died) are claimed and recorded.
    history_claim_idle_s: float
    # `nodedrop dev`: the key to register for the development tenant.
    dev_api_key: str
    sqlite_path: str
    # Whether DATABASE_URL was given (dev falls back to SQLite when not).
    database_url_set: bool
    run_migrations: bool
    # Where queue-mode submissions are enqueued: straight into the store,
    # batched (see store_queue; the default), or through the scheduler's RPC
    # (one call each, and the scheduler checks the workflow again).
    enqueue_via: str
    # Processes serving the API's address (SO_REUSEPORT): one Python process
    # uses one core. Above 1, `nodedrop api` supervises that many.
    processes: int
    # How long a batch of new execution rows may wait for more under load
    # (batching.MicroBatcher); 0 turns the wait off.
    batch_linger_s: float
    # Browser tickets: the lifetime IssueTicket gives when the request names
    # none, and the longest a request may ask for.
    ticket_ttl_s: int
    max_ticket_ttl_s: int

    @classmethod
    def from_env(cls, env: Env) -> ApiOptions:
        return cls(
            default_mode=env_str(
                env, "NODEDROP_DEFAULT_MODE", "queue", choices=("queue", "direct")
            ),
            rate_per_s=env_float(env, "NODEDROP_EXECUTE_RATE_PER_S", 0.0, minimum=0.0),
            rate_burst=env_float(env, "NODEDROP_EXECUTE_RATE_BURST", 100.0, minimum=1.0),
            max_trigger_bytes=env_int(env, "NODEDROP_MAX_TRIGGER_BYTES", 1024 * 1024, minimum=16),
            result_cache_ttl_s=env_int(env, "NODEDROP_RESULT_CACHE_TTL_S", 300, minimum=0),
            recovery_interval_s=env_float(env, "NODEDROP_RECOVERY_INTERVAL_S", 30.0, minimum=0.1),
            recovery_min_age_s=env_float(env, "NODEDROP_RECOVERY_MIN_AGE_S", 30.0, minimum=0.0),
            history_claim_idle_s=env_float(env, "NODEDROP_HISTORY_CLAIM_IDLE_S", 30.0, minimum=1.0),
            dev_api_key=env_str(env, "NODEDROP_API_KEY", ""),
            sqlite_path=env_str(env, "NODEDROP_SQLITE_PATH", "nodedrop-dev.sqlite3"),
            database_url_set=bool(env.get("DATABASE_URL", "").strip()),
            run_migrations=env_bool(env, "NODEDROP_MIGRATE_ON_START", True),
            enqueue_via=env_str(
                env, "NODEDROP_API_ENQUEUE", "store", choices=("store", "scheduler")
            ),
            processes=env_int(env, PROCESSES_VAR, 1, minimum=1, maximum=64),
            batch_linger_s=env_float(
                env, "NODEDROP_API_BATCH_LINGER_MS", 2.0, minimum=0.0, maximum=100.0
            )
            / 1000,
            ticket_ttl_s=int(
                env_duration(env, "NODEDROP_TICKET_TTL", 60, minimum=1, maximum=86400)
            ),
            max_ticket_ttl_s=int(
                env_duration(env, "NODEDROP_TICKET_MAX_TTL", 3600, minimum=1, maximum=86400)
            ),
        )


@dataclass(frozen=True, slots=True)
class ApiSettings:
    server: ServerSettings
    addresses: Addresses
    log: LogSettings
    telemetry: TelemetrySettings
    # The service credential and mutual TLS, for its server and its channels.
    security: SecuritySettings
    redis: RedisSettings
    postgres: PostgresSettings
    execution: ExecutionSettings
    limits: LimitSettings
    api: ApiOptions
    engine: EngineSettings
    # Modules registering extra node types (NODEDROP_PLUGINS), as the workers load them.
    plugins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Env | None = None) -> ApiSettings:
        """Raises SettingsError naming the first bad variable."""
        env = process_env() if env is None else env
        return cls(
            **service_basics(env, "api"),
            security=SecuritySettings.from_env(env),
            redis=RedisSettings.from_env(env),
            postgres=PostgresSettings.from_env(env),
            execution=ExecutionSettings.from_env(env),
            limits=LimitSettings.from_env(env),
            api=ApiOptions.from_env(env),
            engine=EngineSettings.from_env(env),
            plugins=plugin_modules(env),
        )
