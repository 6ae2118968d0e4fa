"""The runner processes: confined, replaced when they die or are cancelled, and
a lost run is retried by the node's retry settings."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import time
from typing import Any

import pytest

from nodedrop.engine import parse_workflow
from nodedrop.engine.code import CodeOutput, CodeRun
from nodedrop.engine.config import EngineConfig
from nodedrop.engine.errors import CodeError
from nodedrop.engine.local import run_local
from nodedrop.engine.nodes.code import CONSOLE_KEY
from nodedrop.sandbox import ProcessSandbox
from tests.sandbox.conftest import run_code

pytestmark = pytest.mark.asyncio(loop_scope="session")

MEMORY = 32 * 1024 * 1024


async def _started(runners: int = 1) -> ProcessSandbox:
    sandbox = ProcessSandbox(runners, MEMORY)
    await sandbox.start()
    return sandbox


async def test_runner_has_no_environment_and_is_confined() -> None:
    sandbox = await _started()
    try:
        (pid,) = sandbox.pids
        assert _read(f"/proc/{pid}/environ") == ""
        assert os.readlink(f"/proc/{pid}/cwd") == "/"
        lines = _read(f"/proc/{pid}/limits").splitlines()[1:]
        limits = {line[:26].strip(): line[26:].split()[0] for line in lines}
        assert limits["Max file size"] == "0"
        assert limits["Max open files"] == "8"
        assert limits["Max processes"] == "0"
        assert os.getsid(pid) == pid
        assert sorted(os.listdir(f"/proc/{pid}/fd")) == ["0", "1", "2"]
    finally:
        await sandbox.close()


async def test_a_killed_runner_is_replaced_and_its_run_is_lost_not_hung() -> None:
    sandbox = await _started()
    try:
        (pid,) = sandbox.pids
        run = asyncio.create_task(run_code(sandbox, "while (true) {}", cpu_ms=20_000))
        await asyncio.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(CodeError) as err:
            await run
        assert err.value.code == "code_runner_lost"
        assert err.value.retryable
        assert "signal 9" in err.value.message
        assert sandbox.runners_lost == 1
        out = await run_code(sandbox, "return [{ok: true}]")
        assert out.items == [{"ok": True}]
        assert sandbox.pids and sandbox.pids != [pid]
    finally:
        await sandbox.close()


async def test_a_cancelled_run_kills_its_runner() -> None:
    sandbox = await _started()
    try:
        (pid,) = sandbox.pids
        run = asyncio.create_task(run_code(sandbox, "while (true) {}", cpu_ms=20_000))
        await asyncio.sleep(0.3)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        for _ in range(100):
            if not _running(pid):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the cancelled run's runner is still running")
        assert (await run_code(sandbox, "return []")).items == []
    finally:
        await sandbox.close()


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _running(pid: int) -> bool:
    try:
        return _read(f"/proc/{pid}/stat").split()[2] != "Z"
    except FileNotFoundError:
        return False


class _KillFirst:
    """Kills the runner under the first run, as a crash in QuickJS would."""

    def __init__(self, sandbox: ProcessSandbox) -> None:
        self.sandbox = sandbox
        self.runs = 0

    async def run(self, run: CodeRun) -> CodeOutput:
        self.runs += 1
        if self.runs == 1:
            task = asyncio.create_task(self.sandbox.run(run))
            await asyncio.sleep(0.3)
            for pid in self.sandbox.pids:
                os.kill(pid, signal.SIGKILL)
            return await task
        return await self.sandbox.run(run)


def _workflow(retry: bool) -> dict[str, Any]:
    node = {
        "id": "c",
        "type": "code",
        "parameters": {
            "code": "if ($input.first().json.slow) { let i = 0; while (i < 3e7) i++ }\n"
            "console.log('ran'); return [{ok: true}]"
        },
    }
    if retry:
        node["retry"] = {"max_tries": 2, "wait_s": 0}
    return {
        "name": "lost",
        "nodes": [{"id": "start", "type": "manual_trigger"}, node],
        "connections": [{"from": "start", "to": "c"}],
    }


async def test_a_lost_run_is_retried_by_the_node_retry_settings() -> None:
    sandbox = await _started()
    try:
        killer = _KillFirst(sandbox)
        config = EngineConfig(code=killer)
        run = await run_local(parse_workflow(_workflow(True)), {"slow": True}, config=config)
        assert run.result.status.value == "completed", run.result.error
        assert killer.runs == 2
        assert run.result.outputs == {"c": [{"ok": True}]}
    finally:
        await sandbox.close()


async def test_a_lost_run_without_retry_fails_retryable() -> None:
    sandbox = await _started()
    try:
        config = EngineConfig(code=_KillFirst(sandbox))
        run = await run_local(parse_workflow(_workflow(False)), {"slow": True}, config=config)
        error = run.result.error
        assert error is not None
        assert (error.code, error.retryable) == ("code_runner_lost", True)
    finally:
        await sandbox.close()


async def test_console_lines_ride_with_the_outputs() -> None:
    sandbox = await _started()
    try:
        run = await run_local(
            parse_workflow(_workflow(False)), {"slow": False}, config=EngineConfig(code=sandbox)
        )
        completed = [
            e.event
            for e in run.events
            if e.event.type.name == "NODE_COMPLETED" and e.event.node_id == "c"
        ]
        assert completed[0].data[CONSOLE_KEY] == [{"level": "log", "line": "ran"}]
    finally:
        await sandbox.close()


def _runners_of_this_process() -> list[int]:
    """Live runner processes whose parent is the test process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = _read(f"/proc/{entry}/stat").rsplit(")", 1)[1].split()
            cmdline = _read(f"/proc/{entry}/cmdline")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(stat[1]) == os.getpid() and stat[0] != "Z" and "nodedrop.sandbox.child" in cmdline:
            found.append(int(entry))
    return found


class _SlowPopen(subprocess.Popen[bytes]):
    """A process start that takes a while, as fork and exec do on a loaded host."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        time.sleep(0.3)
        super().__init__(*args, **kwargs)


async def test_close_while_a_runner_starts_leaves_none_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A close that finds a runner's successor still starting ends it: none
    outlives the sandbox, none is left unreaped for the collector."""
    before = set(_runners_of_this_process())
    sandbox = await _started()
    monkeypatch.setattr(subprocess, "Popen", _SlowPopen)
    run = asyncio.create_task(run_code(sandbox, "while (true) {}", cpu_ms=20_000))
    await asyncio.sleep(0.2)
    run.cancel()  # its runner goes, and a successor starts in the background
    with pytest.raises(asyncio.CancelledError):
        await run
    await asyncio.sleep(0.1)  # the successor's process is being made
    await sandbox.close()
    monkeypatch.undo()
    await asyncio.sleep(0.5)  # a start left behind would have made its process by now
    assert set(_runners_of_this_process()) - before == set()
    # A process never reaped warns when collected ("subprocess ... is still
    # running"), which fails this test.
    del sandbox, run
    gc.collect()
