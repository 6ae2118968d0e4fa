"""The store's job record carries no execution-settings defaults of its own: the
engine's WorkflowSettings is the one place they are written (docs/workflows.md)."""

from __future__ import annotations

from typing import Any

import pytest

from nodedrop.store import JobSpec


@pytest.mark.parametrize("left_out", ["max_attempts", "backoff_s", "timeout_s"])
def test_a_job_names_every_execution_setting(left_out: str) -> None:
    given: dict[str, Any] = {"max_attempts": 3, "backoff_s": 2.0, "timeout_s": 300.0}
    del given[left_out]
    with pytest.raises(TypeError, match=left_out):
        JobSpec("ex-1", "t1", "wf1", "{}", **given)
