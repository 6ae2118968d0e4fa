"""Settings of the engine, shared by the two processes that run it (the API in
direct mode and for ExecuteNode, and the worker): its budgets, its HTTP policy
and its code sandbox's runner processes."""

from __future__ import annotations

from dataclasses import dataclass

from nodedrop.common.settings import Env, SettingsError, env_duration, env_int, env_str
from nodedrop.engine.http_policy import HttpPolicy
from nodedrop.engine.limits import DEFAULT_LIMITS, Limits

__all__ = ["EngineSettings"]

_D = DEFAULT_LIMITS
_MIB = 1024 * 1024
# orjson refuses to encode data nested deeper than 255 levels; a checkpoint
# must always encode.
_MAX_DEPTH = 200


@dataclass(frozen=True, slots=True)
class EngineSettings:
    limits: Limits
    http: HttpPolicy
    # Runner processes of the code sandbox: code node runs at once per process.
    code_runners: int = 2
    # Of them, most at once for one tenant; None: the sandbox's default (all but one).
    code_runners_per_tenant: int | None = None

    @classmethod
    def from_env(cls, env: Env) -> EngineSettings:
        limits = Limits(
            max_data_depth=env_int(
                env, "NODEDROP_MAX_DATA_DEPTH", _D.max_data_depth, minimum=2, maximum=_MAX_DEPTH
            ),
            max_output_items=env_int(
                env, "NODEDROP_MAX_OUTPUT_ITEMS", _D.max_output_items, minimum=1
            ),
            max_output_bytes=env_int(
                env, "NODEDROP_MAX_OUTPUT_BYTES", _D.max_output_bytes, minimum=1024
            ),
            max_event_bytes=env_int(
                env, "NODEDROP_MAX_EVENT_BYTES", _D.max_event_bytes, minimum=256
            ),
            max_execution_bytes=env_int(
                env, "NODEDROP_MAX_EXECUTION_BYTES", _D.max_execution_bytes, minimum=1024
            ),
            max_expression_cost=env_int(
                env, "NODEDROP_MAX_EXPRESSION_COST", _D.max_expression_cost, minimum=100
            ),
            max_node_expression_cost=env_int(
                env,
                "NODEDROP_MAX_NODE_EXPRESSION_COST",
                _D.max_node_expression_cost,
                minimum=100,
            ),
            code_cpu_ms=env_int(
                env, "NODEDROP_CODE_CPU_MS", _D.code_cpu_ms, minimum=10, maximum=600_000
            ),
            code_memory_bytes=env_int(
                env,
                "NODEDROP_CODE_MEMORY_BYTES",
                _D.code_memory_bytes,
                minimum=4 * _MIB,
                maximum=4096 * _MIB,
            ),
            max_code_log_lines=env_int(
                env, "NODEDROP_MAX_CODE_LOG_LINES", _D.max_code_log_lines, minimum=0
            ),
            max_code_log_bytes=env_int(
                env, "NODEDROP_MAX_CODE_LOG_BYTES", _D.max_code_log_bytes, minimum=0
            ),
        )
        allow_raw = env_str(env, "NODEDROP_HTTP_ALLOW", "")
        allow = tuple(a.strip() for a in allow_raw.split(",") if a.strip())
        defaults = HttpPolicy()
        try:
            http = HttpPolicy(
                allow=allow,
                default_timeout_s=env_duration(
                    env,
                    "NODEDROP_HTTP_TIMEOUT_S",
                    defaults.default_timeout_s,
                    minimum=0.001,
                    maximum=86_400,
                ),
                max_response_bytes=env_int(
                    env,
                    "NODEDROP_HTTP_MAX_RESPONSE_BYTES",
                    defaults.max_response_bytes,
                    minimum=1024,
                    maximum=1024 * _MIB,
                ),
            )
        except ValueError as exc:
            raise SettingsError(
                "NODEDROP_HTTP_ALLOW", allow_raw, f"valid entries ({exc})"
            ) from None
        code_runners = env_int(env, "NODEDROP_CODE_RUNNERS", 2, minimum=1, maximum=256)
        per_tenant = None
        if env_str(env, "NODEDROP_CODE_RUNNERS_PER_TENANT", ""):
            per_tenant = env_int(
                env, "NODEDROP_CODE_RUNNERS_PER_TENANT", 1, minimum=1, maximum=code_runners
            )
        return cls(limits, http, code_runners, per_tenant)
