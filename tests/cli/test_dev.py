"""`nodedrop dev` as a user runs it (a real process): logs for humans on a
terminal and JSON lines otherwise, and the same development key at every start."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.services import isolated_env, service_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

_KEY = re.compile(r"NODEDROP_API_KEY=(ndk_\S+?)\)")


async def _run_dev(env: dict[str, str], *, tty: bool, timeout_s: float = 90.0) -> str:
    """Starts `nodedrop dev`, reads its output until every service serves, stops it."""
    master = slave = -1
    if tty:
        master, slave = os.openpty()
        out: int = slave
    else:
        out = asyncio.subprocess.PIPE
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nodedrop.cli.main",
        "dev",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=out,
        stderr=slave if tty else asyncio.subprocess.STDOUT,
    )
    if tty:
        os.close(slave)
    text = ""
    deadline = time.monotonic() + timeout_s
    try:
        started = ("nodedrop dev: console", "NODEDROP_API_KEY=")
        while not (all(s in text for s in started) and text.count("serving") >= 5):
            assert time.monotonic() < deadline, f"nodedrop dev did not start:\n{text}"
            assert process.returncode is None, f"nodedrop dev exited:\n{text}"
            if tty:
                chunk = await asyncio.to_thread(_read_some, master)
            else:
                assert process.stdout is not None
                chunk = await asyncio.wait_for(process.stdout.read(4096), timeout_s)
            text += chunk.decode(errors="replace")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 30)
        if process.returncode is None:
            process.kill()
            await process.wait()
        if tty:
            os.close(master)
    return text


def _read_some(fd: int) -> bytes:
    import select  # noqa: PLC0415

    ready, _, _ = select.select([fd], [], [], 1.0)
    if not ready:
        return b""
    try:
        return os.read(fd, 4096)
    except OSError:  # the other side closed
        return b""


async def test_dev_logs_for_humans_on_a_terminal_and_keeps_its_key(
    redis_url: str, redis_prefix: str, pg_dsn: str, tmp_path: Path
) -> None:
    env = service_env(isolated_env(redis_url, redis_prefix, pg_dsn, 2.0))
    env.pop("NODEDROP_API_KEY", None)
    env.update(
        {
            "LOG_FORMAT": "auto",
            "NODEDROP_METRICS_ADDR": "off",
            "NODEDROP_SQLITE_PATH": str(tmp_path / "dev.sqlite3"),
        }
    )
    on_terminal = await _run_dev(env, tty=True)
    lines = [line for line in on_terminal.splitlines() if "serving" in line]
    assert lines, on_terminal
    for line in lines:
        # structlog's console renderer, in color: `<time> [info     ] serving  addr=...`.
        plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
        assert "\x1b[" in line and not plain.lstrip().startswith("{"), line
        assert "[info" in plain and "addr=" in plain, line
    first = _KEY.search(on_terminal)
    assert first is not None

    in_a_pipe = await _run_dev(env, tty=False)
    records = [json.loads(line) for line in in_a_pipe.splitlines() if line.startswith("{")]
    assert any(r.get("event") == "serving" for r in records), in_a_pipe
    again = _KEY.search(in_a_pipe)
    # The key exported after the first start still works after a restart.
    assert again is not None and again.group(1) == first.group(1)
    assert (tmp_path / "dev.key").read_text().strip() == first.group(1)
    console = f"nodedrop dev: console http://{env['NODEDROP_GATEWAY_ADDR']}/"
    for out in (on_terminal, in_a_pipe):
        # Once, together, after every service serves.
        assert out.count(console) == 1 and len(_KEY.findall(out)) == 1, out
        key = _KEY.search(out)
        assert key is not None and out.rindex("serving") < min(out.index(console), key.start())
