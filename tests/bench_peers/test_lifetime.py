"""A driver's children die with it (bench/peers/drivers/_lifetime.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DRIVERS = Path(__file__).resolve().parents[2] / "bench" / "peers" / "drivers"

# A stand-in driver: starts a long child the way the drivers do, prints its pid,
# then waits to be killed.
_PARENT = """
import subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from _lifetime import die_with_parent
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(60)"],
    start_new_session=True,
    preexec_fn=die_with_parent,
)
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie until init reaps it: dead for our purpose.
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}").exists() else ""
    return bool(stat) and stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_child_dies_when_its_driver_is_killed() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(DRIVERS)], stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            assert _alive(child)
            parent.send_signal(signal.SIGKILL)
            parent.wait(5)
            deadline = time.monotonic() + 5
            while _alive(child) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not _alive(child), "the child outlived its driver"
        finally:
            if parent.poll() is None:
                parent.kill()
