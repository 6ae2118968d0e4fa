"""The code sandbox's settings in EngineSettings: defaults, values, refusals."""

from __future__ import annotations

import pytest

from nodedrop.common.engine_settings import EngineSettings
from nodedrop.common.settings import SettingsError
from nodedrop.engine.limits import DEFAULT_LIMITS


def test_defaults() -> None:
    s = EngineSettings.from_env({})
    assert s.code_runners == 2
    assert s.code_runners_per_tenant is None  # the sandbox's default: all runners but one
    assert s.limits.code_cpu_ms == DEFAULT_LIMITS.code_cpu_ms == 2000
    assert s.limits.code_memory_bytes == DEFAULT_LIMITS.code_memory_bytes == 64 * 1024 * 1024
    assert (s.limits.max_code_log_lines, s.limits.max_code_log_bytes) == (100, 16 * 1024)


def test_values() -> None:
    s = EngineSettings.from_env(
        {
            "NODEDROP_CODE_RUNNERS": "4",
            "NODEDROP_CODE_RUNNERS_PER_TENANT": "3",
            "NODEDROP_CODE_CPU_MS": "250",
            "NODEDROP_CODE_MEMORY_BYTES": str(16 * 1024 * 1024),
            "NODEDROP_MAX_CODE_LOG_LINES": "0",
            "NODEDROP_MAX_CODE_LOG_BYTES": "512",
        }
    )
    assert s.code_runners == 4
    assert s.code_runners_per_tenant == 3
    assert (s.limits.code_cpu_ms, s.limits.code_memory_bytes) == (250, 16 * 1024 * 1024)
    assert (s.limits.max_code_log_lines, s.limits.max_code_log_bytes) == (0, 512)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NODEDROP_CODE_RUNNERS", "0"),
        ("NODEDROP_CODE_RUNNERS_PER_TENANT", "0"),
        ("NODEDROP_CODE_RUNNERS_PER_TENANT", "3"),  # more than the 2 runners
        ("NODEDROP_CODE_CPU_MS", "5"),
        ("NODEDROP_CODE_MEMORY_BYTES", "1024"),
        ("NODEDROP_MAX_CODE_LOG_LINES", "-1"),
    ],
)
def test_refused(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        EngineSettings.from_env({variable: value})
    assert variable in str(err.value)
