from __future__ import annotations

import pytest

from nodedrop.common.settings import (
    Address,
    Addresses,
    ExecutionSettings,
    LogSettings,
    PostgresSettings,
    RedisSettings,
    ServerSettings,
    SettingsError,
    TelemetrySettings,
    env_addr,
    env_bool,
    env_duration,
    env_float,
    env_int,
)


def test_defaults_keep_the_original_names_and_values() -> None:
    execution = ExecutionSettings.from_env({})
    assert (execution.worker_concurrency, execution.state_ttl_s, execution.completion_ttl_s) == (
        5,
        86400,
        3600,
    )
    redis = RedisSettings.from_env({})
    assert (redis.url, redis.prefix, redis.partitions) == ("redis://127.0.0.1:6379/0", "nd", 16)
    assert not redis.url_set and not RedisSettings.from_env({"REDIS_URL": " "}).url_set
    postgres = PostgresSettings.from_env({})
    assert postgres.url == "postgresql://postgres@127.0.0.1:5432/postgres"
    assert postgres.statement_cache_size == 100
    addresses = Addresses.from_env({})
    assert [str(a) for a in (addresses.api, addresses.scheduler, addresses.events)] == [
        "127.0.0.1:50051",
        "127.0.0.1:50052",
        "127.0.0.1:50053",
    ]
    assert str(addresses.worker) == "127.0.0.1:50054"
    assert str(addresses.gateway) == "127.0.0.1:8080"
    assert TelemetrySettings.from_env({}, "svc").otlp_endpoint is None


def test_values_from_the_environment() -> None:
    env = {
        "EXECUTION_WORKER_CONCURRENCY": "12",
        "NODEDROP_PARTITIONS": "4",
        "NODEDROP_SHUTDOWN_GRACE_S": "1500ms",
        "LOG_LEVEL": "DEBUG",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
    }
    assert ExecutionSettings.from_env(env).worker_concurrency == 12
    assert RedisSettings.from_env(env).partitions == 4
    assert RedisSettings.from_env({"REDIS_URL": "redis://127.0.0.1:6379/0"}).url_set
    behind_a_pooler = {"NODEDROP_PG_STATEMENT_CACHE_SIZE": "0"}
    assert PostgresSettings.from_env(behind_a_pooler).statement_cache_size == 0
    assert ServerSettings.from_env(env, Address("", 1)).shutdown_grace_s == 1.5
    assert LogSettings.from_env(env).level == "debug"
    assert TelemetrySettings.from_env(env, "x").otlp_endpoint == "http://collector:4317"


@pytest.mark.parametrize(
    ("env", "build", "variable"),
    [
        (
            {"EXECUTION_WORKER_CONCURRENCY": "abc"},
            ExecutionSettings.from_env,
            "EXECUTION_WORKER_CONCURRENCY",
        ),
        (
            {"EXECUTION_WORKER_CONCURRENCY": "0"},
            ExecutionSettings.from_env,
            "EXECUTION_WORKER_CONCURRENCY",
        ),
        ({"EXECUTION_STATE_TTL": "1.5"}, ExecutionSettings.from_env, "EXECUTION_STATE_TTL"),
        ({"NODEDROP_PARTITIONS": "-3"}, RedisSettings.from_env, "NODEDROP_PARTITIONS"),
        ({"REDIS_URL": "localhost:6379"}, RedisSettings.from_env, "REDIS_URL"),
        ({"REDIS_URL": "redis+cluster://h1:7000,h2"}, RedisSettings.from_env, "REDIS_URL"),
        ({"REDIS_URL": "redis+cluster://h1:7000/2"}, RedisSettings.from_env, "REDIS_URL"),
        ({"NODEDROP_REDIS_PREFIX": "a{b}"}, RedisSettings.from_env, "NODEDROP_REDIS_PREFIX"),
        ({"DATABASE_URL": "mysql://x"}, PostgresSettings.from_env, "DATABASE_URL"),
        (
            {"NODEDROP_PG_STATEMENT_CACHE_SIZE": "-1"},
            PostgresSettings.from_env,
            "NODEDROP_PG_STATEMENT_CACHE_SIZE",
        ),
        (
            {"NODEDROP_PG_STATEMENT_CACHE_SIZE": "10001"},
            PostgresSettings.from_env,
            "NODEDROP_PG_STATEMENT_CACHE_SIZE",
        ),
        ({"LOG_FORMAT": "xml"}, LogSettings.from_env, "LOG_FORMAT"),
        ({"NODEDROP_API_ADDR": "nohost"}, Addresses.from_env, "NODEDROP_API_ADDR"),
        ({"NODEDROP_EVENTS_ADDR": "h:99999"}, Addresses.from_env, "NODEDROP_EVENTS_ADDR"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_value(
    env: dict[str, str], build: object, variable: str
) -> None:
    with pytest.raises(SettingsError) as info:
        build(env)  # type: ignore[operator]
    assert info.value.name == variable
    assert variable in str(info.value)
    assert repr(env[variable]) in str(info.value)


def test_a_cluster_url_lists_its_seed_nodes() -> None:
    url = "redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001"
    assert RedisSettings.from_env({"REDIS_URL": url}).url == url


def test_readers() -> None:
    env = {"I": " 7 ", "F": "2.5", "B": "yes", "D": "5m", "E": "", "A": "[::1]:9000"}
    assert env_int(env, "I", 0) == 7
    assert env_int(env, "E", 3) == 3, "an empty variable counts as unset"
    assert env_float(env, "F", 0.0) == 2.5
    assert env_bool(env, "B", False) is True
    assert env_duration(env, "D", 0.0) == 300.0
    address = env_addr(env, "A", "127.0.0.1:1")
    assert address == Address("::1", 9000)
    assert address.bind == "[::1]:9000"
    assert Address.parse(":50052").bind == "0.0.0.0:50052"
    assert Address.parse(":50052").target == "127.0.0.1:50052"
    with pytest.raises(SettingsError, match="X"):
        env_bool({"X": "maybe"}, "X", False)
    with pytest.raises(SettingsError, match="X"):
        env_duration({"X": "5 parsecs"}, "X", 0.0)
    with pytest.raises(SettingsError, match="X"):
        env_float({"X": "nan"}, "X", 0.0)


def test_settings_are_frozen() -> None:
    settings = ExecutionSettings.from_env({})
    with pytest.raises(AttributeError):
        settings.worker_concurrency = 9  # type: ignore[misc]
