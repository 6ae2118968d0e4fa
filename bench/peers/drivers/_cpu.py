"""CPU time of a worker's process group, from /proc (Linux).

The machine is shared, so jobs per second depend on what else runs; CPU per
job does not. A worker is started in its own session (process group), and
the group's user + system time is summed over its live members plus the
children they have reaped (RQ's forked work horses, a prefork pool that
replaced a child), which /proc reports as cutime/cstime.

Standard library only: imported by the drivers in every environment.
"""

from __future__ import annotations

import os

_TICK = os.sysconf("SC_CLK_TCK")


def group_cpu_s(pgid: int) -> float:
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:
            continue  # exited meanwhile
        # Fields after the command name, which may itself hold spaces or ")".
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[2]) != pgid:
            continue
        ticks += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return ticks / _TICK
