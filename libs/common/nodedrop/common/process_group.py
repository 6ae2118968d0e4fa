"""Several processes of one service on one address.

One Python process runs its event loop on one core, whatever the machine
has. ``ProcessGroup`` starts N copies of a service, each a full process of
its own (pools, background tasks, ``/metrics``), all listening on the same
port: gRPC binds with SO_REUSEPORT, so the kernel spreads incoming
connections over them. The parent only supervises:

- SIGTERM/SIGINT to the parent: each child gets SIGTERM, reports
  NOT_SERVING and drains within its own grace period; the parent waits for
  them, then exits 0 if they all did;
- a child that exits on its own: the parent stops the others and exits 1,
  so the orchestrator restarts the whole group (a half-sized group would
  keep serving with half the capacity and nobody told);
- the parent killed outright: each child gets SIGTERM from the kernel
  (PR_SET_PDEATHSIG, see ``die_with_supervisor``), so none is left serving
  on the port unsupervised;
- ``/metrics`` on the parent's address gathers every child's, each sample
  labelled with its ``process`` index (``metrics_fanin``); with metrics
  off (NODEDROP_METRICS_ADDR=off) no process serves any.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence

from prometheus_client import CollectorRegistry

from nodedrop.common.logging import get_logger
from nodedrop.common.metrics_fanin import ProcessFanIn
from nodedrop.common.settings import MetricsSettings

__all__ = ["SUPERVISOR_PID_VAR", "ProcessGroup", "die_with_supervisor"]

log = get_logger("nodedrop.common.process_group")

# Set in each child's environment: the pid it must not outlive.
SUPERVISOR_PID_VAR = "NODEDROP_SUPERVISOR_PID"
# Beyond its own grace, how long a child may take to exit before SIGKILL.
_KILL_MARGIN_S = 5.0
_PR_SET_PDEATHSIG = 1


def _free_local_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ProcessGroup:
    """A ``Runnable`` that runs ``count`` copies of ``argv`` and supervises them.

    ``single_var`` is the variable that sets the number of processes: each
    child gets it set to 1, so it serves instead of supervising in turn.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        count: int,
        *,
        single_var: str,
    ) -> None:
        if count < 2:
            raise ValueError("a process group needs at least two processes")
        self._name = name
        self._argv = list(argv)
        self._env = dict(env)
        self._count = count
        self._single_var = single_var
        self._children: list[asyncio.subprocess.Process] = []
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False
        self._crashed: list[tuple[int, int]] = []
        self._on_crash: asyncio.Event | None = None
        self.metrics_registry = CollectorRegistry(auto_describe=False)
        self._fanin = ProcessFanIn()
        self.metrics_registry.register(self._fanin)

    @property
    def name(self) -> str:
        return self._name

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self._children]

    def bind_stop(self, stop: asyncio.Event) -> None:
        """The event that stops the whole process: set when a child exits on its own."""
        self._on_crash = stop

    async def start(self) -> None:
        metrics = MetricsSettings.from_env(self._env, "127.0.0.1:0").addr is not None
        for index in range(self._count):
            env = {**self._env, self._single_var: "1", SUPERVISOR_PID_VAR: str(os.getpid())}
            if metrics:
                # Picked here, bound by the child a moment later: should another
                # process take it meanwhile, that child serves no metrics (it
                # logs why) and nodedrop_process_up reports it.
                port = _free_local_port()
                env["NODEDROP_METRICS_ADDR"] = f"127.0.0.1:{port}"
                self._fanin.add(str(index), f"http://127.0.0.1:{port}/metrics")
            child = await asyncio.create_subprocess_exec(*self._argv, env=env)
            self._children.append(child)
            self._watchers.append(asyncio.create_task(self._watch(index, child)))
        log.info("processes started", service=self._name, pids=self.pids)

    async def _watch(self, index: int, child: asyncio.subprocess.Process) -> None:
        code = await child.wait()
        if self._stopping:
            return
        log.error(
            "a process of the group exited; stopping the others",
            service=self._name,
            process=index,
            pid=child.pid,
            exit_code=code,
        )
        self._crashed.append((index, code))
        if self._on_crash is not None:
            self._on_crash.set()

    async def set_not_serving(self) -> None:
        # Each child reports NOT_SERVING and drains on its own SIGTERM.
        self._stopping = True
        for child in self._children:
            if child.returncode is None:
                child.send_signal(signal.SIGTERM)

    async def stop(self, grace_s: float) -> None:
        self._stopping = True
        codes: list[int] = []
        for index, child in enumerate(self._children):
            try:
                codes.append(await asyncio.wait_for(child.wait(), grace_s + _KILL_MARGIN_S))
            except TimeoutError:
                log.error("process did not stop in time; killing it", process=index)
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                codes.append(await child.wait())
        for watcher in self._watchers:
            watcher.cancel()
        failed = [(i, c) for i, c in enumerate(codes) if c != 0]
        if self._crashed or failed:
            first = (self._crashed or failed)[0][1]
            raise GroupFailed(
                f"{self._name}: processes exited with errors: "
                + ", ".join(f"#{i} exit {c}" for i, c in (self._crashed or failed)),
                first,
            )


class GroupFailed(ChildProcessError):
    """A process of the group failed; ``exit_code`` is the first failure's
    status, which the supervisor exits with (a child that could not start
    has already said why in its one line)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def die_with_supervisor(env: Mapping[str, str]) -> None:
    """In a child of a ``ProcessGroup``: have the kernel send SIGTERM when the
    supervisor dies, and exit at once if it is already gone."""
    value = env.get(SUPERVISOR_PID_VAR, "")
    if not value.isdigit() or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    # The supervisor may have died before prctl took effect.
    if os.getppid() != int(value):
        os.kill(os.getpid(), signal.SIGTERM)
