"""Children that die with their driver.

A driver killed mid-run (Ctrl-C on the harness, a timeout) must not leave a
worker or an events server behind on the shared Redis: an orphaned nodedrop
events server once kept tailing the partition streams of database 8 and
slowed every later nodedrop run there (docs/benchmarks/peers-history.md).
"""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1
# Looked up here, in the parent: between fork and exec the child only calls it
# (no dlopen, no lock another thread of the parent might have held).
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent() -> None:
    """``preexec_fn`` for Popen (Linux): the child gets SIGTERM when its parent dies."""
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
