"""Shifts this process' wall clock by NODEDROP_SOAK_CLOCK_SKEW_S seconds (the soak's
clock-skew fault); the monotonic clock is left alone, as NTP leaves it."""

import os
import time

_skew = float(os.environ.get("NODEDROP_SOAK_CLOCK_SKEW_S", "0") or 0)
if _skew:
    _time, _time_ns = time.time, time.time_ns
    time.time = lambda: _time() + _skew
    time.time_ns = lambda: _time_ns() + int(_skew * 1e9)
