"""The CI form of the fault soak: 60 s of mixed load through the API with the
faults (process kills, SIGSTOPs, drains, a PostgreSQL restart, a Redis pause,
partitions) and a Redis wipe at the end, on separate processes; fails on any
violation the soak reports (see docs/operations.md). Each of the five defects
the soak was written for makes it fail (docs/operations.md, "The fault soak")."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from tests.soak.cluster import REPO_ROOT


@pytest.mark.timeout(300)
def test_soak_ci_form() -> None:
    missing = [b for b in ("redis-server", "initdb", "pg_ctl") if shutil.which(b) is None]
    if missing:
        message = f"the soak needs {', '.join(missing)}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "tests.soak", "--duration", "60", "--seed", "1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    took = time.monotonic() - began
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"soak failed after {took:.0f} s:\n{output}"
    assert "soak: passed" in output
    # The run must have set up what catches a paused worker leasing a delivery
    # reclaimed from it, and drained a worker: without them it proves less.
    woken = re.search(r"\| pauses woken holding a delivery leased elsewhere +\| (\d+)", output)
    assert woken is not None and int(woken.group(1)) >= 1, f"no such pause:\n{output}"
    assert "| drain time max (s)" in output, f"no drain:\n{output}"
